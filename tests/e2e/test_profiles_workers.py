"""Profiles served by several processes (PROFILES_HTTP_WORKERS): the whole API, imports
followed from any of them, one relay publishing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from tests.e2e.conftest import Platform
from tests.e2e.test_profiles_import import HEADER
from tests.support import eventually, finished_import


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def _serving_processes(pid: int) -> list[int]:
    """The uvicorn worker processes under the service (multiprocessing's helpers aside)."""
    return [child for child in _children(pid)
            if "multiprocessing.spawn" in Path(f"/proc/{child}/cmdline").read_bytes()
            .replace(b"\0", b" ").decode(errors="replace")]


async def test_two_processes_serve_the_api_and_imports_are_followed_across_them(
    infra, jwt_keys, tmp_path
):
    platform = Platform(infra, jwt_keys, tmp_path, extra_env={"PROFILES_HTTP_WORKERS": "2"},
                        database_prefix=f"workers{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(platform.start, "profiles")
    try:
        workers = await eventually(lambda: _serving_processes(platform.procs["profiles"].pid),
                                   lambda found: len(found) == 2, timeout=30,
                                   what="two worker processes")
        assert len(workers) == 2
        network = "net-workers"
        headers = {"Authorization": f"Bearer {jwt_keys.token('network_admin', network)}"}
        base = f"{platform.url('profiles')}/networks/{network}"
        # A connection per request: the workers take turns accepting them.
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(
                max_keepalive_connections=0)) as http:
            created = await http.post(f"{base}/institutions", headers=headers,
                                      json={"id": "inst-a", "name": "Institution A"})
            assert created.status_code == 201, created.text
            text = "\r\n".join([HEADER] + [
                f"w{n}@example.org,W,Person{n},inst-a,mentee,M2,,,,,,,,,,"
                for n in range(20)]) + "\r\n"
            started = await http.post(f"{base}/imports", content=text.encode(),
                                      headers={**headers, "Content-Type": "text/csv"})
            assert started.status_code == 202, started.text
            done = (await finished_import(http, started, headers)).json()
            assert (done["status"], done["created"]) == ("done", 20)
            url = str(started.request.url.join(started.headers["Location"]))
            published = await eventually(
                lambda: http.get(url, headers=headers),
                lambda r: r.json()["events_published"] == done["events_staged"],
                timeout=60, what="the import's events to be published by one of the relays")
            assert published.json()["events_published"] == done["events_staged"] > 0
            page = (await http.get(f"{base}/people", headers=headers,
                                   params={"limit": 100})).json()
            assert len(page["items"]) == 20
            for person in page["items"][:6]:
                one = await http.get(f"{base}/people/{person['id']}", headers=headers)
                assert one.status_code == 200 and one.json()["id"] == person["id"]
    finally:
        await asyncio.to_thread(platform.close)
