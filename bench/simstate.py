"""The Pipedrive simulator's state as the benchmarks need it.

Two additions, neither visible through the API: activities are indexed by deal (the writer
reads each deal's activities at start; scanning 20,000 activities per read would make the
simulator, not the writer, the bottleneck), and the moment each gist's activity appeared is
kept, so propagation is timed on the simulator's own clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipedrive_writer.notes import parse_note
from sandbox.pipedrive_state import ACTIVITY, EntityKind, PipedriveState, Record


class _Store(dict[int, Record]):
    """The activity store, telling `on_store` of every activity put in it (the API's
    routes call the base class's methods, so hooking the store is what sees them all)."""

    def __init__(self, on_store: Callable[[Record], None], on_clear: Callable[[], None]) -> None:
        super().__init__()
        self._on_store = on_store
        self._on_clear = on_clear

    def __setitem__(self, key: int, record: Record) -> None:
        super().__setitem__(key, record)
        self._on_store(record)

    def clear(self) -> None:
        super().clear()
        self._on_clear()


class BenchPipedriveState(PipedriveState):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._by_deal: dict[int | None, dict[int, Record]] = {}
        self.activity_at: dict[str, float] = {}  # gist id -> time.monotonic() of its activity
        self.activities = _Store(self._stored, self._cleared)

    def _stored(self, record: Record) -> None:
        self._by_deal.setdefault(record["deal_id"], {})[record["id"]] = record
        note = parse_note(record.get("note"))
        if note is not None:
            self.activity_at.setdefault(note.gist_id, time.monotonic())

    def _cleared(self) -> None:
        self._by_deal.clear()
        self.activity_at.clear()

    def update_activity(self, entity_id: int, raw: Any) -> Record:
        before = self.activities.get(entity_id)
        deal_before = before["deal_id"] if before is not None else None
        rendered = super().update_activity(entity_id, raw)
        record = self.activities[entity_id]
        if record["deal_id"] != deal_before:
            self._by_deal.get(deal_before, {}).pop(entity_id, None)
            self._by_deal.setdefault(record["deal_id"], {})[entity_id] = record
        return rendered

    def select(self, kind: EntityKind, **equal: Any) -> list[Record]:
        deal_id = equal.get("deal_id")
        if kind is not ACTIVITY or deal_id is None:
            return super().select(kind, **equal)
        wanted = {k: v for k, v in equal.items() if v is not None}
        found = self._by_deal.get(deal_id, {}).values()
        matching = [r for r in found if all(r.get(k) == v for k, v in wanted.items())]
        return sorted(matching, key=lambda r: int(r["id"]))  # the API's order: ascending id
