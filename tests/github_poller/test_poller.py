"""The polling loop end to end: the simulator for GitHub, a real RabbitMQ for the events (read
back from the writer's queue, as the writer would)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gistsync.broker import Broker, Retry
from gistsync.contracts import AnyMessage, GistDeleted, GistDiscovered, Message
from gistsync.errors import PublishError
from github_poller.github import GitHubClient
from github_poller.poller import Poller
from github_poller.schedule import Schedule
from sandbox.testing import Sandbox
from tests.conftest import BrokerFactory
from tests.github_poller.conftest import ClientFactory, Exchange, Recorder, Settled, metric
from tests.waiting import eventually

GISTS = "GET /users/{username}/gists"


@dataclass
class Harness:
    sandbox: Sandbox
    poller: Poller
    recorder: Recorder
    broker: Broker
    client: GitHubClient
    events: list[GistDiscovered] = field(default_factory=list)
    deleted: list[GistDeleted] = field(default_factory=list)
    # Every event confirmed since this harness started must be handled.
    settled: Settled = field(default_factory=Settled)

    def stats(self) -> dict[str, dict[str, int]]:
        requests: dict[str, dict[str, int]] = self.sandbox.github.stats.snapshot(with_tokens=False)[
            "requests"
        ]
        return requests

    def reset_stats(self) -> None:
        self.sandbox.github.stats.reset()

    async def wait_events(self, count: int, timeout: float = 10.0) -> list[GistDiscovered]:
        """Waits for `count` events and for every event published so far, so that an extra
        one is there to be seen."""
        await until(lambda: len(self.events) >= count and self.settled(), timeout)
        return self.events

    def ids(self) -> list[str]:
        return [event.gist.id for event in self.events]


Make = Callable[..., Awaitable[Harness]]


async def until(condition: Callable[[], bool], timeout: float, every: float = 0.02) -> None:
    """Returns once `condition` holds, or after `timeout` (the asserts that follow say why)."""
    for _ in range(int(timeout / every)):
        if condition():
            return
        await asyncio.sleep(every)


@pytest.fixture
async def harness(
    sandbox: Sandbox, clients: ClientFactory, brokers: BrokerFactory
) -> AsyncIterator[Make]:
    """Starts a poller publishing on a real broker; the test reads the writer's queue."""
    running: list[tuple[Poller, asyncio.Task[None]]] = []

    async def make(
        *,
        interval: float = 3600.0,
        rate: float = 200.0,
        max_in_flight: int = 8,
        publish: Callable[[Broker], Callable[[Message], Awaitable[None]]] | None = None,
        **client_options: object,
    ) -> Harness:
        broker = brokers("github_poller")
        await broker.connect()
        writer = brokers("pipedrive_writer")
        await writer.connect()
        client, recorder = clients(
            requests_per_second=rate, max_in_flight=max_in_flight, **client_options
        )
        schedule = Schedule(
            interval=interval, rate=rate, max_in_flight=max_in_flight, failure_backoff_max=60.0
        )
        poller = Poller(client, publish(broker) if publish else broker.publish, schedule)
        harness = Harness(sandbox, poller, recorder, broker, client)

        async def collect(message: AnyMessage) -> Message | None:
            if isinstance(message, GistDiscovered):
                harness.events.append(message)
            if isinstance(message, GistDeleted):
                harness.deleted.append(message)
            return None

        await writer.consume_partitions("pipedrive_writer", collect, retry=Retry(3, 0.01, 0.02))
        poller.loaded.set()
        running.append((poller, asyncio.create_task(poller.run())))
        return harness

    yield make
    for poller, task in running:
        await poller.stop()
        await task


def add_users(sandbox: Sandbox, count: int, gists: int = 0) -> list[str]:
    logins = [f"user{n}" for n in range(count)]
    for login in logins:
        if gists:
            sandbox.github.add_gists_bulk(login, gists)
        else:
            sandbox.github.add_user(login)
    return logins


async def test_steady_state_costs_one_free_304_per_user_per_cycle(harness: Make) -> None:
    h = await harness()
    logins = add_users(h.sandbox, 20, gists=2)
    for login in logins:
        h.poller.track(login)
    await h.poller.poll_now()
    await h.wait_events(40)
    assert len(h.events) == 40
    not_modified = metric("gistsync_polls_total", outcome="not_modified")
    for _ in range(10):
        h.reset_stats()
        assert await h.poller.poll_now() == (20, 0)
        assert h.stats() == {GISTS: {"304": 20}}
    assert metric("gistsync_polls_total", outcome="not_modified") == not_modified + 200
    await h.wait_events(41, timeout=0.3)
    assert len(h.events) == 40  # nothing new, nothing published


