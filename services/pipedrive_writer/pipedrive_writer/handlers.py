"""What each message does to Pipedrive, and the queries answered from what the writer knows
(`reader.py`), at no Pipedrive cost.

One user's messages run one at a time, retries included: across replicas because a user's
partition has a single active consumer, within this process because the transport runs one
key's deliveries in turn. So two deliveries of one gist can never both find it missing and
both create it. A lock per login key remains as a safety net for what the transport does not
order: the start-up read and the queries, which run beside a user's work. Every create is
preceded by a look (the cache, filled from Pipedrive at start, or a search), because
Pipedrive has no idempotency keys; after a create whose outcome is unknown the user is
re-read first.

Queries: `query.tracked_users` (every user, or one partition's) from any replica's list of
users; `query.user_status` and `query.gists` (one user) from the owner of the user's partition.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from gistsync.contracts import (
    AnyMessage,
    Gist,
    GistDeleted,
    GistDiscovered,
    GistsQuery,
    GistsReply,
    MarkGistsSeen,
    Message,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
    UntrackUser,
    UserStatusQuery,
    UserStatusReply,
    UserTracked,
    UserUntracked,
    login_key,
    utcnow,
)
from gistsync.errors import PermanentError
from pipedrive_writer import metrics
from pipedrive_writer.notes import (
    DELETED_PREFIX,
    SUBJECT_MAX,
    activity_body,
    cut,
    format_note,
    subject,
)
from pipedrive_writer.pipedrive import (
    Json,
    PipedriveNotFound,
    PipedriveOutcomeUnknown,
    PipedriveRejected,
)
from pipedrive_writer.reader import Publisher, UserNotTracked
from pipedrive_writer.reconcile import Reconciler
from pipedrive_writer.state import CachedGist, UserRecord, as_utc, deal_title

__all__ = ["Publisher", "UserNotTracked", "Writer"]

log = logging.getLogger(__name__)


class Writer(Reconciler):
    """Turns each command and event into Pipedrive writes, and answers the queries."""

    # --- dispatch ----------------------------------------------------------------------

    async def handle(self, message: AnyMessage) -> Message | None:
        await self.loaded.wait()  # consuming starts before the start-up read ends
        match message:
            case TrackUser():
                await self.track_user(message)
            case UntrackUser():
                await self.untrack_user(message)
            case GistDiscovered():
                await self.gist_discovered(message)
            case GistDeleted():
                await self.gist_deleted(message.login, message.gist_id)
            case MarkGistsSeen():
                await self.mark_seen(message)
            case TrackedUsersQuery():
                return self.tracked_users(message)
            case UserStatusQuery():
                return await self.user_status(message)
            case GistsQuery():
                return await self.gists(message)
            case _:
                raise PermanentError(f"pipedrive_writer does not handle {message.type}")
        return None

    # --- command.track_user --------------------------------------------------------------

    async def track_user(self, message: TrackUser) -> None:
        key = login_key(message.login)
        async with self._lock(key):
            user = await self._user(message.login)
            if user is None:
                user = await self._add_user(message.login)
            else:
                await self._repair(user)
        self._update_gauges()
        # Also when already tracked: harmless, the poller ignores users it knows.
        await self.publisher.publish(
            UserTracked(login=user.login, correlation_id=message.correlation_id)
        )
        await self._unseen_changed(user)

    async def _add_user(self, login: str) -> UserRecord:
        self._untracked.discard(login_key(login))
        org_id, new_org = await self._ensure_org()
        if not new_org:
            deal = await self._find_deal(login, org_id)
            if deal is not None:
                if deal.get("status") != "open":  # untracked before: track it again
                    deal = await self.client.update_deal(int(deal["id"]), {"status": "open"})
                return await self._load_user(deal)
        person_id = await self._ensure_person(login, org_id, look=not new_org)
        deal = await self.client.add_deal(deal_title(login), person_id, org_id)
        user = UserRecord(
            login=login,
            deal_id=int(deal["id"]),
            person_id=person_id,
            org_id=org_id,
            synced_at=time.monotonic(),
        )
        self.cache.users[user.key] = user
        log.info("user tracked", extra={"login": login, "deal_id": user.deal_id})
        return user

    # --- command.untrack_user ------------------------------------------------------------

    async def untrack_user(self, message: UntrackUser) -> None:
        """The deal is marked lost (Pipedrive's own word for a closed deal); the person, the
        deal and the activities stay, so tracking the user again reopens the same deal."""
        key = login_key(message.login)
        login = message.login
        async with self._lock(key):
            user = await self._user(message.login)
            if user is not None:
                login = user.login
                try:
                    await self.client.update_deal(user.deal_id, {"status": "lost"})
                except PipedriveNotFound:
                    log.warning("deal already gone", extra={"login": login})
                del self.cache.users[key]
                log.info("user untracked", extra={"login": login, "deal_id": user.deal_id})
            self._untracked.add(key)
            self.directory.pop(key, None)
        self._update_gauges()
        await self.publisher.publish(
            UserUntracked(login=login, correlation_id=message.correlation_id)
        )

    # --- event.gist_discovered -----------------------------------------------------------

    async def gist_discovered(self, message: GistDiscovered) -> None:
        key = login_key(message.login)
        gist = message.gist
        async with self._lock(key):
            user = await self._user(message.login)
            if user is None and key in self._untracked:
                log.info("gist of an untracked user dropped", extra={"login": message.login})
                return
            if user is None:
                raise UserNotTracked(f"{message.login} is not tracked (yet)")
            await self._repair(user)
            if gist.id in user.known():
                await self._edited(user, gist)
                return
            try:
                body, activity = await self._add_gist(user, gist)
            except PipedriveRejected as exc:
                if not self._gone_on_write(user, exc):
                    raise
                await self._repair(user)  # deleted by hand: made again, then once more
                body, activity = await self._add_gist(user, gist)
            user.gists[gist.id] = CachedGist(
                id=gist.id,
                activity_id=int(activity["id"]),
                done=False,
                title=body["subject"],
                html_url=gist.html_url,
                files=gist.files,
                created_at=as_utc(gist.created_at),
            )
            await self._unseen_changed(user)
        metrics.ACTIVITIES_CREATED.inc()
        delay = (utcnow() - message.discovered_at).total_seconds()
        metrics.GIST_PROPAGATION.observe(max(0.0, delay))
        self._update_gauges()

    async def _add_gist(self, user: UserRecord, gist: Gist) -> tuple[dict[str, Any], Json]:
        body = activity_body(
            gist, deal_id=user.deal_id, org_id=user.org_id, person_id=user.person_id
        )
        try:
            return body, await self.client.add_activity(body)
        except PipedriveOutcomeUnknown:
            user.stale = True
            raise

    async def _edited(self, user: UserRecord, gist: Gist) -> None:
        """A gist seen before: its description changed on GitHub → one PATCH of the subject
        (and the note), never a second activity."""
        cached = user.gists.get(gist.id)
        title = subject(gist)
        if cached is None or cached.title == title:
            return
        await self.client.update_activity(
            cached.activity_id, {"subject": title, "note": format_note(gist)}
        )
        cached.title = title
        cached.files = gist.files
        await self._unseen_changed(user)

    # --- event.gist_deleted --------------------------------------------------------------

    async def gist_deleted(self, login: str, gist_id: str) -> None:
        """The gist is gone from GitHub: its activity stays (its history, its note still
        parseable) and its subject says so, once: `[deleted on GitHub] {title}`."""
        key = login_key(login)
        async with self._lock(key):
            user = await self._user(login)
            if user is None:
                log.info("gist.deleted for a user not tracked", extra={"login": login})
                return
            cached = user.gists.get(gist_id)
            if cached is None or cached.title.startswith(DELETED_PREFIX):
                return
            title = cut(DELETED_PREFIX + cached.title, SUBJECT_MAX)
            await self._repair(user)
            cached = user.gists[gist_id]
            await self.client.update_activity(cached.activity_id, {"subject": title})
            cached.title = title

    # --- command.mark_seen ---------------------------------------------------------------

    async def mark_seen(self, message: MarkGistsSeen) -> None:
        key = login_key(message.login)
        async with self._lock(key):
            user = await self._user(message.login)
            if user is None:
                log.warning("mark_seen for a user not tracked", extra={"login": message.login})
                return
            await self._repair(user)
            for gist_id in dict.fromkeys(message.gist_ids):
                await self._mark_done(user, gist_id)
            await self._unseen_changed(user)
        self._update_gauges()

    async def _mark_done(self, user: UserRecord, gist_id: str, *, again: bool = False) -> None:
        gist = user.gists.get(gist_id)
        if gist is None:
            log.info("mark_seen: unknown gist ignored", extra={"gist_id": gist_id})
            return
        if gist.done:
            return
        try:
            updated = await self.client.update_activity(gist.activity_id, {"done": True})
        except PipedriveNotFound:
            if again:
                log.warning("activity gone twice; skipped", extra={"gist_id": gist_id})
                return
            # Deleted or replaced by hand: re-read this user's activities and carry on.
            log.warning("stale activity id; re-reading the user", extra={"login": user.login})
            await self._reload_gists(user)
            if gist_id not in user.gists:  # deleted by hand: added again, seen
                user.orphans[gist_id] = dataclasses.replace(gist, done=True)
                await self._readd(user)
                return
            await self._mark_done(user, gist_id, again=True)
            return
        if updated.get("is_deleted"):  # deleted by hand (Pipedrive keeps it 30 days)
            log.warning("activity deleted by hand; added again", extra={"gist_id": gist_id})
            del user.gists[gist_id]
            user.orphans[gist_id] = dataclasses.replace(gist, done=True)
            await self._readd(user)
            metrics.ACTIVITIES_DONE.inc()
            return
        # Only now: had Pipedrive failed, the gist must stay unseen (shown twice, never lost).
        gist.done = True
        metrics.ACTIVITIES_DONE.inc()

    # --- queries: answered from the cache, no Pipedrive call (unless re-read) ---------------

    def tracked_users(self, query: TrackedUsersQuery) -> TrackedUsersReply:
        wanted = query.partition
        ordered = sorted(
            (key, user)
            for key, user in self.directory.items()
            if wanted is None or self.partition(key) == wanted
        )
        return TrackedUsersReply(users=tuple(user for _, user in ordered))

    async def user_status(self, query: UserStatusQuery) -> UserStatusReply:
        async with self._lock(login_key(query.login)):
            user = await self._user(query.login)
        if user is None:
            return UserStatusReply()
        return UserStatusReply(user=TrackedUser(login=user.login, unseen=len(user.unseen())))

    async def gists(self, query: GistsQuery) -> GistsReply:
        async with self._lock(login_key(query.login)):
            user = await self._user(query.login)
        if user is None:
            return GistsReply(tracked=False)
        chosen = user.all() if query.include_seen else user.unseen()
        return GistsReply(tracked=True, login=user.login, gists=tuple(g.view() for g in chosen))
