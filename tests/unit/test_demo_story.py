"""The demo's story never dates a step after its own end: the services refuse a step in the
future (422), which stopped `mentorship demo` when a pair's last meeting fell within the
story's last hours and its goal progress, logged two hours after the meeting, was not yet due."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.demo import DemoResult, _Player

NOW = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


class RecordingApi:
    """Answers the calls a pair's months make, as the services would, and keeps every date."""

    def __init__(self) -> None:
        self.dated: list[tuple[str, datetime]] = []

    async def call(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        body = kwargs.get("json") or {}
        for key in ("at", "held_at"):
            if key in body:
                self.dated.append((f"{method} {path}", datetime.fromisoformat(body[key])))
        if path.endswith("/goals") and method == "POST":
            return {"goal_id": "goal-1"}
        if path.endswith("/suggestions"):
            return [{"mentor_id": "mentor-2"}]
        if path.endswith("/proposals"):
            return {"mentorship_id": None}
        return None


def test_no_step_of_any_pair_is_dated_after_the_end_of_the_story():
    api = RecordingApi()
    rng = random.Random(7)
    result = DemoResult(seed=None, started=NOW - timedelta(days=200))  # type: ignore[arg-type]
    player = _Player(api, result, random.Random(11), NOW)  # type: ignore[arg-type]

    async def play() -> None:
        for n in range(3_000):
            started = NOW - timedelta(days=rng.uniform(0, 200))
            await player._live("program-1", {
                "mentorship_id": f"ms-{n}", "mentee_id": f"mentee-{n}",
                "mentor_id": f"mentor-{n}", "cadence_days": rng.choice([7, 14, 30]),
                "reassessment_days": 90, "started_at": started.isoformat(), "need": None})

    asyncio.run(play())
    assert len(api.dated) > 10_000  # the story was played, not skipped
    late = [(step, at) for step, at in api.dated if at > NOW]
    assert late == [], late[:5]
