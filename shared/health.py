"""Readiness from background probes: "not ready" means a dependency has been unreachable for a
sustained period, not that one ping was slow.

A store busy with a burst of writes can take seconds to answer a ping; answering 503 then makes
a load balancer or an orchestrator take a healthy instance out (or restart it) exactly when it
is needed. So each dependency is probed in the background every `interval`, each probe may take
up to `timeout`, and a dependency counts as down only once every probe for `grace` seconds has
failed. `/readyz` answers from that state at once, without waiting on the store itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from shared.logging import get_logger

log = get_logger(__name__)

Probe = Callable[[], Awaitable[str | None]]  # None when reachable, else why not


@dataclass
class _State:
    ever_ok: bool = False
    failing_since: float | None = None
    reason: str = ""


class Readiness:
    """Background probes of a service's dependencies; `problems()` is what `/readyz` says."""

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        interval: float,
        timeout: float,
        grace: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probes = dict(probes)
        self._interval, self._timeout, self._grace = interval, timeout, grace
        self._clock = clock
        self._states = {name: _State() for name in self._probes}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            await self.probe_all()
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()

    async def probe_all(self) -> None:
        await asyncio.gather(*(self._probe(name) for name in self._probes))

    async def _probe(self, name: str) -> None:
        state = self._states[name]
        try:
            reason = await asyncio.wait_for(self._probes[name](), self._timeout)
        except TimeoutError:
            reason = f"{name} did not answer within {self._timeout:g} s"
        except Exception as exc:  # a probe says why, whatever went wrong
            reason = f"{name} is not reachable: {exc!r}"
        now = self._clock()
        if reason is None:
            if state.failing_since is not None:
                log.info("readiness.recovered", dependency=name,
                         after_seconds=round(now - state.failing_since, 1))
            state.ever_ok, state.failing_since, state.reason = True, None, ""
            return
        if state.failing_since is None:
            state.failing_since = now
            log.warning("readiness.probe_failed", dependency=name, reason=reason)
        state.reason = reason

    def problems(self) -> list[str]:
        """Why the service is not ready (empty when it is)."""
        now = self._clock()
        found = []
        for name, state in self._states.items():
            if not state.ever_ok:
                found.append(state.reason or f"{name}: not probed yet (starting)")
            elif state.failing_since is not None and now - state.failing_since >= self._grace:
                found.append(f"{state.reason} (for {now - state.failing_since:.0f} s)")
        return found


__all__ = ["Probe", "Readiness"]
