"""Event pipeline benchmark: profile writes -> outbox -> Kafka -> analytics projection.

Starts its own embedded servers (SecantusDB, noida-db) on free ports and the profiles and
analytics services as real processes, then, per run (`--runs`, default 3):

1. throughput: N `MenteeRegistered` events appended to the profiles outbox log directly (in
   batches, as the relay's sweep appends them), timed until the analytics projection has
   counted every one: the pipeline relay -> Kafka -> consumer -> projection;
2. latency via the log: the same at a steady rate (default 1,000/s) for a few seconds; per
   event, the time from its append to its commit in the analytics consumer;
3. latency via the store: person documents with their event staged in the same insert (what
   the API writes) at the same rate; per event, document write to projection commit;
4. store path throughput: N/4 person documents with staged events, through the relay's sweep,
   to the projection.

Prints each figure per run, then min / median / max over the runs, with the load average
before each run (the machine is shared: read the figures with it). Then, once, registrations
through the HTTP API with concurrent clients.

`--idle` instead starts all four services (with a store per service, as `make up` runs them),
lets them settle and prints the CPU each process uses while nothing happens (the idle platform
should cost close to nothing).

Run: `.venv/bin/python bench/events.py [--events N] [--rate R] [--runs 3] [--idle]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

# `python bench/events.py` puts bench/ first on sys.path, not the checkout: without this the
# shared venv's editable install would supply ops/, shared/ and the services, from another
# checkout than the one being measured.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ops.infra import (  # noqa: E402
    ManagedProcess,
    embedded_mongo_uri,
    free_port,
    start_noida,
    start_secantus,
    wait_for_kafka,
    wait_for_mongo,
)
from ops.stack import start_service, wait_ready
from ops.stores import OWN_STORE, store_name
from services.profiles.domain import Person, register
from services.profiles.store import PEOPLE
from shared.auth import ensure_local_keypair, issue_token
from shared.messaging.outbox import PENDING_FIELD, append_to_outbox, stage_insert

RETENTION = timedelta(days=1)
SERVICES = ("profiles", "matching", "notifications", "analytics")


def _registration(network_id: str, n: int) -> dict:
    person, events = register(
        Person(
            network_id=network_id,
            institution_id=f"inst-{n % 7}",
            display_name=f"Bench Person {n}",
            email=f"bench{n}-{uuid.uuid4().hex[:6]}@example.org",
            role="mentee",
            career_stage="M2",
        )
    )
    document = {"_id": person.id, **asdict(person)}
    document.pop("id")
    return stage_insert(document, events)


def _event_of(document: dict) -> dict:
    return document[PENDING_FIELD][0]


async def _counted(analytics_db, network_id: str) -> int:
    doc = await analytics_db["registration_counts"].find_one({"_id": f"network:{network_id}"})
    return doc.get("mentees_registered", 0) if doc else 0


async def _applied_at(analytics_db, ids: list[str]) -> dict[str, datetime]:
    """When the analytics consumer committed each event: one inbox record per event (its id),
    or per batch (a list of ids); either shape is read."""
    found: dict[str, datetime] = {}
    wanted = set(ids)
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        # Two queries, never one $or: SecantusDB answers $or with a collection scan.
        for collection, query in (("inbox", {"_id": {"$in": chunk}}),
                                  ("inbox_batches", {"ids": {"$in": chunk}})):
            async for doc in analytics_db[collection].find(query, {"ids": 1, "applied_at": 1}):
                for event_id in doc.get("ids") or [doc["_id"]]:
                    if event_id in wanted:
                        found[event_id] = doc["applied_at"]
    return found


async def throughput(
    profiles_db, analytics_db, events: int, *, via_store: bool = False, batch: int = 500
) -> float:
    network_id = f"bench-{uuid.uuid4().hex[:6]}"
    documents = [_registration(network_id, n) for n in range(events)]
    started = time.perf_counter()
    for i in range(0, events, batch):
        chunk = documents[i : i + batch]
        if via_store:
            await profiles_db[PEOPLE].insert_many(chunk, ordered=False)
        else:
            await append_to_outbox(profiles_db, [_event_of(d) for d in chunk], retention=RETENTION)
    written = time.perf_counter() - started
    while await _counted(analytics_db, network_id) < events:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    print(f"  wrote {events} in {written:.2f}s ({events / written:,.0f}/s); "
          f"projected all after {elapsed:.2f}s: {events / elapsed:,.0f} events/s end to end")
    return events / elapsed


async def latency(
    profiles_db, analytics_db, rate: int, seconds: float, *, via_store: bool
) -> dict[str, float]:
    """Write at a steady rate, then per event: write -> commit in the analytics consumer."""
    network_id = f"bench-{uuid.uuid4().hex[:6]}"
    tick = 0.01  # write a small batch every 10 ms
    per_tick = max(1, round(rate * tick))
    total = int(rate * seconds)
    documents = [_registration(network_id, k) for k in range(total)]
    written_at: dict[str, datetime] = {}
    start = time.perf_counter()
    n = 0
    # A writer that cannot hold the rate stops at the end of the period all the same: the
    # figures are then for the rate it achieved (printed).
    while n < total and time.perf_counter() - start < seconds:
        target = start + (n / per_tick) * tick
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = documents[n : n + per_tick]
        now = datetime.now(UTC)
        for document in chunk:
            written_at[_event_of(document)["id"]] = now
        if via_store:
            await profiles_db[PEOPLE].insert_many(chunk, ordered=False)
        else:
            await append_to_outbox(profiles_db, [_event_of(d) for d in chunk], retention=RETENTION)
        n += len(chunk)
    achieved = n / (time.perf_counter() - start)
    while await _counted(analytics_db, network_id) < n:
        await asyncio.sleep(0.05)
    applied = await _applied_at(analytics_db, list(written_at))
    delays = sorted((applied[i] - written_at[i]).total_seconds() * 1000 for i in applied)
    figures = {
        "rate": achieved,
        "p50": statistics.median(delays),
        "p95": delays[int(len(delays) * 0.95) - 1],
        "p99": delays[int(len(delays) * 0.99) - 1],
        "max": delays[-1],
    }
    print(
        f"  {n} events at {achieved:,.0f}/s: write->projection p50 {figures['p50']:.0f} ms, "
        f"p95 {figures['p95']:.0f} ms, p99 {figures['p99']:.0f} ms, max {figures['max']:.0f} ms"
    )
    return figures


async def through_api(url: str, token: str, requests: int, concurrency: int) -> float:
    network_id = "bench-api"
    counter = iter(range(requests))
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(
            f"{url}/networks/{network_id}/institutions",
            json={"id": "inst-a", "name": "Institution A"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code in (201, 409), created.text

    async def worker(client: httpx.AsyncClient) -> None:
        for n in counter:
            response = await client.post(
                f"{url}/networks/{network_id}/mentees",
                json={
                    "institution_id": "inst-a",
                    "display_name": f"Api Person {n}",
                    "email": f"api{n}-{uuid.uuid4().hex[:6]}@example.org",
                    "career_stage": "M1",
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            response.raise_for_status()

    async with httpx.AsyncClient(timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    print(f"  {requests} POSTs with {concurrency} clients: {requests / elapsed:,.0f} writes/s")
    return requests / elapsed


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _group_pids(proc: ManagedProcess) -> list[int]:
    """Every live process of a server's process group (a launcher may exec or fork)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == proc.pid:  # pgrp
                pids.append(int(entry.name))
    return pids or [proc.pid]


