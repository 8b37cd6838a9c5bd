"""Moves staged events from the changed documents into the log without writing the documents.

A store writes a change and its events in one document write (`stage_insert` /
`stage_update`); the write also sets the document's staging mark, the time it was staged in
nanoseconds, which is what the relay sweeps by (an indexed range, not a flag to clear). So the
only write on the way from a change to the log is the log append itself:

- the **sweep** reads documents whose mark is above what it has read (`hot`), appends the
  events it has not appended yet and moves `hot` up. Two writers' marks can commit out of
  order (the later mark first), so each sweep reads again the last `outbox_sweep_grace_ms`;
  events it has appended are remembered by id and skipped;
- the **late check**, about once a second, reads again the marks between `late` and a couple
  of seconds behind `hot`, once: a write that took longer than the grace to commit is found
  there;
- the **cleaner** removes the events from documents whose mark is well behind (`clean`), when
  the relay has nothing else to do, a bounded batch at a time: that is the per-document
  update, off the path from a write to its publication. It reads a window of marks at a time,
  growing over empty stretches and ending at the `CLEAN_BATCH`-th mark the sweep saw in it:
  the embedded store reads every document of a range whatever the limit, so a wide window, or
  reading ahead for the next document, after a large import was one read of every imported
  person with their events (a 20,000-person import: the store answered nothing else for
  6.8 s). Windows follow each other without gaps, so a write that committed very late is
  still found in its place. A document's events are removed only
  if its mark is still the one read (no change staged since), and only once each event is
  known to be in the log; whatever is not (a write that took longer still to commit) is
  appended first. Now and then it also looks below `clean` (where only such very late
  documents can still carry a mark) and at documents staged by earlier versions (mark `true`).

An event is known to be in the log when this relay appended it (a bounded memory of ids),
or when it was staged after the point where this relay took over and is not in that memory,
or else by looking it up in the log. A relay that crashed between an append and recording
its position leaves events that its successor appends again: consumers deduplicate by id.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from shared.logging import get_logger
from shared.messaging.outbox_lease import STATE
from shared.messaging.outbox_log import STAGED_KEY, Appended, ids_in_log
from shared.settings import ServiceSettings

log = get_logger(__name__)

PENDING_FIELD = "_pending_events"
PENDING_FLAG = "_outbox_pending"  # the staging mark (ns), present while events are staged
APPEND_CHUNK = 1000
CLEAN_BATCH = 50
FIRST_CLEAN_SPAN_NS = 100_000_000  # 100 ms of writes; x4 after each sparse window
DEEP_CHECK_SECONDS = 600.0
PERSIST_EVERY_SECONDS = 0.5
RECENT_CAPACITY = 200_000

Append = Callable[[list[dict[str, Any]]], Awaitable[list[Appended]]]

_last_mark = 0


def staging_mark() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process."""
    global _last_mark
    now = time.time_ns()
    _last_mark = now if now > _last_mark else _last_mark + 1
    return _last_mark


class RecentIds:
    """Ids of the events this relay appended lately, bounded, oldest dropped first."""

    def __init__(self, capacity: int = RECENT_CAPACITY) -> None:
        self._ids: dict[str, int] = {}
        self._capacity = capacity
        self.forgotten_up_to = 0  # the newest staging time among dropped ids

    def add(self, event_id: str, staged: int) -> None:
        self._ids[event_id] = staged
        while len(self._ids) > self._capacity:
            oldest = next(iter(self._ids))
            self.forgotten_up_to = max(self.forgotten_up_to, self._ids.pop(oldest))

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids


@dataclass
class Marks:
    """How far each phase got in one collection (staging marks, ns)."""

    hot: int = 0
    late: int = 0
    clean: int = 0


def _state_id(collection: str) -> str:
    return f"staging:{collection}"


async def recorded_marks(db: AsyncDatabase, collection: str) -> Marks:
    """How far the sweep's phases got in a collection, as last recorded (every
    PERSIST_EVERY_SECONDS): for the relay taking over, and for readers such as an import's
    back-pressure."""
    doc = await db[STATE].find_one({"_id": _state_id(collection)}) or {}
    return Marks(int(doc.get("hot", 0)), int(doc.get("late", 0)), int(doc.get("clean", 0)))


def _mark_of(document: dict[str, Any]) -> int | None:
    mark = document.get(PENDING_FLAG)
    return mark if isinstance(mark, int) and not isinstance(mark, bool) else None


def _staged_at(event: dict[str, Any]) -> int | None:
    staged = event.get(STAGED_KEY)
    return staged if isinstance(staged, int) and not isinstance(staged, bool) else None


