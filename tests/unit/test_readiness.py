"""Readiness: a dependency counts as down only after failing every probe for the grace."""

from __future__ import annotations

import asyncio

from shared.health import Readiness


class Script:
    """A probe whose answers the test sets, and a clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.reason: str | None = None
        self.hang = False

    async def probe(self) -> str | None:
        if self.hang:
            await asyncio.sleep(10)
        return self.reason


async def test_slow_or_failing_probes_within_the_grace_keep_the_service_ready() -> None:
    script = Script()
    readiness = Readiness({"Store": script.probe}, interval=1, timeout=0.01, grace=10,
                          clock=lambda: script.now)
    assert readiness.problems() == ["Store: not probed yet (starting)"]
    await readiness.probe_all()
    assert readiness.problems() == []

    script.hang = True  # busy: every probe times out
    for _ in range(5):
        await readiness.probe_all()
        script.now += 1.9
    assert readiness.problems() == []
    script.hang = False  # one answer resets the clock of the failure
    await readiness.probe_all()
    script.reason = "refused"
    for _ in range(5):
        await readiness.probe_all()
        script.now += 1.9
    assert readiness.problems() == []

    script.now += 1.0  # ten seconds of nothing but failures
    await readiness.probe_all()
    [problem] = readiness.problems()
    assert problem.startswith("refused (for ")

    script.reason = None
    await readiness.probe_all()
    assert readiness.problems() == []


async def test_a_dependency_never_reached_is_reported_at_once() -> None:
    script = Script()
    script.reason = "Kafka is not reachable (127.0.0.1:1: refused)"
    readiness = Readiness({"Kafka": script.probe}, interval=1, timeout=1, grace=10,
                          clock=lambda: script.now)
    await readiness.probe_all()
    assert readiness.problems() == ["Kafka is not reachable (127.0.0.1:1: refused)"]
