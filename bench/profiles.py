"""Profiles benchmark: roster imports until the whole platform has applied them, and profile
reads at rest and while a large import runs.

Starts what `mentorship up` starts, on free ports and a temp data dir: SecantusDB, noida-db, a
mail catcher and the four services as real processes. Then, per run (`--runs`, default 3, each
in networks of its own):

1. a roster of `--people` (default 20,000; one row each, a full mentor or mentee profile,
   enrolled in a program) imported through `POST /imports`, timed from the request to: the
   rows written, every event published by profiles' relay, and every service caught up (each
   consuming service's stored offsets at the end of every partition it reads, and every
   outbox drained): "accepted to fully applied in all four services";
2. at rest: `GET /people/{id}` of that network with `--concurrency` clients (default 200);
3. a roster of `--large` people (default 50,000) in another network, timed the same way,
   while `--during-concurrency` clients (default 20) read profiles of the first network.

Latencies are per request, p50 / p99 / max; each figure is printed per run and as min /
median / max over the runs, with the load average (the machine is shared). The client is a
minimal HTTP/1.1 keep-alive client, so the measure is the server's, not the client library's.
Works against code whose import answers synchronously too: `PYTHONPATH=<checkout of before>`
measures that code (see `running.py`). Run: `.venv/bin/python bench/profiles.py [--runs 3]
[--people 20000] [--large 50000] [--env PROFILES_HTTP_WORKERS=2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from running import Convergence, cpu_seconds, cpu_spent, describe, start_platform

from ops.seed import HELP, LANGUAGES, SPECIALTIES
from services.profiles.roster import COLUMNS

INSTITUTIONS = [f"inst-{n}" for n in range(5)]
MENTOR_STAGES = ("fellow", "faculty-assistant-professor", "faculty-professor", "PGY-4")
MENTEE_STAGES = ("M1", "M2", "M3", "M4", "PGY-1", "PGY-2")


def roster(people: int, program_ids: dict[str, str], seed: int = 1, tag: str = "") -> str:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), restval="")
    writer.writeheader()
    for n in range(people):
        institution = INSTITUTIONS[n % len(INSTITUTIONS)]
        row = {"email": f"person{n}{tag}@bench.example.org", "first_name": f"First{n}",
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


# ------------------------------------------------------------------ a minimal HTTP client


class Connection:
    """One keep-alive HTTP/1.1 connection: GET, read the status and a Content-Length body."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> int:
        for attempt in (1, 2):  # a connection the server closed is opened again once
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                         *(f"{k}: {v}" for k, v in headers.items()), "", ""]
                self.writer.write("\r\n".join(lines).encode())
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await self.reader.readexactly(length)
                return status
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


async def latencies(base: str, paths: list[str], headers: dict[str, str], concurrency: int,
                    until: asyncio.Event | None = None) -> list[float]:
    """Seconds per request with `concurrency` requests in flight: every path once, or (with
    `until`) round the paths again and again until the event is set."""
    url = urlsplit(base)
    times: list[float] = []
    errors: list[int] = []
    queue = list(reversed(paths))

    async def worker(n: int) -> None:
        connection = Connection(url.hostname or "127.0.0.1", url.port or 80)
        await asyncio.sleep(0.005 * n)  # open the connections a few at a time
        try:
            while True:
                if until is not None:
                    if until.is_set():
                        return
                    path = paths[random.randrange(len(paths))]
                elif queue:
                    path = queue.pop()
                else:
                    return
                started = time.perf_counter()
                status = await connection.get(url.path + path, headers)
                times.append(time.perf_counter() - started)
                if status != 200:
                    errors.append(status)
        finally:
            await connection.close()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    if errors:
        print(f"    ({len(errors)} answers were not 200: {sorted(set(errors))})")
    return times


@dataclass
class Latency:
    p50: float
    p99: float
    max: float
    rate: float

    @classmethod
    def of(cls, times: list[float], wall: float) -> Latency:
        ordered = sorted(times)
        return cls(statistics.median(ordered) * 1000,
                   ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
                   ordered[-1] * 1000, len(times) / wall)

    def __str__(self) -> str:
        return (f"p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms, max {self.max:.1f} ms "
                f"({self.rate:,.0f} requests/s)")


async def setup_network(http: httpx.AsyncClient, base: str, headers: dict) -> dict[str, str]:
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


@dataclass
class ImportTimes:
    rows: float
    published: float
    converged: float


async def import_and_converge(http: httpx.AsyncClient, base: str, headers: dict, text: str,
                              convergence: Convergence, limit: float) -> ImportTimes:
    started = time.perf_counter()
    r = await http.post(f"{base}/imports", content=text.encode(), timeout=3600,
                        headers=headers | {"Content-Type": "text/csv"})
    r.raise_for_status()
    job = r.json()
    rows_at = published_at = None
    if r.status_code == 200:  # the import answered when its rows were written (before)
        rows_at = time.perf_counter() - started
    while True:
        now = time.perf_counter() - started
        if rows_at is None:
            job = (await http.get(f"{base}/imports/{job['id']}", headers=headers)).json()
            if job["status"] != "running":
                if job["status"] != "done":
                    raise RuntimeError(f"the import {job['status']}: {job.get('error')}")
                rows_at = now
        if rows_at is not None and published_at is None and await convergence.published(
                "profiles"):
            published_at = now
        if published_at is not None and await convergence.everything_applied():
            return ImportTimes(rows_at, published_at, time.perf_counter() - started)
        if now > limit:
            print(f"    not converged after {limit:.0f} s (rows at {rows_at}, profiles' events "
                  f"published at {published_at})")
            return ImportTimes(rows_at or now, published_at or now, float("inf"))
        await asyncio.sleep(0.5)


