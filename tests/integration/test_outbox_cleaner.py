"""The relay's cleaner on the real document store: after a large batch of writes that follows
a quiet spell, it reads the staged documents a bounded window at a time. The store reads every
document of a range whatever the limit, and a wide window (or reading ahead for the next
document) was one read of every imported person with their events: the store answered nothing
else for seconds."""

from __future__ import annotations

import time
from datetime import timedelta

from shared.messaging.outbox import PENDING_FIELD, PENDING_FLAG, ensure_outbox_indexes
from shared.messaging.outbox_log import STAGED_KEY, append_to_outbox
from shared.messaging.outbox_staging import CLEAN_BATCH, StagingSweeper
from tests.support import mentee_registered_event

THINGS = "things"
MS = 1_000_000


def _staged(doc_id: str, mark: int) -> dict:
    event = {**mentee_registered_event(doc_id, network_id="n-cleaner").model_dump(mode="json"),
             STAGED_KEY: mark}
    return {"_id": doc_id, PENDING_FIELD: [event], PENDING_FLAG: mark}


async def test_after_a_quiet_hour_and_a_burst_the_cleaner_reads_bounded_windows(db, settings):
    await ensure_outbox_indexes(db, [THINGS])
    start = time.time_ns() - 2 * 3600 * 10**9
    early = [_staged(f"early-{i}", start + i) for i in range(10)]
    burst_start = start + 3600 * 10**9  # an hour later: 1,490 writes a millisecond apart
    burst = [_staged(f"burst-{i}", burst_start + i * MS) for i in range(1490)]
    await db[THINGS].insert_many(early + burst)

    async def append(events):
        return await append_to_outbox(db, events, retention=timedelta(hours=1), epoch=1)

    sweeper = StagingSweeper(db, [THINGS], settings, append)
    await sweeper.load()
    assert await sweeper.sweep() == 1500  # everything staged went to the log
    sweeper._marks[THINGS].late = time.time_ns()  # noqa: SLF001 - the late check passed too

    read_sizes: list[int] = []
    read = sweeper._read  # noqa: SLF001

    async def counted(name, condition):
        docs = await read(name, condition)
        read_sizes.append(len(docs))
        return docs

    sweeper._read = counted  # noqa: SLF001
    steps = 0
    while sweeper.cleaning_due() and steps < 500:
        await sweeper.clean()
        steps += 1
    assert await db[THINGS].count_documents({PENDING_FLAG: {"$exists": True}}) == 0
    assert max(read_sizes) <= 2 * CLEAN_BATCH, sorted(read_sizes)[-5:]