def _summary(name: str, values: list[float], unit: str) -> None:
    print(f"  {name:48s} min {min(values):>9,.0f}  median {statistics.median(values):>9,.0f}  "
          f"max {max(values):>9,.0f} {unit}")


class Stack:
    """The embedded servers and some services, on free ports under a temp dir."""

    def __init__(self, services: tuple[str, ...], store_per_service: bool = False) -> None:
        """`store_per_service`: matching, notifications and analytics each on a SecantusDB of
        their own, as `make up` runs them (`ops.stores`); else every service on one."""
        self.root = Path(tempfile.mkdtemp(prefix="bench-events-"))
        self.own_store = [s for s in OWN_STORE if s in services] if store_per_service else []
        self.store_of: dict[str, str] = {}  # service -> its own store's URI, once started
        kafka_port, mongo_port = free_port(), free_port()
        self.bootstrap, self.mongo_uri = f"127.0.0.1:{kafka_port}", embedded_mongo_uri(mongo_port)
        self.services = services
        self.ports = {name: free_port() for name in services}
        self.procs: dict[str, ManagedProcess] = {}
        self._ports = (kafka_port, mongo_port)

    def __enter__(self) -> Stack:
        kafka_port, mongo_port = self._ports
        root = self.root
        # die_with_parent: a benchmark cut short (timeout, Ctrl-C) leaves no servers behind.
        self.procs["secantus"] = start_secantus(root / "mongo", mongo_port, root / "mongo.log",
                                                die_with_parent=True)
        self.procs["noida"] = start_noida(root / "kafka", kafka_port, root / "kafka.log",
                                          die_with_parent=True)
        wait_for_mongo(self.mongo_uri)
        wait_for_kafka(self.bootstrap)
        self.private, public = ensure_local_keypair(root)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MONGODB_URI": self.mongo_uri,
            "DATA_DIR": str(root),
            "JWT_PUBLIC_KEY_FILE": str(public),
            "LOG_LEVEL": "WARNING",
            "SMTP_PORT": "1",
        }
        for service in self.own_store:
            name, port = store_name(service), free_port()
            self.procs[name] = start_secantus(root / name, port, root / f"{name}.log",
                                              die_with_parent=True, name=name)
            self.store_of[service] = embedded_mongo_uri(port)
            wait_for_mongo(self.store_of[service])
        for name, port in self.ports.items():
            service_env = {**env, "MONGODB_URI": self.uri_of(name)}
            self.procs[name] = start_service(name, port, service_env, root / f"{name}.log",
                                             die_with_parent=True)
        for name, port in self.ports.items():
            wait_ready(f"http://127.0.0.1:{port}", 90, proc=self.procs[name])
        return self

    def uri_of(self, service: str) -> str:
        return self.store_of.get(service, self.mongo_uri)

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop(timeout=10)