async def test_the_loop_polls_every_user_every_interval(harness: Make) -> None:
    # The exact times are the schedule's (test_schedule.py, on a fake clock); here, on a
    # real loop and a machine that may be loaded, only what lateness cannot break: never
    # faster than planned, everyone in turn, starts spread out.
    interval, users = 0.5, 10
    h = await harness(interval=interval)
    logins = add_users(h.sandbox, users)
    for login in logins:
        h.poller.track(login, at_once=False)  # as loaded at start: spread over the interval

    def times() -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for exchange in h.recorder.exchanges:
            found.setdefault(exchange.request.url.path, []).append(exchange.sent_at)
        return found

    await eventually(
        lambda: len(times()) == users and min(map(len, times().values())) >= 6, 30, "6 polls each"
    )
    await h.poller.stop()
    polled = times()
    counts = [len(sent) for sent in polled.values()]
    assert max(counts) - min(counts) <= 1  # in turn: nobody twice before the others
    for sent in polled.values():
        # A poll is due an interval after the last one started; a late wake-up may shorten
        # the next gap a little (the schedule books the planned time), never the average.
        assert (sent[-1] - sent[0]) / (len(sent) - 1) >= 0.95 * interval
    first_cycle = sorted(min(sent) for sent in polled.values())
    # One start every interval / users: the first cycle spans most of an interval.
    assert first_cycle[-1] - first_cycle[0] >= 0.8 * interval * (users - 1) / users
    statuses = Counter(h.recorder.statuses())
    assert statuses[200] == users
    assert statuses[304] == len(h.recorder.exchanges) - users


async def test_a_rate_limit_pauses_the_whole_loop(harness: Make) -> None:
    h = await harness(interval=0.2)
    for login in add_users(h.sandbox, 5):
        h.poller.track(login, at_once=False)
    await until(lambda: len(h.recorder.exchanges) >= 10, 5.0)
    h.sandbox.github.config.faults.rate_limit_burst = 1  # the next answer: 429, retry-after 1
    await until(lambda: 429 in h.recorder.statuses(), 5.0)
    [limited] = [e for e in h.recorder.exchanges if e.response.status_code == 429]

    def polled_after() -> list[Exchange]:
        after = (e for e in h.recorder.exchanges if e.sent_at > limited.received_at)
        return sorted(after, key=lambda e: e.sent_at)

    await eventually(lambda: len({e.request.url.path for e in polled_after()}) == 5, 10, "all")
    await h.poller.stop()
    later = polled_after()
    assert later[0].sent_at - limited.received_at >= 0.99  # nothing sent during the pause
    assert later[0].request.url.path == limited.request.url.path  # it kept its turn
    assert {e.response.status_code for e in later} == {304}
    assert len({e.request.url.path for e in later}) == 5  # and polling went on


async def test_250_gists_once_each_edits_follow_page_1_a_new_gist_is_new(harness: Make) -> None:
    h = await harness()
    made = h.sandbox.github.add_gists_bulk("bob", 250)
    h.poller.track("bob")
    await h.wait_events(250)
    assert len(h.events) == 250
    assert sorted(h.ids()) == sorted(gist.id for gist in made)
    assert {event.login for event in h.events} == {"bob"}
    assert h.stats() == {GISTS: {"200": 3}}

    # Newest first: made[-1] is on page 1, made[7] on page 3. An edit beyond page 1 leaves
    # page 1's ETag as it was: it is seen at the next full read.
    h.sandbox.github.update_gist(made[7].id, description="edited", set_description=True)
    assert await h.poller.poll_now() == (1, 0)
    assert h.stats() == {GISTS: {"200": 3, "304": 1}}  # page 1 is unchanged
    h.sandbox.github.update_gist(made[-1].id, description="edited", set_description=True)
    assert await h.poller.poll_now() == (1, 0)  # edits are not new gists
    assert h.stats() == {GISTS: {"200": 6, "304": 1}}  # page 1 changed: all read
    edits = await h.wait_events(252)
    assert {event.gist.id for event in edits[250:]} == {made[7].id, made[-1].id}
    assert {event.gist.description for event in edits[250:]} == {"edited"}

    new = h.sandbox.github.add_gist("bob", {"new.py": "print('new')"}, description="new one")
    assert await h.poller.poll_now() == (1, 1)
    await h.wait_events(254, timeout=0.5)
    assert len(h.events) == 253  # the new one only: unchanged gists are not published again
    assert h.events[-1].gist.id == new.id
    assert h.events[-1].gist.description == "new one"
    assert h.deleted == []


