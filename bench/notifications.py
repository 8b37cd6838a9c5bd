"""Notifications benchmark: emails rendered and delivered per second, and event -> inbox delay.

Starts its own embedded servers (SecantusDB, noida-db), a local SMTP server (aiosmtpd, in this
process) and the notifications service as a real process pointed at it, then:

1. render: the welcome templates rendered in process (text + HTML + subject), per second;
1b. worker alone: the delivery worker in this process, on its own database, sending N due
   emails (the delivery path without the service's other loops: consumer, relay, scheduler);
2. deliver: N due email deliveries written to the service's store at once (people in its view),
   timed until the SMTP server has received every one: claim, compose (Jinja2), send over
   pooled SMTP connections, settle with MessageDelivered staged in the outbox;
3. burst: N `MenteeRegistered` events produced to Kafka at once, timed until every welcome email
   arrived: consumer -> delivery record -> worker -> SMTP (each event also writes the person
   and an in-app delivery);
4. latency: registrations produced at a steady rate; per email, the delay from the event's
   production to its arrival at the SMTP server (p50/p99).

Run: `.venv/bin/python bench/notifications.py [--emails N] [--rate R] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from pymongo import AsyncMongoClient

from ops.infra import embedded_mongo_uri, free_port, start_noida, start_secantus, wait_for_kafka, wait_for_mongo
from ops.stack import start_service, wait_ready
from services.notifications.rendering import render
from shared.auth import ensure_local_keypair
from shared.events.topics import PROFILES_TOPIC
from tests.support import mentee_registered_event


class Counter:
    """SMTP handler: the arrival time of each recipient's message."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        now = time.perf_counter()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrived[rcpt] = now
        return "250 OK"

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for r in self.arrived if r.startswith(prefix))


def render_rate(n: int) -> float:
    context = {"recipient": {"first_name": "Ada", "display_name": "Ada Lovelace"}, "role": "mentee",
               "program": None, "mandatory": True, "unsubscribe_url": None, "preferences_url": "x"}
    started = time.perf_counter()
    for _ in range(n):
        render("welcome", context)
    return n / (time.perf_counter() - started)


