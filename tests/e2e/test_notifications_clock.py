"""Time-driven nudges through the running service, with its test clock moved forward over
HTTP (the endpoint exists only when NOTIFICATIONS_TEST_CLOCK is set): days pass in a second."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import Platform, in_thread
from tests.notifications_support import Events, pair_ids, publish
from tests.support import eventually, stays

DAY = 86_400


async def test_a_silent_pair_is_nudged_when_the_services_clock_moves(private_infra, jwt_keys, tmp_path, mailbox):
    platform = Platform(private_infra, jwt_keys, tmp_path / "platform", smtp_port=mailbox.port,
                        extra_env={"NOTIFICATIONS_TEST_CLOCK": "true", "SCHEDULER_POLL_MS": "100"})
    events = Events(f"net-{uuid.uuid4().hex[:6]}")
    tag = uuid.uuid4().hex[:6]
    mentor, mentee = f"mentor-{tag}@example.org", f"mentee-{tag}@example.org"
    try:
        await in_thread(platform.start, "notifications")
        program = events.program(cadence_days=7)
        mentor_event = events.person("mentor", "Grace Hopper", mentor, program_id=program.subject)
        mentee_event = events.person("mentee", "Ada Lovelace", mentee, program_id=program.subject)
        pair = pair_ids(program.subject, mentor_event.subject, mentee_event.subject)
        await publish(private_infra.kafka_bootstrap, program, mentor_event, mentee_event, events.started(pair, cadence_days=7))

        def subjects(address: str) -> list[str]:
            return [m["Subject"] for m in mailbox.to(address)]
        await eventually(lambda: subjects(mentee), lambda s: any(x.startswith("Meet") for x in s))
        clock = f"{platform.url('notifications')}/test/clock/advance"
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.post(clock, json={"seconds": -1})).status_code == 422
            await http.post(clock, json={"seconds": 10 * DAY + 60})  # cadence 7 + grace 3
            await eventually(lambda: subjects(mentee), lambda s: "Time to meet Grace?" in s)
            assert "Time to meet Ada?" not in subjects(mentor)
            await http.post(clock, json={"seconds": 3 * DAY})
            await eventually(lambda: subjects(mentor), lambda s: "Time to meet Ada?" in s)
        await stays(lambda: subjects(mentee).count("Time to meet Grace?"), 1, seconds=1.0)
    finally:
        await in_thread(platform.close)