async def test_a_failing_user_never_stops_the_others(harness: Make) -> None:
    h = await harness()
    for login in ("alice", "gone", "carol"):
        h.sandbox.github.add_gist(login, {"a.py": f"print('{login}')"})
    h.sandbox.github.delete_user("gone")
    failed = metric("gistsync_polls_total", outcome="failed")
    for login in ("alice", "gone", "carol"):
        h.poller.track(login)
    await h.wait_events(2)
    assert await h.poller.poll_now() == (3, 0)
    assert metric("gistsync_polls_total", outcome="failed") == failed + 2
    assert sorted(event.login for event in h.events) == ["alice", "carol"]

    # GitHub fails every request for a while: every poll fails, the loop goes on.
    h.sandbox.github.patch_config({"faults": {"error_rate": 1.0}})
    assert await h.poller.poll_now() == (3, 0)
    h.sandbox.github.patch_config({"faults": {"error_rate": 0.0}})
    assert metric("gistsync_polls_total", outcome="failed") == failed + 5
    h.sandbox.github.add_gist("carol", {"b.py": "print(2)"})
    assert await h.poller.poll_now() == (3, 1)
    assert len(await h.wait_events(3)) == 3


async def test_a_failed_publish_keeps_the_etag_so_the_next_poll_reads_again(
    harness: Make,
) -> None:
    calls = 0

    def flaky(broker: Broker) -> Callable[[Message], Awaitable[None]]:
        async def publish(message: Message) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise PublishError("publish of event.gist_discovered not confirmed")
            await broker.publish(message)

        return publish

    h = await harness(publish=flaky)
    made = h.sandbox.github.add_gists_bulk("dave", 3)
    h.poller.track("dave")
    assert await h.poller.poll_now() == (1, 1)  # the read failed after one event
    assert await h.poller.poll_now() == (1, 2)  # so the next one read everything again
    await h.wait_events(3)
    assert sorted(h.ids()) == sorted(gist.id for gist in made)
    # Both reads were full 200s: the ETag of the failed one was not kept.
    assert h.stats() == {GISTS: {"200": 2}}
    assert await h.poller.poll_now() == (1, 0)
    assert h.stats() == {GISTS: {"200": 2, "304": 1}}


async def test_two_hundred_users_share_a_secondary_limit_without_errors(harness: Make) -> None:
    # 900 points a minute against 200 users, scaled: 400 points per 2 s; the poller spends
    # 180 a second (90 %), so each user is polled every 200 / 180 = 1.11 s, not every 0.5 s.
    h = await harness(interval=0.5, rate=180.0, max_in_flight=8)
    h.sandbox.github.patch_config(
        {"limits": {"secondary_points_limit": 400, "secondary_window_seconds": 2.0}}
    )
    logins = add_users(h.sandbox, 200)
    for login in logins:
        h.poller.track(login)

    def polls() -> Counter[str]:
        return Counter(e.request.url.path for e in h.recorder.exchanges)

    await until(lambda: len(h.recorder.exchanges) >= 200, 10.0)
    h.reset_stats()
    # Six polls each: the first read, then five cycles of 304s.
    await until(lambda: len(polls()) == 200 and min(polls().values()) >= 6, 15.0, every=0.1)
    await h.poller.stop()
    sent = sorted(h.recorder.exchanges, key=lambda exchange: exchange.sent_at)
    assert len({e.request.url.path for e in sent[:200]}) == 200  # the first cycle: all once
    assert {e.response.status_code for e in sent[200:]} == {304}
    assert set(h.stats()[GISTS]) == {"304"}  # no 403 or 429 after the first cycle
    counts = polls()
    assert min(counts.values()) == 6
    assert max(counts.values()) / min(counts.values()) <= 1.2
    # Never faster than the budget: n requests take at least (n - 1) / 180 s.
    later = sent[200:]
    assert later[-1].sent_at - later[0].sent_at >= (len(later) - 1) / 180 * 0.98


async def test_edits_and_deletes_follow_github_unchanged_gists_stay_quiet(harness: Make) -> None:
    h = await harness()
    keep = h.sandbox.github.add_gist("erin", {"keep.py": "1"}, description="keep")
    edit = h.sandbox.github.add_gist("erin", {"edit.py": "1"}, description="before")
    gone = h.sandbox.github.add_gist("erin", {"gone.py": "1"}, description="gone")
    h.poller.track("erin")
    await h.wait_events(3)

    h.sandbox.github.update_gist(edit.id, description="after", set_description=True)
    h.sandbox.github.update_gist(keep.id, files={"keep.py": "2"})  # content only: not shown
    h.sandbox.github.delete_gist(gone.id)
    assert await h.poller.poll_now() == (1, 0)
    await h.wait_events(4)
    assert len(h.events) == 4
    assert (h.events[3].gist.id, h.events[3].gist.description) == (edit.id, "after")
    assert [(d.login, d.gist_id) for d in h.deleted] == [("erin", gone.id)]

    # The file list is part of what is shown: a file added is an edit.
    h.sandbox.github.update_gist(edit.id, files={"more.md": "# more"})
    assert await h.poller.poll_now() == (1, 0)
    await h.wait_events(5)
    files = {f.filename for f in h.events[4].gist.files}
    assert (h.events[4].gist.id, files) == (edit.id, {"edit.py", "more.md"})

    # Nothing changed: a 304, nothing published.
    h.reset_stats()
    assert await h.poller.poll_now() == (1, 0)
    assert h.stats() == {GISTS: {"304": 1}}
    await h.wait_events(6, timeout=0.3)
    assert (len(h.events), len(h.deleted)) == (5, 1)