async def idle(settle: float, seconds: float) -> None:
    with Stack(SERVICES, store_per_service=True) as stack:
        print(f"idle platform: settling {settle:.0f}s, then measuring CPU for {seconds:.0f}s "
              f"(load {_loadavg()})")
        await asyncio.sleep(settle)
        pids = {name: _group_pids(proc) for name, proc in stack.procs.items()}
        before = {name: sum(_cpu_seconds(p) for p in ps) for name, ps in pids.items()}
        await asyncio.sleep(seconds)
        after = {name: sum(_cpu_seconds(p) for p in ps) for name, ps in pids.items()}
        total = 0.0
        for name in pids:
            share = (after[name] - before[name]) / seconds * 100
            total += share
            print(f"  {name:20s} {share:5.1f} % of a core")
        print(f"  {'all':20s} {total:5.1f} % of a core (load {_loadavg()})")


async def pipeline(args: argparse.Namespace) -> None:
    # The layout `make up` runs (analytics on a store of its own); BENCH_SHARED_STORE=1: one.
    with Stack(("profiles", "analytics"),
               store_per_service=not os.environ.get("BENCH_SHARED_STORE")) as stack:
        profiles_db = AsyncMongoClient(stack.uri_of("profiles"), tz_aware=True)["mentorship_profiles"]
        analytics_db = AsyncMongoClient(stack.uri_of("analytics"),
                                        tz_aware=True)["mentorship_analytics"]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}")
        print("warm-up")
        await throughput(profiles_db, analytics_db, 500)
        results: dict[str, list[float]] = defaultdict(list)
        for run in range(1, args.runs + 1):
            print(f"run {run}/{args.runs} (load {_loadavg()})")
            print(" throughput (outbox log -> relay -> Kafka -> analytics projection)")
            results["throughput"].append(await throughput(profiles_db, analytics_db, args.events))
            print(f" latency via the log at {args.rate}/s for {args.seconds:.0f}s")
            log = await latency(profiles_db, analytics_db, args.rate, args.seconds, via_store=False)
            print(f" latency via the store at {args.rate}/s for {args.seconds:.0f}s")
            store = await latency(profiles_db, analytics_db, args.rate, args.seconds, via_store=True)
            for key, figures in (("log", log), ("store", store)):
                results[f"{key} rate"].append(figures["rate"])
                results[f"{key} p50"].append(figures["p50"])
                results[f"{key} p99"].append(figures["p99"])
            print(" store path (documents with staged events -> sweep -> ... -> projection)")
            results["store path"].append(
                await throughput(profiles_db, analytics_db, args.events // 4, via_store=True)
            )
        print(f"summary over {args.runs} runs (load {_loadavg()})")
        _summary("throughput, outbox log -> projection", results["throughput"], "events/s")
        for key in ("log", "store"):
            _summary(f"latency via the {key}: achieved rate", results[f"{key} rate"], "events/s")
            _summary(f"latency via the {key}: p50", results[f"{key} p50"], "ms")
            _summary(f"latency via the {key}: p99", results[f"{key} p99"], "ms")
        _summary("store path throughput", results["store path"], "events/s")
        if args.api_requests:
            print("through the HTTP API")
            token = issue_token(stack.private.read_bytes(), role="network_admin",
                                network_id="bench-api")
            await through_api(f"http://127.0.0.1:{stack.ports['profiles']}", token,
                              args.api_requests, 16)
        await profiles_db.client.close()
        await analytics_db.client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1_000, help="events/s for the latency runs")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-requests", type=int, default=2_000)
    parser.add_argument("--idle", action="store_true", help="measure an idle platform's CPU")
    parser.add_argument("--settle", type=float, default=20.0)
    args = parser.parse_args()
    if args.idle:
        await idle(args.settle, args.seconds if args.seconds != 10.0 else 30.0)
    else:
        await pipeline(args)


if __name__ == "__main__":
    asyncio.run(main())
