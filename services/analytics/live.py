"""The live projection of each analytics database, held in the service's memory.

Reports must answer in well under 200 ms for a network of 20,000 people, which rules out
reading facts per request; the projection is loaded once from the stored facts and then
follows every consumed event. Applying an event is idempotent, so an event applied here and
then redelivered (a batch whose transaction failed) changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field

from pymongo.asynchronous.database import AsyncDatabase

from services.analytics.projection import Projection
from services.analytics.store import load_projection


@dataclass
class Live:
    projection: Projection = field(default_factory=Projection)
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_LIVE: dict[str, Live] = {}


def live_for(db: AsyncDatabase) -> Live:
    live = _LIVE.get(db.name)
    if live is None:  # not setdefault: that built a new (empty) Projection on every call
        live = _LIVE[db.name] = Live()
    return live


async def loaded_projection(db: AsyncDatabase) -> Projection:
    """The live projection, loaded from the stored facts on first use."""
    live = live_for(db)
    if not live.loaded:
        async with live.lock:
            if not live.loaded:
                await load_projection(db, live.projection)
                # Millions of long-lived objects: keep the cyclic GC from walking them on
                # every full collection (pauses of hundreds of ms in the middle of a report).
                gc.collect()
                gc.freeze()
                live.loaded = True
    return live.projection


def forget(db: AsyncDatabase) -> None:
    """Drop the in-memory projection (after a rebuild replaced the stored facts)."""
    _LIVE.pop(db.name, None)