async def test_a_gist_missing_from_a_paged_read_is_deleted_when_the_next_read_agrees(
    harness: Make,
) -> None:
    h = await harness()
    made = h.sandbox.github.add_gists_bulk("fay", 150)  # two pages
    h.poller.track("fay")
    await h.wait_events(150)
    h.sandbox.github.delete_gist(made[-1].id)  # page 1 changes: a full read of 2 pages
    assert await h.poller.poll_now() == (1, 0)
    await h.wait_events(151, timeout=0.3)
    assert h.deleted == []  # maybe a shift between pages: not trusted alone
    h.sandbox.github.add_gist("fay", {"n.py": "1"})  # page 1 changes again
    assert await h.poller.poll_now() == (1, 1)
    await until(lambda: len(h.deleted) == 1 and h.settled(), 5.0)
    assert [d.gist_id for d in h.deleted] == [made[-1].id]


async def test_after_a_restart_the_first_read_is_a_baseline(harness: Make) -> None:
    """A restarted poller knows nothing: its first read publishes each gist once (the writer
    ignores those it has unchanged, patches those edited meanwhile) and no deletion."""
    h = await harness()
    a = h.sandbox.github.add_gist("gus", {"a.py": "1"}, description="a")
    b = h.sandbox.github.add_gist("gus", {"b.py": "1"}, description="b")
    h.poller.track("gus")
    await h.wait_events(2)

    # Down: one edited, one deleted, one made.
    h.sandbox.github.update_gist(a.id, description="a, edited", set_description=True)
    h.sandbox.github.delete_gist(b.id)
    c = h.sandbox.github.add_gist("gus", {"c.py": "1"}, description="c")
    schedule = Schedule(interval=3600, rate=200, max_in_flight=8, failure_backoff_max=60)
    restarted = Poller(h.client, h.broker.publish, schedule)
    restarted.track("gus", at_once=False)
    h.reset_stats()
    result = await restarted.poll("gus")
    assert (result.outcome, result.new_gists, result.conditional) == ("ok", 2, False)
    assert h.stats() == {GISTS: {"200": 1}}  # no ETag kept: one full read
    await h.wait_events(4)
    assert {(e.gist.id, e.gist.description) for e in h.events[2:]} == {
        (a.id, "a, edited"),
        (c.id, "c"),
    }
    assert h.deleted == []  # nothing was known to be gone
    assert (await restarted.poll("gus")).outcome == "not_modified"
    await h.wait_events(5, timeout=0.3)
    assert len(h.events) == 4


async def test_the_first_cycle_stays_under_the_secondary_limit_and_says_what_it_cost(
    harness: Make, caplog: pytest.LogCaptureFixture
) -> None:
    # 120 users loaded at start against 130 points a second: the first cycle is spread at
    # the budget (120 a second at most, 97 % of it planned), not sent at once.
    users = 120
    h = await harness(interval=0.05, rate=120.0, max_in_flight=8)
    h.sandbox.github.patch_config(
        {"limits": {"secondary_points_limit": 130, "secondary_window_seconds": 1.0}}
    )
    logins = add_users(h.sandbox, users, gists=1)
    h.sandbox.github.add_gists_bulk("user0", 150)  # user0 has two pages
    caplog.set_level("INFO", logger="github_poller.poller")
    for login in logins:
        h.poller.track(login, at_once=False)

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("first")]

    await eventually(lambda: bool(said()), 20, "the first cycle's line")
    await h.poller.stop()
    [line] = said()
    assert line.startswith(f"first cycle: {users} users, {users + 1} requests, over ")
    assert metric("gistsync_first_cycle_requests") == users + 1
    assert not {403, 429} & set(h.recorder.statuses())
    first = sorted(e.sent_at for e in h.recorder.exchanges)[: users + 1]
    assert first[-1] - first[0] >= users / 120 * 0.9  # spread, never a burst
