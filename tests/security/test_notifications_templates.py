"""A template override froze the notifications service: templates were validated and rendered
on the event loop, so a 5000 x 5000 loop blocked /healthz for 9.7 s and a huge power or a
billion-character string never answered. Now they render in child processes with time, output
and memory limits, and a template over them is refused at save time (422) while the service
keeps answering."""

from __future__ import annotations

import asyncio
import time

import httpx

HOSTILE = {
    "nested loop": "{% for i in range(5000) %}{% for j in range(5000) %}x{% endfor %}{% endfor %}",
    "huge power": "{{ 9 ** (9 ** 9) }}",
    "billion characters": "{{ 'a' * 1000000000 }}",
    "endless output": "{% for i in range(100000) %}{{ recipient.display_name * 50 }}{% endfor %}",
}


async def test_templates_over_the_limits_are_refused_while_the_service_keeps_answering(
        api, platform, network_id):
    url = f"{platform.url('notifications')}/networks/{network_id}/templates/welcome"
    base = platform.url("notifications")
    async with httpx.AsyncClient(timeout=60) as http:
        for name, source in HOSTILE.items():
            started = time.monotonic()
            saving = asyncio.create_task(http.put(url, json={"text": source}, headers=api.auth(network_id)))
            await asyncio.sleep(0.2)
            health = await http.get(f"{base}/healthz", timeout=2)  # the event loop is free meanwhile
            assert health.status_code == 200, name
            refused = await saving
            assert refused.status_code == 422, (name, refused.text)
            assert time.monotonic() - started < 30, name
            assert any(reason in refused.json()["detail"] for reason in
                       ("takes longer", "characters", "exponent", "memory")), (name, refused.text)
        # The service still works: a reasonable override is accepted and listed.
        fine = await http.put(url, json={"subject": "Welcome, {{ recipient.first_name }}"}, headers=api.auth(network_id))
        assert fine.status_code == 200
        assert (await http.get(f"{base}/networks/{network_id}/templates", headers=api.auth(network_id))).status_code == 200


async def test_sandbox_escapes_and_oversized_templates_are_refused(
        api, platform, network_id):
    url = f"{platform.url('notifications')}/networks/{network_id}/templates/welcome"
    for escape in ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ recipient.__class__ }}",
                   "{{ cycler.__init__.__globals__ }}", "{% set x = [].append %}{{ x.__self__ }}"):
        refused = await api.http.put(url, json={"text": escape}, headers=api.auth(network_id))
        assert refused.status_code == 422, (escape, refused.text)
    too_big = await api.http.put(url, json={"html": "x" * 20_001}, headers=api.auth(network_id))
    assert too_big.status_code == 422 and len(too_big.text) < 1_000  # refused, and not echoed back
