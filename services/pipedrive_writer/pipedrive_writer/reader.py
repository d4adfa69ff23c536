"""What the writer knows of Pipedrive, and how it reads it: the cache (read once at start,
paginated, and on refresh), a user looked up when unsure, the list of every tracked user
kept current from the broadcasts, and what gaining or losing a partition changes.

Replicas: a partition gained from another replica may have changed meanwhile, so its users
are re-read before their next write, and a user this replica never saw is looked up. Every
replica keeps the list of all users (for `query.tracked_users`) current from the
`event.user_tracked`/`user_untracked`/`unseen_changed` broadcasts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from gistsync.contracts import (
    AnyMessage,
    Message,
    TrackedUser,
    UnseenChanged,
    UserTracked,
    UserUntracked,
    login_key,
)
from gistsync.errors import TransientError
from gistsync.transport.topology import partition_of
from pipedrive_writer import metrics
from pipedrive_writer.pipedrive import PipedriveClient
from pipedrive_writer.state import (
    Cache,
    CachedGist,
    Record,
    UserRecord,
    deal_login,
    deal_title,
    deleted_deals,
    gist_from_activity,
    gists_from_activities,
    group_deals,
    later,
    pick,
    pick_gists,
)

log = logging.getLogger(__name__)


class Publisher(Protocol):
    async def publish(self, message: Message) -> None: ...

    def lock(self, name: str) -> AbstractAsyncContextManager[None]: ...


class UserNotTracked(TransientError):
    """An event for a user whose deal does not exist yet (it raced ahead of track_user)."""


def linked_id(record: Record, field: str, nested: str) -> int | None:
    """`person_id` in lists, `person.id` in search results."""
    value = record.get(field)
    if value is None:
        value = (record.get(nested) or {}).get("id")
    return int(value) if value is not None else None


class Reader:
    def __init__(
        self,
        client: PipedriveClient,
        publisher: Publisher,
        *,
        org_name: str,
        partitions: int = 1,
    ) -> None:
        self.client = client
        self.publisher = publisher
        self.org_name = org_name
        self.partitions = partitions
        self.cache = Cache()
        self.loaded = asyncio.Event()
        self._load_started = False
        # Every tracked user, by key, as last heard (ours from the cache, others' by broadcast).
        self.directory: dict[str, TrackedUser] = {}
        # Partitions gained from another replica: a user missing here may exist in Pipedrive.
        self._unsure: set[int] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._org_lock = asyncio.Lock()
        self._load_lock = asyncio.Lock()
        self._reported: set[tuple[str, int]] = set()
        # The latest `update_time` read from Pipedrive (RFC 3339): where a refresh resumes.
        self.mark: str | None = None
        # Users untracked while this process ran: late events for them are dropped, not retried.
        self._untracked: set[str] = set()

    @property
    def ready(self) -> bool:
        return self.cache.loaded

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # --- loading the cache -------------------------------------------------------------

    async def load(self, kind: str = "start") -> None:
        """Read the org, its open deals and every activity, in pages of 500: once at start.

        Costs one search, the deal pages and the activity pages (1,000 users with 20,000
        gists: 1 + 2 + 40 requests): it grows with pages, never with the number of users.
        Activities are read account-wide (the predecessor's carry no `org_id`) and kept
        when their deal is one of the org's.
        """
        async with self._load_lock:
            self._load_started = True
            started = time.monotonic()
            org_id = await self._load_org()
            deals: Sequence[Record] = []
            deleted: Sequence[Record] = []
            by_deal: dict[int, list[CachedGist]] = {}
            if org_id:
                deals = await self.client.list_deals(org_id)
                deleted = await self.client.list_deals(org_id, status="deleted")
                by_deal = await self._gists_by_deal({int(d["id"]) for d in (*deals, *deleted)})
            self._saw(deals, deleted)
            grouped = group_deals(deals)
            for key, (deal, ignored) in grouped.items():
                self._report("deal", ignored)
                async with self._lock(key):
                    self._user_from(deal, by_deal.get(int(deal["id"]), []))
            for key, gone in deleted_deals(deleted).items():
                async with self._lock(key):
                    self._adopt_deleted(key, gone, by_deal, open_deal=key in grouped)
            for key, user in list(self.cache.users.items()):
                # A user made after this read began is newer than the listing, not gone.
                if key not in grouped and not user.deal_gone and user.synced_at < started:
                    log.warning("deal gone from Pipedrive", extra={"login": user.login})
                    del self.cache.users[key]
            self.cache.loaded = True
            self.directory = dict(self.cache.tracked_users_by_key())
            self.loaded.set()
            metrics.CACHE_LOADS.labels(kind).inc()
            self._update_gauges()
            log.info(
                "cache loaded",
                extra={"kind": kind, "users": len(self.cache.users), "org_id": org_id},
            )

    async def _gists_by_deal(self, deal_ids: set[int]) -> dict[int, list[CachedGist]]:
        """The gists of these deals, from every activity of the account, page by page: only
        what is kept stays in memory (10,000 users hold 20,000 activities)."""
        by_deal: dict[int, list[CachedGist]] = {}
        async for page in self.client.pages("getActivities", {}):
            self._saw(page)
            for activity in page:
                deal_id = activity.get("deal_id")
                if deal_id is None or int(deal_id) not in deal_ids:
                    continue
                gist = gist_from_activity(activity)
                if gist is not None:
                    by_deal.setdefault(int(deal_id), []).append(gist)
        return by_deal

    def _adopt_deleted(
        self,
        key: str,
        gone: Sequence[Record],
        by_deal: Mapping[int, Sequence[CachedGist]],
        *,
        open_deal: bool,
    ) -> None:
        """A user whose deal was deleted by hand is still tracked: the deal is made again,
        and the gists on the deleted deal(s) added again, before the user's next write."""
        if not open_deal:
            latest = max(gone, key=lambda d: int(d["id"]))
            user = self._user_from(latest, by_deal.get(int(latest["id"]), []))
            user.deal_gone = True
            log.warning("deal deleted by hand", extra={"login": user.login})
            return
        user = self.cache.users[key]
        for deal in gone:
            gists, _ = pick_gists(by_deal.get(int(deal["id"]), []))
            for gist_id, gist in gists.items():
                if gist_id not in user.gists:
                    user.orphans.setdefault(gist_id, gist)

    def _saw(self, *batches: Iterable[Record]) -> None:
        """Remember the latest `update_time` read: the next refresh asks from there."""
        for batch in batches:
            for record in batch:
                self.mark = later(self.mark, record.get("update_time"))

    async def _ensure_org(self) -> tuple[int, bool]:
        """The org's id, and whether it was created just now (so nothing is in it yet)."""
        async with self._org_lock:
            if self.cache.org_id is not None:
                return self.cache.org_id, False
            found = await self._find_org()
            if found is None:
                # Another replica may be about to create it too: only one may look and create.
                async with self.publisher.lock("organization"):
                    found = await self._find_org()
                    if found is None:
                        found = int((await self.client.add_organization(self.org_name))["id"])
                        self.cache.org_id = found
                        return found, True
            self.cache.org_id = found
            return found, False

    async def _load_org(self) -> int | None:
        async with self._org_lock:
            found = await self._find_org()
            # Not found on a refresh: keep what we had rather than ever making a second.
            if found is not None:
                self.cache.org_id = found
            return self.cache.org_id

    async def _find_org(self) -> int | None:
        winner, ignored = pick(
            await self.client.search_organizations(self.org_name), "name", self.org_name
        )
        self._report("organization", ignored)
        return int(winner["id"]) if winner else None

    async def _load_user(self, deal: Record) -> UserRecord:
        """The user a deal stands for, with its activities read from Pipedrive."""
        user = self._user_from(deal, [])
        await self._reload_gists(user)
        return user

    def _user_from(self, deal: Record, found: Iterable[CachedGist]) -> UserRecord:
        """The user a deal stands for, with the given gists (the deal's), cached."""
        login = deal_login(deal.get("title"))
        assert login is not None
        user = UserRecord(
            login=login,
            deal_id=int(deal["id"]),
            person_id=linked_id(deal, "person_id", "person"),
            org_id=linked_id(deal, "org_id", "organization") or self.cache.org_id,
        )
        gists, ignored = pick_gists(found)
        self._report_gists(ignored)
        user.gists = gists
        user.synced_at = time.monotonic()
        self.cache.users[user.key] = user
        return user

    async def _reload_gists(self, user: UserRecord) -> None:
        gists, ignored = gists_from_activities(await self.client.list_activities(user.deal_id))
        self._report_gists(ignored)
        user.gists = gists
        user.stale = False
        user.synced_at = time.monotonic()
        metrics.CACHE_LOADS.labels("user").inc()

    def _report(self, entity: str, ignored: Iterable[Record]) -> None:
        for record in ignored:
            self._report_once(entity, int(record["id"]), record)

    def _report_gists(self, ignored: Iterable[CachedGist]) -> None:
        for gist in ignored:
            self._report_once("activity", gist.activity_id, {"gist_id": gist.id})

    def _report_once(self, entity: str, record_id: int, about: Any) -> None:
        if (entity, record_id) in self._reported:
            return
        self._reported.add((entity, record_id))
        metrics.DUPLICATES_IGNORED.labels(entity).inc()
        log.warning(
            "duplicate ignored: the lowest id wins",
            extra={"entity": entity, "ignored_id": record_id, "about": str(about)[:200]},
        )

    # --- partitions and the list of users --------------------------------------------------

    def partition(self, key: str) -> int:
        return partition_of(key, self.partitions)

    async def on_gain(self, partition: int) -> None:
        """Another replica may have written this partition's users since we read them."""
        if not self._load_started:
            return  # the start-up read comes after this gain: it reads what is there now
        self._unsure.add(partition)
        for key, user in list(self.cache.users.items()):
            if self.partition(key) != partition:
                continue
            if key in self.directory:
                user.stale = True
            else:  # untracked elsewhere meanwhile
                del self.cache.users[key]

    def on_loss(self, partition: int) -> None:
        """Nothing to drop: gaining it again marks its users for re-reading."""

    async def on_broadcast(self, message: AnyMessage) -> Message | None:
        match message:
            case UserTracked():
                self.directory.setdefault(
                    login_key(message.login), TrackedUser(login=message.login, unseen=0)
                )
            case UserUntracked():
                self.directory.pop(login_key(message.login), None)
            case UnseenChanged():
                key = login_key(message.login)
                if key in self.directory:
                    self.directory[key] = TrackedUser(login=message.login, unseen=message.unseen)
        return None

    async def _unseen_changed(self, user: UserRecord) -> None:
        unseen = len(user.unseen())
        self.directory[user.key] = TrackedUser(login=user.login, unseen=unseen)
        await self.publisher.publish(UnseenChanged(login=user.login, unseen=unseen))

    async def _user(self, login: str) -> UserRecord | None:
        """The cached user, re-read if stale; or, in a partition gained from another
        replica, looked up in Pipedrive (a user tracked there is new to us)."""
        key = login_key(login)
        user = self.cache.users.get(key)
        if user is None and self.partition(key) in self._unsure and key not in self._untracked:
            user = await self._look_up(login)
        if user is not None and user.stale:
            await self._reload_gists(user)
        return user

    async def _look_up(self, login: str) -> UserRecord | None:
        org_id = self.cache.org_id or await self._load_org()
        deal = await self._find_deal(login, org_id) if org_id is not None else None
        if deal is None or deal.get("status") != "open":
            self._untracked.add(login_key(login))
            return None
        return await self._load_user(deal)

    def _update_gauges(self) -> None:
        metrics.TRACKED_USERS.set(len(self.cache.users))
        metrics.UNSEEN_GISTS.set(sum(len(u.unseen()) for u in self.cache.users.values()))

    async def _find_deal(self, login: str, org_id: int) -> Record | None:
        title = deal_title(login)
        found = [
            deal
            for deal in await self.client.search_deals(title, org_id)
            if linked_id(deal, "org_id", "organization") in (None, org_id)
        ]
        winner, ignored = pick(found, "title", title)
        self._report("deal", ignored)
        return winner

    async def _ensure_person(self, login: str, org_id: int, *, look: bool) -> int:
        if look:
            found = await self.client.search_persons(login, org_id)
            winner, ignored = pick(found, "name", login)
            self._report("person", ignored)
            if winner is not None:
                return int(winner["id"])
        return int((await self.client.add_person(login, org_id))["id"])
