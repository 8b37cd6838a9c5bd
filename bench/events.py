"""Event pipeline benchmark: profile writes -> outbox -> Kafka -> analytics projection.

Starts its own embedded servers (SecantusDB, noida-db) on free ports and the profiles and
analytics services as real processes, then:

1. throughput: N `MenteeRegistered` events appended to the profiles outbox log directly (in
   batches, as the relay's sweep appends them), timed until the analytics projection has
   counted every one: the pipeline relay -> Kafka -> consumer -> projection;
2. latency: the same at a steady rate (default half the target, 1,000/s) for a few seconds;
   per event, the time from its append to its commit in the analytics inbox;
3. store path: N person documents with their events staged in the same insert (what the API
   writes), through the relay's sweep, to the projection;
4. API: registrations through `POST /networks/{id}/mentees` with concurrent clients.

Prints the figures. Run: `.venv/bin/python bench/events.py [--events N] [--rate R]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

from ops.infra import embedded_mongo_uri, free_port, start_noida, start_secantus, wait_for_kafka, wait_for_mongo
from ops.stack import start_service, wait_ready
from services.profiles.domain import Person, register
from services.profiles.store import PEOPLE
from shared.auth import ensure_local_keypair, issue_token
from shared.messaging.outbox import append_to_outbox, stage_insert


RETENTION = timedelta(days=1)


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


async def _counted(analytics_db, network_id: str) -> int:
    doc = await analytics_db["registration_counts"].find_one({"_id": f"network:{network_id}"})
    return doc.get("mentees_registered", 0) if doc else 0


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
            staged = [d["_pending_events"][0] for d in chunk]
            await append_to_outbox(profiles_db, staged, retention=RETENTION)
    written = time.perf_counter() - started
    while await _counted(analytics_db, network_id) < events:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    print(f"  wrote {events} in {written:.2f}s ({events / written:,.0f}/s)")
    print(f"  projected all {events} after {elapsed:.2f}s: {events / elapsed:,.0f} events/s end to end")
    return events / elapsed


async def latency(profiles_db, analytics_db, rate: int, seconds: float) -> dict[str, float]:
    network_id = f"bench-{uuid.uuid4().hex[:6]}"
    tick = 0.01  # write a small batch every 10 ms
    per_tick = max(1, round(rate * tick))
    total = int(rate * seconds)
    ids: list[str] = []
    prepared = [_registration(network_id, k)["_pending_events"][0] for k in range(total)]
    start = time.perf_counter()
    n = 0
    while n < total:
        target = start + (n / per_tick) * tick
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        staged = [
            {**event, "time": datetime.now(UTC).isoformat()} for event in prepared[n : n + per_tick]
        ]
        await append_to_outbox(profiles_db, staged, retention=RETENTION)
        ids.extend(event["id"] for event in staged)
        n += per_tick
    achieved = n / (time.perf_counter() - start)
    while await _counted(analytics_db, network_id) < n:
        await asyncio.sleep(0.05)
    written_at = {}
    async for doc in profiles_db["outbox"].find({"_id": {"$in": ids}}, {"created_at": 1}):
        written_at[doc["_id"]] = doc["created_at"]
    delays = []
    async for doc in analytics_db["inbox"].find({"_id": {"$in": ids}}, {"applied_at": 1}):
        delays.append((doc["applied_at"] - written_at[doc["_id"]]).total_seconds() * 1000)
    delays.sort()
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1_000, help="events/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--api-requests", type=int, default=2_000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-events-"))
    kafka_port, mongo_port = free_port(), free_port()
    bootstrap, mongo_uri = f"127.0.0.1:{kafka_port}", embedded_mongo_uri(mongo_port)
    # die_with_parent: a benchmark cut short (timeout, Ctrl-C) leaves no servers behind.
    procs = [
        start_secantus(root / "mongo", mongo_port, root / "mongo.log", die_with_parent=True),
        start_noida(root / "kafka", kafka_port, root / "kafka.log", die_with_parent=True),
    ]
    try:
        wait_for_mongo(mongo_uri)
        wait_for_kafka(bootstrap)
        private, public = ensure_local_keypair(root)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "MONGODB_URI": mongo_uri,
            "DATA_DIR": str(root),
            "JWT_PUBLIC_KEY_FILE": str(public),
            "LOG_LEVEL": "WARNING",
        }
        ports = {"profiles": free_port(), "analytics": free_port()}
        for name, port in ports.items():
            procs.append(
                start_service(name, port, env, root / f"{name}.log", die_with_parent=True)
            )
        for name, port in ports.items():
            wait_ready(f"http://127.0.0.1:{port}", 60)
        client = AsyncMongoClient(mongo_uri, tz_aware=True)
        profiles_db, analytics_db = client["mentorship_profiles"], client["mentorship_analytics"]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print("warm-up")
        await throughput(profiles_db, analytics_db, 500)
        print("throughput (outbox log -> relay -> Kafka -> analytics projection)")
        await throughput(profiles_db, analytics_db, args.events)
        print(f"latency at {args.rate}/s for {args.seconds:.0f}s")
        await latency(profiles_db, analytics_db, args.rate, args.seconds)
        print("store path (person documents with staged events -> sweep -> ... -> projection)")
        await throughput(profiles_db, analytics_db, args.events // 4, via_store=True)
        print("through the HTTP API")
        token = issue_token(private.read_bytes(), role="network_admin", network_id="bench-api")
        await through_api(f"http://127.0.0.1:{ports['profiles']}", token, args.api_requests, 16)
        await client.close()
    finally:
        for proc in reversed(procs):
            proc.stop(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
