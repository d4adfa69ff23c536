"""What a run measures and how big: the full run (`make bench`) and `--quick`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sizes:
    runs: int  # repetitions of the repeatable figures (baselines, writer, gateway)
    cost_users: int  # tracked users while the upstream cost is counted
    idle_seconds: float  # the idle window, extrapolated to an hour
    cost_samples: int  # new gists, new users and /show counted one by one
    propagation_users: tuple[int, ...]  # the small points (the large one is `scale_users`)
    # Gists made per point, spread over `propagation_seconds`: at most one every 2 s. A
    # faster stream of changes spends GitHub's hourly budget (5,000 non-304 answers, 1.4 a
    # second) and the poller stretches its cycle to keep it, by design.
    propagation_gists: int
    propagation_seconds: float
    writer_events: int  # gist events in one burst at the writer (whole burst windows)
    writer_users: int  # spread over this many users (one user's events are serialised)
    wrk_seconds: float
    memory_users: tuple[int, int]
    scale_users: int  # the restart and the large propagation point
    scale_gists_per_user: int
    scale_propagation_gists: int


FULL = Sizes(
    runs=3,
    cost_users=100,
    idle_seconds=36.0,
    cost_samples=3,
    propagation_users=(10, 75),
    propagation_gists=24,
    propagation_seconds=48.0,
    writer_events=120,
    writer_users=24,
    wrk_seconds=5.0,
    memory_users=(100, 10_000),
    scale_users=1_000,
    scale_gists_per_user=20,
    scale_propagation_gists=20,
)

QUICK = Sizes(
    runs=1,
    cost_users=30,
    idle_seconds=10.0,
    cost_samples=2,
    propagation_users=(10, 75),
    propagation_gists=6,
    propagation_seconds=12.0,
    writer_events=60,
    writer_users=16,
    wrk_seconds=3.0,
    memory_users=(100, 1_000),
    scale_users=100,
    scale_gists_per_user=20,
    scale_propagation_gists=6,
)


@dataclass(frozen=True)
class Options:
    sizes: Sizes
    quick: bool
    only: tuple[str, ...]
    write: bool
    github_latency_ms: float
    pipedrive_latency_ms: float
    amqp_url: str
    log_dir: Path
    profile: tuple[str, ...] = field(default=())  # services to record with py-spy

    @property
    def runs(self) -> int:
        return self.sizes.runs
