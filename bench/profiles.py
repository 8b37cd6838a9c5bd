"""Profiles benchmark: roster import at scale and read latency under concurrency.

Starts its own embedded servers (SecantusDB, noida-db) on free ports and the profiles service
as a real process, then:

1. import: a roster of N people (default 20,000; one row each, full mentor or mentee
   profile, enrolled in a program) through `POST /imports`: a dry run, the real run (time and
   rows/s; target < 60 s), and the same file again (idempotent: everyone unchanged);
2. latency: `GET /people/{id}` and a filtered list (`role`, `specialty`, `has_capacity`) with
   C concurrent clients (default 200), p50/p99 per request (target GET p99 < 50 ms).

The client runs on the same machine as the service (and, on a shared machine, alongside
other work), so the figures include its own CPU. Run:
`.venv/bin/python bench/profiles.py [--people N] [--concurrency C] [--requests R]`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

from ops.infra import (
    embedded_mongo_uri,
    free_port,
    start_noida,
    start_secantus,
    wait_for_kafka,
    wait_for_mongo,
)
from ops.seed import HELP, LANGUAGES, SPECIALTIES
from ops.stack import start_service, wait_ready
from services.profiles.roster import COLUMNS
from services.profiles.store import PEOPLE
from shared.messaging.outbox import PENDING_FLAG
from shared.auth import ensure_local_keypair, issue_token

NETWORK = "bench-net"
TIMEOUT = 120.0
INSTITUTIONS = [f"inst-{n}" for n in range(5)]
MENTOR_STAGES = ("fellow", "faculty-assistant-professor", "faculty-professor", "PGY-4")
MENTEE_STAGES = ("M1", "M2", "M3", "M4", "PGY-1", "PGY-2")


def roster(people: int, program_ids: dict[str, str], seed: int = 1) -> str:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), restval="")
    writer.writeheader()
    for n in range(people):
        institution = INSTITUTIONS[n % len(INSTITUTIONS)]
        row = {"email": f"person{n}@bench.example.org", "first_name": f"First{n}",
               "last_name": f"Last{n % 997}", "institution_id": institution,
               "program_id": program_ids[institution]}
        if n % 2:
            row |= {"role": "mentor", "career_stage": rng.choice(MENTOR_STAGES),
                    "specialty": rng.choice(SPECIALTIES),
                    "help_offered": ";".join(rng.sample(HELP, 3)),
                    "capacity": str(rng.randint(0, 4)), "training_completed": "yes",
                    "languages": ";".join(dict.fromkeys(["en", rng.choice(LANGUAGES)])),
                    "meeting_modes": "in-person;virtual", "time_zone": "America/Chicago"}
        else:
            row |= {"role": "mentee", "career_stage": rng.choice(MENTEE_STAGES),
                    "specialty_interests": ";".join(rng.sample(SPECIALTIES, 2)),
                    "needs": ";".join(rng.sample(HELP, 2)), "mentors_wanted": "1",
                    "preferred_language": "en", "preferred_mode": "virtual"}
        writer.writerow(row)
    return out.getvalue()


async def setup(http: httpx.AsyncClient, base: str, headers: dict) -> dict[str, str]:
    today = datetime.now(UTC).date()
    programs = {}
    for institution in INSTITUTIONS:
        r = await http.post(f"{base}/institutions", headers=headers,
                            json={"id": institution, "name": f"Institution {institution}"})
        r.raise_for_status()
        r = await http.post(f"{base}/programs", headers=headers, json={
            "institution_id": institution, "name": f"Program of {institution}", "type": "career",
            "cohort_start": str(today + timedelta(days=30)),
            "cohort_end": str(today + timedelta(days=300)),
            "enrolment_opens": str(today), "enrolment_closes": str(today + timedelta(days=20)),
        })
        r.raise_for_status()
        programs[institution] = r.json()["id"]
    return programs


async def timed_import(http, base, headers, text: str, dry_run: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    r = await http.post(f"{base}/imports", params={"dry_run": str(dry_run).lower()},
                        content=text.encode(), headers=headers | {"Content-Type": "text/csv"},
                        timeout=900)
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed, r.json()


async def latencies(http, urls: list[str], headers: dict, concurrency: int,
                    ramp: float = 0.0) -> list[float]:
    """Per-request seconds, `concurrency` requests in flight. A connection the server reset
    is retried once on a new one and its time counted from the first try."""
    queue = list(reversed(urls))
    times: list[float] = []
    failures: list[str] = []

    async def worker(n: int) -> None:
        await asyncio.sleep(ramp * n)
        while queue:
            url = queue.pop()
            started = time.perf_counter()
            try:
                try:
                    r = await http.get(url, headers=headers)
                except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
                    r = await http.get(url, headers=headers)
            except httpx.TimeoutException:
                failures.append(url)  # over the client's timeout: counted, not hidden
                continue
            times.append(time.perf_counter() - started)
            r.raise_for_status()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    if failures:
        print(f"  ({len(failures)} of {len(urls)} requests timed out after {TIMEOUT:.0f}s and "
              "are not in the percentiles)")
    return times


def report(name: str, times: list[float], wall: float) -> None:
    ordered = sorted(times)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    if not times:
        print(f"  {name}: no request finished")
        return
    print(f"  {name}: {len(times)} requests in {wall:.1f}s ({len(times) / wall:,.0f}/s), "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ordered[-1] * 1000:.1f} ms")


async def drain(mongo_uri: str, limit: float = 300) -> tuple[float, int]:
    """Seconds until the relay has swept every staged event out of the person documents (or
    `limit`), and how many documents still had events staged then."""
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    started = time.perf_counter()
    try:
        people = client["mentorship_profiles"][PEOPLE]
        while True:
            left = await people.count_documents({PENDING_FLAG: True})
            if left == 0 or time.perf_counter() - started >= limit:
                break
            await asyncio.sleep(0.5)
    finally:
        await client.close()
    return time.perf_counter() - started, left


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--relay-idle", action="store_true",
                        help="poll the outbox every 10 min, so the relay sweeps only when the "
                             "import wakes it at its end: the import's own cost, apart from "
                             "publication (which competes for the store)")
    parser.add_argument("--drain", type=float, default=300,
                        help="seconds to wait for the outbox to drain before reading")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-profiles-"))
    kafka_port, mongo_port, port = free_port(), free_port(), free_port()
    bootstrap, mongo_uri = f"127.0.0.1:{kafka_port}", embedded_mongo_uri(mongo_port)
    procs = [
        start_secantus(root / "mongo", mongo_port, root / "mongo.log", die_with_parent=True),
        start_noida(root / "kafka", kafka_port, root / "kafka.log", die_with_parent=True),
    ]
    try:
        wait_for_mongo(mongo_uri)
        wait_for_kafka(bootstrap)
        private, public = ensure_local_keypair(root)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_URI": mongo_uri,
               "DATA_DIR": str(root), "JWT_PUBLIC_KEY_FILE": str(public),
               "LOG_LEVEL": "WARNING",
               **({"OUTBOX_POLL_INTERVAL_MS": "600000"} if args.relay_idle else {})}
        procs.append(start_service("profiles", port, env, root / "profiles.log",
                                   die_with_parent=True))
        wait_ready(f"http://127.0.0.1:{port}", 60)
        token = issue_token(private.read_bytes(), role="network_admin", network_id=NETWORK,
                            ttl_seconds=7200)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}/networks/{NETWORK}"
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}")
        limits = httpx.Limits(max_connections=args.concurrency,
                              max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http:
            programs = await setup(http, base, headers)
            text = roster(args.people, programs)
            print(f"import of {args.people:,} people ({len(text) / 1e6:.1f} MB CSV)")
            for label, dry in (("dry run", True), ("real run", False), ("again (idempotent)", False)):
                elapsed, result = await timed_import(http, base, headers, text, dry)
                print(f"  {label}: {elapsed:.1f}s, {args.people / elapsed:,.0f} rows/s; "
                      f"created {result['created']}, updated {result['updated']}, "
                      f"unchanged {result['unchanged']}, invalid {len(result['invalid'])}")
                if not dry and result["created"]:
                    waited, left = await drain(mongo_uri, args.drain)
                    print(f"  outbox: {waited:.1f}s after the import returned, "
                          + ("every staged event was swept to the log" if left == 0
                             else f"{left:,} people still had events staged"))

            # Ids to read: a page per specialty (an indexed filter; an unfiltered page of a
            # large network is a pass over all of it on SecantusDB).
            ids = []
            for specialty in SPECIALTIES:
                page = (await http.get(f"{base}/people", headers=headers, params={
                    "limit": 100, "specialty": specialty})).json()
                ids += [p["id"] for p in page["items"]]
        rng = random.Random(2)
        # A fresh pool: connections idle through the import were closed by the server.
        async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http:
            print(f"latency with {args.concurrency} concurrent clients")
            # Warm-up: open the connections a few at a time (a burst of 200 SYNs overflows
            # the listen queue of a busy server), then keep them.
            await latencies(http, [f"{base}/people/{ids[0]}"] * args.concurrency * 2, headers,
                            args.concurrency, ramp=0.01)
            one = [f"{base}/people/{rng.choice(ids)}" for _ in range(args.requests)]
            started = time.perf_counter()
            times = await latencies(http, one, headers, args.concurrency)
            report("GET one profile", times, time.perf_counter() - started)
            lists = [
                f"{base}/people?role=mentor&has_capacity=true&limit=20"
                f"&specialty={rng.choice(SPECIALTIES)}"
                for _ in range(args.requests // 4)
            ]
            started = time.perf_counter()
            times = await latencies(http, lists, headers, args.concurrency)
            report("filtered list (mentor, specialty, has capacity; 20 per page)", times,
                   time.perf_counter() - started)
    finally:
        for proc in reversed(procs):
            proc.stop(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
