"""Changes made by hand in Pipedrive: noticed by an incremental refresh, at start, or by a
write that fails, and put right.

The refresh asks only for what changed since the latest `update_time` it read (inclusive,
so the last record comes again and is simply found unchanged): the org (1 token), the
org's deals (all but deleted, then the deleted), and the account's activities. At rest
that is 31 tokens, whatever the number of users or gists.

What is put right, and when:

- a deal (or its person) deleted by hand: the user stays tracked; before the user's next
  write the person is found or made again, the deal too, and the user's gists are added
  again under it, once (`deal_gone`, `orphans`);
- a deal marked won/lost by hand: the user is no longer tracked (as `untrack_user`);
  a deal reopened or made by hand: the user is tracked;
- an activity marked done (or renamed) by hand: the cache follows (done counts as seen);
- an activity deleted by hand: added again, once (Pipedrive's lists leave deleted
  activities out, so it is noticed when a write meets it, or by a refresh when Pipedrive
  shows deleted records);
- the organization renamed by hand: given its name back; deleted: made again (and each
  user's deal made again in it before their next write).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from gistsync.contracts import Gist, UserTracked, UserUntracked, login_key, utcnow
from pipedrive_writer import metrics
from pipedrive_writer.notes import activity_body
from pipedrive_writer.pipedrive import (
    PipedriveNotFound,
    PipedriveOutcomeUnknown,
    PipedriveRejected,
)
from pipedrive_writer.reader import Reader, linked_id
from pipedrive_writer.state import (
    CachedGist,
    Record,
    UserRecord,
    deal_login,
    deal_title,
    gist_from_activity,
)

log = logging.getLogger(__name__)


def readded_body(gist: CachedGist, user: UserRecord) -> dict[str, object]:
    """The activity of a gist known only from the cache, as it was (seen or not)."""
    body = activity_body(
        Gist(
            id=gist.id,
            html_url=gist.html_url or f"https://gist.github.com/{gist.id}",
            description=gist.title,
            files=gist.files,
            created_at=gist.created_at or utcnow(),
        ),
        deal_id=user.deal_id,
        org_id=user.org_id,
        person_id=user.person_id,
    )
    body["done"] = gist.done
    return body


class Reconciler(Reader):
    # --- the refresh ---------------------------------------------------------------------

    async def refresh_forever(self, interval: float) -> None:
        """Look for changes made by hand now and then (incrementally)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("refresh failed; the next one will try again")

    async def refresh(self) -> None:
        org_id = self.cache.org_id
        if self.mark is None or org_id is None:
            await self.load("refresh")  # nothing read yet: nothing to resume from
            return
        async with self._load_lock:
            since = self.mark
            started = time.monotonic()
            org_id = await self._check_org(org_id)
            deals = await self.client.list_deals(org_id, status=None, updated_since=since)
            deleted = await self.client.list_deals(org_id, status="deleted", updated_since=since)
            activities = await self.client.list_all_activities(updated_since=since)
            self._saw(deals, deleted, activities)
            for deal in [*deals, *deleted]:
                await self._deal_changed(deal, started)
            changed: dict[str, UserRecord] = {}
            by_deal = {user.deal_id: user for user in self.cache.users.values()}
            for activity in activities:
                user = by_deal.get(int(activity.get("deal_id") or 0))
                if user is not None:
                    async with self._lock(user.key):
                        if await self._activity_changed(user, activity):
                            changed[user.key] = user
            for user in changed.values():
                await self._unseen_changed(user)
            metrics.CACHE_LOADS.labels("refresh").inc()
            self._update_gauges()

    async def _check_org(self, org_id: int) -> int:
        """Our organization by id: renamed by hand, named again; deleted, made again."""
        try:
            org: Record = await self.client.get_organization(org_id)
        except PipedriveNotFound:
            org = {"id": org_id, "is_deleted": True}
        if org.get("is_deleted"):
            log.warning("organization deleted by hand; making it again")
            async with self._org_lock:
                self.cache.org_id = None
            new_id, _ = await self._ensure_org()
            for user in self.cache.users.values():
                user.deal_gone = True  # its deal sits in the deleted org
            return new_id
        if org.get("name") != self.org_name:
            log.warning("organization renamed by hand; naming it back")
            await self.client.update_organization(org_id, {"name": self.org_name})
        return org_id

    async def _deal_changed(self, deal: Record, started: float) -> None:
        login = deal_login(deal.get("title"))
        if login is None:
            return
        key = login_key(login)
        deleted = bool(deal.get("is_deleted")) or deal.get("status") == "deleted"
        async with self._lock(key):
            user = self.cache.users.get(key)
            if (user is not None and user.synced_at > started) or (
                user is None and key in self._untracked
            ):
                return  # tracked or untracked here since the read: newer than what it says
            if user is not None and user.deal_id == int(deal["id"]):
                if deleted:
                    if not user.deal_gone:
                        log.warning("deal deleted by hand", extra={"login": user.login})
                    user.deal_gone = True
                elif deal.get("status") == "open":
                    user.deal_gone = False
                else:
                    log.warning("deal closed by hand: not tracked", extra={"login": login})
                    del self.cache.users[key]
                    self._untracked.add(key)
                    self.directory.pop(key, None)
                    await self.publisher.publish(UserUntracked(login=user.login))
                return
            if user is None and not deleted and deal.get("status") == "open":
                log.info("deal opened by hand: tracked", extra={"login": login})
                self._untracked.discard(key)
                user = await self._load_user(deal)
                await self._unseen_changed(user)
                await self.publisher.publish(UserTracked(login=user.login))

    async def _activity_changed(self, user: UserRecord, activity: Record) -> bool:
        """Apply one changed activity of the user's deal; whether its unseen count moved."""
        before = len(user.unseen())
        activity_id = int(activity["id"])
        if activity.get("is_deleted"):
            for known in list(user.gists.values()):
                if known.activity_id == activity_id:
                    log.warning("activity deleted by hand", extra={"gist_id": known.id})
                    del user.gists[known.id]
                    user.orphans[known.id] = known
            await self._readd(user)
            return len(user.unseen()) != before
        gist = gist_from_activity(activity)
        if gist is None:
            return False
        cached = user.gists.get(gist.id)
        if cached is not None and cached.done:
            gist.done = True  # marked seen here meanwhile: a read from before cannot undo it
        if cached is None or cached.activity_id == activity_id:
            user.gists[gist.id] = gist  # done or renamed by hand, or added elsewhere
            user.orphans.pop(gist.id, None)
        return len(user.unseen()) != before

    # --- putting a user right before a write ---------------------------------------------

    async def _repair(self, user: UserRecord) -> None:
        """Before a write: the deal made again if deleted, lost activities added again."""
        if user.deal_gone:
            await self._rehome(user)
        if user.orphans:
            await self._readd(user)

    async def _rehome(self, user: UserRecord) -> None:
        """The user's deal (or person) was deleted by hand: find or make both again, and
        move the gists to be added again under the deal."""
        org_id, new_org = await self._ensure_org()
        found = None if new_org else await self._find_deal(user.login, org_id)
        person_id = await self._ensure_person(user.login, org_id, look=not new_org)
        deal: Record
        if found is None:
            deal = await self.client.add_deal(deal_title(user.login), person_id, org_id)
        elif found.get("status") != "open" or linked_id(found, "person_id", "person") != person_id:
            deal = await self.client.update_deal(
                int(found["id"]), {"status": "open", "person_id": person_id}
            )
        else:
            deal = found
        moved = user.deal_id != int(deal["id"])
        user.deal_id, user.person_id, user.org_id = int(deal["id"]), person_id, org_id
        user.deal_gone = False
        if moved:
            user.orphans = {**user.gists, **user.orphans}
            user.gists = {}
            if found is not None:
                await self._reload_gists(user)
        log.info("deal made again", extra={"login": user.login, "deal_id": user.deal_id})

    async def _readd(self, user: UserRecord) -> None:
        """Add again, once each, the activities of gists that lost theirs."""
        for gist_id, gist in list(user.orphans.items()):
            if gist_id not in user.gists:
                try:
                    activity = await self.client.add_activity(readded_body(gist, user))
                except PipedriveOutcomeUnknown:
                    user.stale = True  # re-read before trying again: it may be there
                    raise
                user.gists[gist_id] = dataclasses.replace(gist, activity_id=int(activity["id"]))
                metrics.ACTIVITIES_CREATED.inc()
            del user.orphans[gist_id]

    def _gone_on_write(self, user: UserRecord, error: PipedriveRejected) -> bool:
        """A 400 naming a record that no longer exists: the deal or the person was deleted
        by hand (noticed on a write)."""
        if error.status != 400 or "does not exist" not in error.error or user.deal_gone:
            return False
        log.warning("deal or person deleted by hand", extra={"login": user.login})
        user.deal_gone = True
        return True