async def person_paths(http: httpx.AsyncClient, base: str, headers: dict, n: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while len(ids) < n:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await http.get(f"{base}/people", headers=headers, params=params)).json()
        ids += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return [f"/people/{i}" for i in ids]


def spread(values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    if not finite:
        return "did not finish"
    return (f"{min(finite):,.1f} / {statistics.median(finite):,.1f} / {max(finite):,.1f}"
            + (f" ({len(values) - len(finite)} did not finish)" if len(finite) < len(values)
               else ""))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--during-concurrency", type=int, default=20)
    parser.add_argument("--limit", type=float, default=900,
                        help="seconds to wait for an import to converge before giving up")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE for the services (repeatable)")
    args = parser.parse_args()
    env_extra = dict(item.split("=", 1) for item in args.env)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {describe(env_extra)}")
    plat = start_platform(env_extra)
    convergence = Convergence(plat)
    await convergence.start()
    results: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    try:
        async with httpx.AsyncClient(timeout=300) as http:
            for run in range(1, args.runs + 1):
                small, large = f"bench-{run}", f"bench-large-{run}"
                base = f"{plat.urls['profiles']}/networks/{small}"
                headers = plat.token(small)
                text = roster(args.people, await setup_network(http, base, headers), tag=small)
                print(f"run {run}: import of {args.people:,} people "
                      f"(load average {os.getloadavg()[0]:.1f})")
                cpu = cpu_seconds(plat)
                times = await import_and_converge(http, base, headers, text, convergence,
                                                  args.limit)
                print(f"  rows written {times.rows:.1f} s, events published "
                      f"{times.published:.1f} s, all four services converged "
                      f"{times.converged:.1f} s (load average {os.getloadavg()[0]:.1f}); "
                      f"the platform used {cpu_spent(cpu, cpu_seconds(plat))}")
                note(f"{args.people:,}-row import: accepted to converged, s", times.converged)
                note(f"{args.people:,}-row import: rows written, s", times.rows)

                paths = await person_paths(http, base, headers, 2_000)
                await latencies(base, paths[:args.concurrency], headers, args.concurrency)
                load = os.getloadavg()[0]
                cpu = cpu_seconds(plat)
                started = time.perf_counter()
                sample = [random.choice(paths) for _ in range(args.requests)]
                at_rest = Latency.of(await latencies(base, sample, headers, args.concurrency),
                                     time.perf_counter() - started)
                spent = cpu_seconds(plat)
                per_request = {name: (spent[name] - cpu[name]) / args.requests * 1000
                               for name in ("profiles", "mongo")}
                print(f"  GET one profile, {args.concurrency} concurrent clients, at rest: "
                      f"{at_rest} (load average {load:.1f}); CPU per request: profiles "
                      f"{per_request['profiles']:.2f} ms, SecantusDB {per_request['mongo']:.2f} ms")
                note(f"GET at rest, {args.concurrency} clients, p99 ms", at_rest.p99)

                if args.large:
                    large_base = f"{plat.urls['profiles']}/networks/{large}"
                    large_headers = plat.token(large)
                    large_text = roster(args.large, await setup_network(
                        http, large_base, large_headers), seed=run, tag=large)
                    print(f"run {run}: import of {args.large:,} people while "
                          f"{args.during_concurrency} clients read profiles of {small} "
                          f"(load average {os.getloadavg()[0]:.1f})")
                    done = asyncio.Event()
                    cpu = cpu_seconds(plat)
                    started = time.perf_counter()
                    reads = asyncio.create_task(latencies(base, paths, headers,
                                                          args.during_concurrency, until=done))
                    try:
                        big = await import_and_converge(http, large_base, large_headers,
                                                        large_text, convergence, args.limit)
                    finally:
                        done.set()
                        during = Latency.of(await reads, time.perf_counter() - started)
                    print(f"  rows written {big.rows:.1f} s, events published "
                          f"{big.published:.1f} s, all four services converged "
                          f"{big.converged:.1f} s (load average {os.getloadavg()[0]:.1f}); "
                          f"the platform used {cpu_spent(cpu, cpu_seconds(plat))}")
                    print(f"  GET one profile in {small} meanwhile: {during}")
                    note(f"{args.large:,}-row import: accepted to converged, s", big.converged)
                    note(f"GET in another network during it, {args.during_concurrency} "
                         "clients, p99 ms", during.p99)
        print(f"\nmin / median / max over {args.runs} runs:")
        for name, values in results.items():
            print(f"  {name:<62} {spread(values)}")
        print(json.dumps({"results": results, "load_average_end": os.getloadavg()[0]}))
    finally:
        await convergence.close()
        plat.stop()


if __name__ == "__main__":
    asyncio.run(main())