async def _wait(counter: Counter, prefix: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while counter.count(prefix) < n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {counter.count(prefix)} of {n} emails arrived")
        await asyncio.sleep(0.01)
    with counter.lock:
        return max(t for r, t in counter.arrived.items() if r.startswith(prefix))


async def worker_alone(client, counter: Counter, smtp_port: int, n: int) -> float:
    from services.notifications import app
    from services.notifications.config import DeliverySettings
    from services.notifications.sending import DeliveryWorker

    db = client[f"bench_worker_{uuid.uuid4().hex[:6]}"]
    await app.create_indexes(db)
    worker = DeliveryWorker(db, DeliverySettings(smtp_port=smtp_port))
    started = time.perf_counter()
    await _insert(db, n, prefix := f"w{uuid.uuid4().hex[:6]}")
    while await worker.run_once():
        pass
    last = await _wait(counter, f"d{prefix}-", n, timeout=60)
    await worker.smtp.close()
    await worker.webhooks.close()
    return n / (last - started)


async def _insert(db, n: int, run: str) -> None:
    now = datetime.now(UTC)
    people = [{"_id": f"{run}-p{i}", "network_id": "bench", "display_name": f"Bench Person {i}",
               "email": f"d{run}-{i}@example.org", "registered_at": now} for i in range(n)]
    await db["people"].insert_many(people)
    await db["deliveries"].insert_many([
        {"_id": f"bench-{run}-{i}:{p['_id']}:email", "source": f"bench-{run}-{i}", "network_id": "bench",
         "kind": "welcome", "channel": "email", "recipient": p["_id"], "person_id": p["_id"],
         "about": [p["_id"]], "context": {"role": "mentee", "program_id": None},
         "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
         "event_time": now} for i, p in enumerate(people)])


async def deliver(db, counter: Counter, n: int) -> float:
    run = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    await _insert(db, n, run)
    last = await _wait(counter, f"d{run}-", n, timeout=max(60, n / 20))
    return n / (last - started)


async def burst(bootstrap: str, counter: Counter, n: int) -> float:
    run = uuid.uuid4().hex[:6]
    events = [mentee_registered_event(f"{run}-b{i}", network_id="bench", display_name=f"Burst {i}",
                                      email=f"b{run}-{i}@example.org") for i in range(n)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(PROFILES_TOPIC, e.to_bytes(), key=e.subject.encode()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    last = await _wait(counter, f"b{run}-", n, timeout=max(60, n / 10))
    return n / (last - started)


async def latency(bootstrap: str, counter: Counter, rate: int, seconds: float) -> list[float]:
    run = uuid.uuid4().hex[:6]
    produced: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        total = int(rate * seconds)
        started = time.perf_counter()
        for i in range(total):
            target = started + i / rate
            if (delay := target - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            address = f"l{run}-{i}@example.org"
            event = mentee_registered_event(f"{run}-l{i}", network_id="bench", email=address)
            produced[address] = time.perf_counter()
            await producer.send(PROFILES_TOPIC, event.to_bytes(), key=event.subject.encode())
        await producer.flush()
    finally:
        await producer.stop()
    await _wait(counter, f"l{run}-", total, timeout=120)
    with counter.lock:
        return sorted(counter.arrived[a] - t for a, t in produced.items())


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=20, help="registrations/s for the latency run (below saturation)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    kafka_port, mongo_port = free_port(), free_port()
    bootstrap, mongo_uri = f"127.0.0.1:{kafka_port}", embedded_mongo_uri(mongo_port)
    procs = [
        start_secantus(root / "mongo", mongo_port, root / "mongo.log", die_with_parent=True),
        start_noida(root / "kafka", kafka_port, root / "kafka.log", die_with_parent=True),
    ]
    counter = Counter()
    smtp = Controller(counter, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        wait_for_mongo(mongo_uri)
        wait_for_kafka(bootstrap)
        _, public = ensure_local_keypair(root)
        port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_URI": mongo_uri,
               "DATA_DIR": str(root), "JWT_PUBLIC_KEY_FILE": str(public), "LOG_LEVEL": "WARNING",
               "SMTP_PORT": str(smtp.port), "DELIVERY_POLL_MS": "20", "KAFKA_TOPIC_PARTITIONS": "3"}
        procs.append(start_service("notifications", port, env, root / "notifications.log", die_with_parent=True))
        wait_ready(f"http://127.0.0.1:{port}", 60)
        client = AsyncMongoClient(mongo_uri, tz_aware=True)
        db = client["mentorship_notifications"]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"render (welcome, 3 parts, in process): {render_rate(5000):,.0f}/s")
        rate = await worker_alone(client, counter, smtp.port, args.emails)
        print(f"worker alone: {args.emails} due emails -> SMTP: {rate:,.0f} emails/s (rendered + delivered)")
        await deliver(db, counter, 200)  # warm-up
        rate = await deliver(db, counter, args.emails)
        print(f"deliver: {args.emails} due emails -> SMTP: {rate:,.0f} emails/s (rendered + delivered)")
        rate = await burst(bootstrap, counter, args.emails // 2)
        print(f"burst: {args.emails // 2} registration events -> welcome emails: {rate:,.0f}/s end to end")
        delays = await latency(bootstrap, counter, args.rate, args.seconds)
        print(f"latency at {args.rate} registrations/s for {args.seconds:.0f}s: event -> email "
              f"p50 {_pct(delays, 0.5):.0f} ms, p99 {_pct(delays, 0.99):.0f} ms, max {delays[-1] * 1000:.0f} ms "
              f"({len(delays)} emails)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        await client.close()
    finally:
        smtp.stop()
        for proc in reversed(procs):
            proc.stop(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