class StagingSweeper:
    def __init__(
        self,
        db: AsyncDatabase,
        collections: Sequence[str],
        settings: ServiceSettings,
        append: Append,
    ) -> None:
        self._db = db
        self._collections = list(collections)
        self._append = append
        self._grace = int(settings.outbox_sweep_grace_ms * 1e6)
        self._late_lag = int(settings.outbox_late_check_seconds * 1e9)
        self._clean_lag = int(settings.outbox_unstage_after_seconds * 1e9)
        self.recent = RecentIds()
        self._marks: dict[str, Marks] = {}
        self._trusted_after: dict[str, int] = {}
        self._clean_span: dict[str, int] = {}
        # Marks of documents the sweep read, ascending: they bound the cleaner's windows.
        self._seen: dict[str, deque[int]] = {}
        self._persisted: dict[str, Marks] = {}
        self._last_persist = 0.0
        self._next_deep_check = 0.0
        # Events read by the sweep and not appended yet: part of the backlog.
        self.in_hand = 0
        self.in_hand_oldest: int | None = None

    async def load(self) -> None:
        """Read where the previous holder got (called when this relay takes the lease)."""
        self.recent = RecentIds()
        for name in self._collections:
            marks = await recorded_marks(self._db, name)
            self._marks[name] = marks
            self._persisted[name] = Marks(marks.hot, marks.late, marks.clean)
            # Events staged after this point were not appended by the previous holder (it
            # records its position every PERSIST_EVERY_SECONDS, and at a clean hand-over).
            self._trusted_after[name] = marks.hot
            self._clean_span[name] = FIRST_CLEAN_SPAN_NS
            self._seen[name] = deque(maxlen=RECENT_CAPACITY)
        self._next_deep_check = 0.0

    # ------------------------------------------------------------------ the three phases

    async def sweep(self) -> int:
        """Append what was staged since the last sweep; the number of events appended."""
        moved = 0
        for name in self._collections:
            marks = self._marks[name]
            docs = await self._read(name, {"$gt": marks.hot - self._grace})
            self._remember(name, docs)
            if docs:
                moved += await self._move(name, docs)
                newest = max(_mark_of(d) or 0 for d in docs)
                marks.hot = max(marks.hot, min(newest, time.time_ns()))
        return moved

    async def late_check(self) -> int:
        """Read once more what was staged a little while ago, for writes that committed late."""
        found = 0
        for name in self._collections:
            marks = self._marks[name]
            # A couple of seconds behind the newest write; all the way to it once writes stop.
            upto = min(marks.hot, time.time_ns() - self._late_lag)
            if upto <= marks.late:
                continue
            docs = await self._read(name, {"$gt": marks.late, "$lte": upto})
            self._remember(name, docs)
            late = await self._move(name, docs) if docs else 0
            if late:
                log.info("outbox.late_commits_found", collection=name, events=late)
            found += late
            marks.late = upto
        return found

    async def clean(self) -> int:
        """Remove swept events from a bounded batch of documents; how many were cleaned."""
        cleaned = 0
        loop = asyncio.get_running_loop()
        for name in self._collections:
            marks = self._marks[name]
            upto = min(marks.late, time.time_ns() - self._clean_lag)
            if upto <= marks.clean:
                continue
            span = self._clean_span[name]
            high = min(upto, marks.clean + span, self._bound(name, marks.clean))
            docs = await self._read(name, {"$gt": marks.clean, "$lte": high})
            if len(docs) > CLEAN_BATCH:
                self._clean_span[name] = max(int(1e6), span // 4)
                cut = _mark_of(docs[CLEAN_BATCH - 1]) or 0
                docs = [d for d in docs if (_mark_of(d) or 0) <= cut]
                high = cut
            elif len(docs) < CLEAN_BATCH // 4:
                # A sparse or empty window: the next one is wider (an empty hour is crossed in
                # eight windows), as far as the marks the sweep saw let it.
                self._clean_span[name] = span * 4
            cleaned += await self._unstage(name, docs)
            marks.clean = high
        if loop.time() >= self._next_deep_check:
            self._next_deep_check = loop.time() + DEEP_CHECK_SECONDS
            cleaned += await self._deep_check()
        return cleaned

    async def _deep_check(self) -> int:
        """Documents below the cleaner's mark that still carry events (writes that committed
        after the cleaner passed), and documents staged by earlier versions."""
        cleaned = 0
        for name in self._collections:
            for condition in ({"$lte": self._marks[name].clean}, True):
                docs = await self._read(name, condition)
                for start in range(0, len(docs), CLEAN_BATCH):
                    cleaned += await self._unstage(name, docs[start : start + CLEAN_BATCH])
        return cleaned

    async def persist(self, force: bool = False) -> None:
        """Record how far each phase got (at most every PERSIST_EVERY_SECONDS)."""
        loop = asyncio.get_running_loop()
        if not force and loop.time() - self._last_persist < PERSIST_EVERY_SECONDS:
            return
        self._last_persist = loop.time()
        for name, marks in self._marks.items():
            if marks == self._persisted.get(name):
                continue
            await self._db[STATE].update_one(
                {"_id": _state_id(name)},
                {"$max": {"hot": marks.hot, "late": marks.late, "clean": marks.clean}},
                upsert=True,
            )
            self._persisted[name] = Marks(marks.hot, marks.late, marks.clean)

    def cleaning_due(self) -> bool:
        """Whether some collection has documents the cleaner has not passed yet (or the
        deep check is due)."""
        if asyncio.get_running_loop().time() >= self._next_deep_check:
            return True
        limit = time.time_ns() - self._clean_lag
        return any(min(m.late, limit) > m.clean for m in self._marks.values())

    def late_check_due(self) -> bool:
        limit = time.time_ns() - self._late_lag
        return any(min(m.hot, limit) > m.late for m in self._marks.values())

    # ------------------------------------------------------------------ helpers

    def _remember(self, name: str, docs: list[dict[str, Any]]) -> None:
        seen = self._seen.setdefault(name, deque(maxlen=RECENT_CAPACITY))
        for doc in docs:
            mark = _mark_of(doc)
            if mark is not None and (not seen or mark > seen[-1]):
                seen.append(mark)

    def _bound(self, name: str, low: int) -> int:
        """The end of a window starting at `low` that holds at most CLEAN_BATCH of the
        documents the sweep saw (no bound where it saw fewer)."""
        seen = self._seen.get(name) or deque()
        while seen and seen[0] <= low:
            seen.popleft()
        return seen[CLEAN_BATCH - 1] if len(seen) >= CLEAN_BATCH else 2**63 - 1

    async def _read(self, name: str, condition: Any) -> list[dict[str, Any]]:
        cursor = self._db[name].find({PENDING_FLAG: condition}, {PENDING_FIELD: 1, PENDING_FLAG: 1})
        if condition is not True:
            cursor = cursor.sort(PENDING_FLAG, ASCENDING)
        return [doc async for doc in cursor]

    async def _move(self, name: str, docs: list[dict[str, Any]], *, hot: bool = True) -> int:
        """Append the events of these documents that are not in the log yet."""
        events = await self._not_in_log(name, docs)
        if not events:
            return 0
        if hot:
            self.in_hand = len(events)
            self.in_hand_oldest = min(_staged_at(e) or time.time_ns() for e in events)
        try:
            for start in range(0, len(events), APPEND_CHUNK):
                chunk = events[start : start + APPEND_CHUNK]
                await self._append(chunk)
                for event in chunk:
                    self.recent.add(event["id"], _staged_at(event) or 0)
                if hot:
                    self.in_hand = len(events) - start - len(chunk)
                await asyncio.sleep(0)  # let requests in between chunks of a large sweep
        finally:
            if hot:
                self.in_hand, self.in_hand_oldest = 0, None
        return len(events)

    async def _not_in_log(self, name: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        trusted_after = max(self._trusted_after.get(name, 0), self.recent.forgotten_up_to)
        fresh: list[dict[str, Any]] = []
        uncertain: list[dict[str, Any]] = []
        chosen: set[str] = set()
        for doc in docs:
            for event in doc.get(PENDING_FIELD) or []:
                event_id = event.get("id")
                if event_id in self.recent or event_id in chosen:
                    continue
                chosen.add(event_id)
                staged = _staged_at(event)
                (fresh if staged is not None and staged > trusted_after else uncertain).append(event)
        if uncertain:
            known = await ids_in_log(self._db, [e["id"] for e in uncertain])
            for event in uncertain:
                if event["id"] in known:
                    self.recent.add(event["id"], _staged_at(event) or 0)
                else:
                    fresh.append(event)
        # Staging order; a document's own events keep their order (stable sort, equal marks).
        fresh.sort(key=lambda e: _staged_at(e) or 0)
        return fresh

    async def _unstage(self, name: str, docs: list[dict[str, Any]]) -> int:
        if not docs:
            return 0
        await self._move(name, docs, hot=False)  # anything not in the log yet goes there first
        await self._db[name].bulk_write(
            [
                UpdateOne(
                    {"_id": doc["_id"], PENDING_FLAG: doc[PENDING_FLAG]},
                    {"$unset": {PENDING_FIELD: "", PENDING_FLAG: ""}},
                )
                for doc in docs
            ],
            ordered=False,
        )
        return len(docs)
