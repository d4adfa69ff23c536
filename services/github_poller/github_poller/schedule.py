"""When each tracked user is polled: pure logic, driven by the times passed in.

The rule, with `n` users, a poll interval `I` and a request budget `R` per second:

- `R` is 97% of the budget (`BUDGET_SHARE`): `GITHUB_REQUESTS_PER_SECOND` (the secondary
  limit: 900 points a minute is 15 a second), lowered when the primary budget would not last
  until its reset: only answers other than 304 spend it, so the bound is `remaining / seconds
  to reset / share of conditional reads that came back 200` (a running average; 304s
  dominating means no bound at all). The 3% spare absorbs late wake-ups and jitter, which
  at exactly the limit tip a rolling minute over it (1,000 users then saw a few 429s).
- The effective interval is `E = max(I, n / R)`: every user every `I` seconds while the budget
  allows, else the cycle stretches so that every user is still polled equally often.
- One poll starts every `E / n` seconds (at least `1 / R` apart), the user due first goes first,
  so starts never bunch up and users take turns in a stable rotation.
- A user is due again `E` after its poll started. A user whose poll is still running is never
  started again (polls of one user never overlap); at most `max_in_flight` polls run at once.
- While paused (GitHub said we are rate limited), nothing starts.
- A user whose polls keep failing (deleted account, errors) waits `E * 2^k` (capped) before
  the next try, so a dead account does not spend the budget of the live ones.
- `expedite` makes a user due now and spaces it `1 / R` from the previous start: a poll-now
  request, or a user just tracked, goes as fast as the budget allows, never faster.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

# Weight of the newest answer in the running share of answers that spend the primary budget.
COSTLY_SHARE_WEIGHT = 0.1
# The share of the request budget the schedule plans to spend (the rest is headroom).
BUDGET_SHARE = 0.97


class Outcome(enum.Enum):
    OK = "ok"  # the poll ran (200 or 304)
    FAILED = "failed"  # the poll failed for this user: back off this user
    RETRY = "retry"  # not the user's fault (rate limited): due again at once, after the pause


@dataclass
class _Slot:
    key: str
    seq: int
    due: float
    busy: bool = False
    expedited: bool = False
    failures: int = 0
    started: float = 0.0
    ran_expedited: bool = False  # the running poll was asked for now


def effective_interval(users: int, interval: float, rate: float) -> float:
    """Every user every `interval`, unless `users` polls would not fit in it at `rate`."""
    return max(interval, users / rate)


def primary_rate(remaining: int, reset_in: float, costly_share: float) -> float | None:
    """Requests per second that spend `remaining` primary points by the reset, or None if
    the primary budget sets no bound (nothing spends it, or the window has already reset)."""
    if reset_in <= 0 or costly_share <= 0:
        return None
    return remaining / reset_in / costly_share


@dataclass
class Pacer:
    """Spaces request starts at least `1 / rate` apart, first come first served."""

    rate: float
    _next: float = field(default=float("-inf"), init=False)

    def reserve(self, now: float) -> float:
        """Books the next free start and returns how long to wait for it."""
        start = max(now, self._next)
        self._next = start + 1 / self.rate
        return start - now


class Schedule:
    def __init__(
        self,
        *,
        interval: float,
        rate: float,
        max_in_flight: int,
        failure_backoff_max: float,
    ) -> None:
        self.interval = interval
        self.rate = rate
        self.max_in_flight = max_in_flight
        self.failure_backoff_max = failure_backoff_max
        self.in_flight = 0
        self.paused_until = float("-inf")
        self._slots: dict[str, _Slot] = {}
        self._seq = itertools.count()
        self._last_start = float("-inf")
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self.costly_share = 0.0

    # --- users ---------------------------------------------------------------------------

    def add(self, key: str, now: float, *, at_once: bool = False) -> bool:
        """A new user is due now, in the rotation (spaced like the others), or `at_once`
        (spaced only by the budget); adding a known user changes nothing."""
        if key in self._slots:
            return False
        self._slots[key] = _Slot(key=key, seq=next(self._seq), due=now, expedited=at_once)
        return True

    def remove(self, key: str) -> None:
        self._slots.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    def expedite(self, key: str, now: float) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.expedited = True
            slot.due = min(slot.due, now)

    # --- budget --------------------------------------------------------------------------

    def pause_until(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def observe(self, costly: bool) -> None:
        """One more answer: `costly` if it spent primary budget (anything but a 304)."""
        self.costly_share += COSTLY_SHARE_WEIGHT * (float(costly) - self.costly_share)

    def set_primary(self, remaining: int, reset_at: float) -> None:
        self._remaining = remaining
        self._reset_at = reset_at

    def effective_rate(self, now: float) -> float:
        """Polls a second the schedule plans: `BUDGET_SHARE` of the tighter budget."""
        budget = self.rate
        if self._remaining is not None and self._reset_at is not None:
            bound = primary_rate(self._remaining, self._reset_at - now, self.costly_share)
            if bound is not None:
                budget = min(budget, bound)
        # Never quite zero: the reset (or a 403 telling us to wait) comes first anyway.
        return max(budget * BUDGET_SHARE, 1e-3)

    def effective_interval(self, now: float) -> float:
        return effective_interval(len(self._slots), self.interval, self.effective_rate(now))

    # --- starting and finishing polls ------------------------------------------------------

    def _gap(self, slot: _Slot, now: float) -> float:
        rate = self.effective_rate(now)
        if slot.expedited:
            return 1 / rate
        return effective_interval(len(self._slots), self.interval, rate) / len(self._slots)

    def _next(self) -> _Slot | None:
        idle = [slot for slot in self._slots.values() if not slot.busy]
        if not idle or self.in_flight >= self.max_in_flight:
            return None
        # Expedited users first: one asked for now must not wait behind the rotation.
        return min(idle, key=lambda slot: (not slot.expedited, slot.due, slot.seq))

    def wake_at(self, now: float) -> float | None:
        """When the next poll may start; None until a user is added or a poll finishes."""
        slot = self._next()
        if slot is None:
            return None
        return max(slot.due, self._last_start + self._gap(slot, now), self.paused_until)

    def take(self, now: float) -> str | None:
        """The user whose poll starts now, marked busy; None if none may start yet."""
        slot = self._next()
        if slot is None:
            return None
        gap = self._gap(slot, now)
        planned = max(slot.due, self._last_start + gap, self.paused_until)
        if now < planned:
            return None
        # Book the planned time, not `now`: a loop that wakes a little late must not slow
        # every cycle down. More than a gap late is not made up: no burst after a lull.
        booked = max(planned, now - gap)
        slot.busy = True
        slot.ran_expedited, slot.expedited = slot.expedited, False
        slot.started = booked
        self.in_flight += 1
        self._last_start = booked
        return slot.key

    def finished(self, key: str, now: float, outcome: Outcome) -> None:
        self.in_flight -= 1
        slot = self._slots.get(key)
        if slot is None:
            return  # removed while it was being polled
        slot.busy = False
        if slot.expedited:
            slot.due = now  # asked for while it ran: poll it again now
            return
        if outcome is Outcome.RETRY:
            # Its turn is kept; a poll asked for now stays asked for now, after the pause,
            # not a rotation's gap later.
            slot.due = slot.started
            slot.expedited = slot.ran_expedited
            return
        slot.failures = slot.failures + 1 if outcome is Outcome.FAILED else 0
        slot.due = slot.started + self._wait_after(slot, now)

    # --- what an operator sees of one user ------------------------------------------------

    def interval_of(self, key: str, now: float) -> float | None:
        """How often this user's turn comes now: the effective interval, stretched by the
        backoff of failures in a row; None for a user not scheduled here."""
        slot = self._slots.get(key)
        return None if slot is None else self._wait_after(slot, now)

    def due_of(self, key: str) -> float | None:
        """When this user's next poll may start (the pause included); None while one runs
        or for a user not scheduled here."""
        slot = self._slots.get(key)
        if slot is None or slot.busy:
            return None
        return max(slot.due, self.paused_until)

    def _wait_after(self, slot: _Slot, now: float) -> float:
        every = self.effective_interval(now)
        if slot.failures == 0:
            return every
        return max(every, min(every * 2.0**slot.failures, self.failure_backoff_max))
