"""Notifications benchmark: emails rendered and delivered per second, and how fast messages leave.

Starts its own embedded servers (SecantusDB, noida-db), local SMTP servers and the
notifications service as a real process, then, for each of `--runs` runs (min/median/max are
printed at the end, with the load average around each run):

1. render: the welcome templates rendered in process (subject, summary, text, HTML), per second;
2. worker alone: the delivery worker in this process, on its own database, sending N due emails
   to an SMTP sink in a process of its own (the delivery path without the service's other
   loops), with the CPU time per email of the worker, the document store and the SMTP server;
3. deliver: N due email deliveries written to the service's store at once (people in its view),
   timed until the SMTP server has received every one: claim, compose (Jinja2), send over
   pooled SMTP connections, settle with MessageDelivered staged in the outbox;
4. burst: N `MenteeRegistered` events produced to Kafka at once, timed until every welcome email
   arrived: consumer -> delivery record -> worker -> SMTP (each event also writes the person
   and an in-app delivery);
5. latency: registrations produced at a steady rate; per email, the delay from the event's
   production to its arrival at the SMTP server (p50/p99);
6. welcomes: registrations at `--welcome-rate` per second (15 by default, the rate at which
   in-app welcomes once took 102 s); per person, the delay from the event's production to the
   in-app welcome in the feed, split into the consumer (event applied) and the delivery worker.

The document store runs as the embedded default (`ops.infra.start_secantus`, URI from
`embedded_mongo_uri`); `--no-journal` drops `journal=true` from the URI (no fsync per commit)
to show what cheaper commits change. Run:
`.venv/bin/python bench/notifications.py [--runs 3] [--emails N] [--no-journal]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
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

from ops.infra import (
    embedded_mongo_uri, free_port, port_in_use, start_noida, start_secantus, wait_for_kafka, wait_for_mongo,
)
from ops.stack import start_service, wait_ready
from services.notifications.rendering import render
from shared.auth import ensure_local_keypair
from shared.events.topics import PROFILES_TOPIC
from tests.support import mentee_registered_event

SECRET = "bench-unsubscribe-secret-0123456789-abcdef"


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def render_rate(n: int) -> float:
    context = {"recipient": {"first_name": "Ada", "display_name": "Ada Lovelace"}, "role": "mentee",
               "program": None, "mandatory": True, "unsubscribe_url": None, "preferences_url": "x",
               "link": "https://app.example.org/profile"}
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


async def worker_alone(client, store_pid: int, sink_port: int, sink_pid: int, n: int) -> dict[str, float]:
    from services.notifications import app
    from services.notifications.config import DeliverySettings
    from services.notifications.sending import DeliveryWorker

    db = client[f"bench_worker_{uuid.uuid4().hex[:6]}"]
    await app.create_indexes(db)
    worker = DeliveryWorker(db, DeliverySettings(smtp_port=sink_port), unsubscribe_secret=SECRET)
    await _insert(db, 100, "warm")
    while await worker.run_once():
        pass
    await _insert(db, n, run := uuid.uuid4().hex[:6])
    before = (time.process_time(), cpu_seconds(store_pid), cpu_seconds(sink_pid))
    started = time.perf_counter()
    while await worker.run_once():
        pass
    elapsed = time.perf_counter() - started
    sent = await db["deliveries"].count_documents({"status": "sent", "source": {"$regex": f"^bench-{run}-"}})
    if sent != n:
        raise RuntimeError(f"only {sent} of {n} emails were accepted by the SMTP server")
    after = (time.process_time(), cpu_seconds(store_pid), cpu_seconds(sink_pid))
    await worker.close()
    await client.drop_database(db.name)
    worker_ms, store_ms, smtp_ms = ((b - a) * 1000 / n for a, b in zip(before, after))
    return {"rate": n / elapsed, "worker_ms": worker_ms, "store_ms": store_ms, "smtp_ms": smtp_ms}


async def deliver(db, counter: Counter, n: int) -> float:
    run = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    await _insert(db, n, run)
    last = await _wait(counter, f"d{run}-", n, timeout=max(120, n / 10))
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
    last = await _wait(counter, f"b{run}-", n, timeout=max(120, n / 5))
    return n / (last - started)


async def _paced(bootstrap: str, rate: float, seconds: float, make) -> dict[str, float]:
    """Produce `make(i)` events at `rate` per second; returns the production time per subject."""
    produced: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        started = time.perf_counter()
        for i in range(int(rate * seconds)):
            if (delay := started + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            event = make(i)
            produced[event.subject] = time.perf_counter()
            await producer.send(PROFILES_TOPIC, event.to_bytes(), key=event.subject.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return produced


async def latency(bootstrap: str, counter: Counter, rate: int, seconds: float) -> list[float]:
    run = uuid.uuid4().hex[:6]
    produced = await _paced(bootstrap, rate, seconds, lambda i: mentee_registered_event(
        f"{run}-l{i}", network_id="bench", email=f"l{run}-{i}@example.org"))
    await _wait(counter, f"l{run}-", len(produced), timeout=180)
    with counter.lock:
        return sorted(counter.arrived[f"l{run}-{s.rsplit('-l', 1)[1]}@example.org"] - t for s, t in produced.items())


async def welcomes(bootstrap: str, db, rate: float, seconds: float) -> dict[str, list[float]]:
    """Event produced -> in-app welcome in the feed; and the part before the consumer applied it."""
    run = uuid.uuid4().hex[:6]
    seen: dict[str, float] = {}
    total = int(rate * seconds)

    async def watch() -> None:
        while len(seen) < total:
            async for item in db["notifications"].find({"person_id": {"$regex": f"^{run}-"}}, {"person_id": 1}):
                seen.setdefault(item["person_id"], time.perf_counter())
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    produced = await _paced(bootstrap, rate, seconds, lambda i: mentee_registered_event(
        f"{run}-{i:05d}", network_id="bench", email=f"w{run}-{i}@example.org"))
    await asyncio.wait_for(watcher, timeout=300)
    feed = sorted(seen[p] - t for p, t in produced.items())
    deliveries = {d["source"]: d async for d in db["deliveries"].find(
        {"person_id": {"$regex": f"^{run}-"}, "channel": "in_app"}, {"source": 1, "created_at": 1, "sent_at": 1})}
    applied = {d["_id"]: d["applied_at"] async for d in db["inbox"].find({"_id": {"$in": list(deliveries)}})}
    async for batch in db["inbox_batches"].find({"ids": {"$in": list(deliveries)}}, {"ids": 1, "applied_at": 1}):
        applied.update((i, batch["applied_at"]) for i in batch["ids"] if i in deliveries)  # one document per batch
    consumer = sorted((applied[s] - d["created_at"]).total_seconds() for s, d in deliveries.items() if s in applied)
    worker = sorted((d["sent_at"] - applied[s]).total_seconds() for s, d in deliveries.items()
                    if s in applied and d.get("sent_at"))
    return {"feed": feed, "consumer": consumer, "worker": worker}


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))]


def _spread(values: list[float], unit: str = "", fmt: str = ",.0f") -> str:
    return (f"min {min(values):{fmt}}{unit}, median {statistics.median(values):{fmt}}{unit}, "
            f"max {max(values):{fmt}}{unit}")


def start_sink(port: int) -> subprocess.Popen:
    """An SMTP server that accepts and discards, in a process of its own (its CPU is its own)."""
    process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                                "-l", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_in_use(port):
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError("the SMTP sink did not start")
        time.sleep(0.1)
    return process


async def one_run(args, client, db, bootstrap: str, store_pid: int, counter: Counter, sink) -> dict[str, object]:
    print(f"-- run (load average {load()})")
    result: dict[str, object] = {"render": render_rate(3000)}
    print(f"render (welcome, every part, in process): {result['render']:,.0f}/s")
    alone = await worker_alone(client, store_pid, sink[1], sink[0].pid, args.emails)
    result["alone"] = alone
    print(f"worker alone: {args.emails} due emails -> SMTP: {alone['rate']:,.0f} emails/s; CPU per email: "
          f"worker {alone['worker_ms']:.2f} ms, store {alone['store_ms']:.2f} ms, SMTP server {alone['smtp_ms']:.2f} ms "
          f"(by CPU, two free cores: ~{2000 / (alone['worker_ms'] + alone['store_ms'] + alone['smtp_ms']):,.0f}/s)")
    result["deliver"] = await deliver(db, counter, args.emails)
    print(f"deliver (service): {args.emails} due emails -> SMTP: {result['deliver']:,.0f} emails/s")
    result["burst"] = await burst(bootstrap, counter, args.emails // 2)
    print(f"burst (service): {args.emails // 2} registration events -> welcome emails: {result['burst']:,.0f}/s")
    delays = await latency(bootstrap, counter, args.rate, args.seconds)
    result["latency"] = delays
    print(f"latency at {args.rate} registrations/s for {args.seconds:.0f}s: event -> email "
          f"p50 {_pct(delays, .5) * 1000:.0f} ms, p99 {_pct(delays, .99) * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms")
    w = await welcomes(bootstrap, db, args.welcome_rate, args.welcome_seconds)
    result["welcomes"] = w
    print(f"welcomes at {args.welcome_rate:g} registrations/s for {args.welcome_seconds:.0f}s: event -> in-app feed "
          f"p50 {_pct(w['feed'], .5):.2f} s, p99 {_pct(w['feed'], .99):.2f} s (consumer: p50 "
          f"{_pct(w['consumer'], .5):.2f} s, p99 {_pct(w['consumer'], .99):.2f} s; delivery worker: p50 "
          f"{_pct(w['worker'], .5):.2f} s, p99 {_pct(w['worker'], .99):.2f} s)")
    print(f"   load average after the run: {load()}")
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=20, help="registrations/s for the email latency run")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--welcome-rate", type=float, default=15.0)
    parser.add_argument("--welcome-seconds", type=float, default=30.0)
    parser.add_argument("--no-journal", action="store_true", help="no fsync per commit (drop journal=true)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    kafka_port, mongo_port = free_port(), free_port()
    bootstrap, mongo_uri = f"127.0.0.1:{kafka_port}", embedded_mongo_uri(mongo_port)
    if args.no_journal:
        mongo_uri = mongo_uri.replace("&journal=true", "")
    store = start_secantus(root / "mongo", mongo_port, root / "mongo.log", die_with_parent=True)
    procs = [store, start_noida(root / "kafka", kafka_port, root / "kafka.log", die_with_parent=True)]
    counter = Counter()
    smtp = Controller(counter, hostname="127.0.0.1", port=free_port())
    smtp.start()
    sink_port = free_port()
    sink = start_sink(sink_port)
    try:
        wait_for_mongo(mongo_uri)
        wait_for_kafka(bootstrap)
        _, public = ensure_local_keypair(root)
        port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_URI": mongo_uri,
               "DATA_DIR": str(root), "JWT_PUBLIC_KEY_FILE": str(public), "LOG_LEVEL": "WARNING",
               "SMTP_PORT": str(smtp.port), "KAFKA_TOPIC_PARTITIONS": "3", "UNSUBSCRIBE_SECRET": SECRET}
        procs.append(start_service("notifications", port, env, root / "notifications.log", die_with_parent=True))
        wait_ready(f"http://127.0.0.1:{port}", 90)
        client = AsyncMongoClient(mongo_uri, tz_aware=True)
        db = client["mentorship_notifications"]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"store: SecantusDB, {'journal=true (an fsync per commit)' if 'journal=true' in mongo_uri else 'no journal option (no fsync per commit)'}")
        await deliver(db, counter, 200)  # warm-up: the service's connections, caches, templates
        runs = [await one_run(args, client, db, bootstrap, store.pid, counter, (sink, sink_port))
                for _ in range(args.runs)]
        print(f"== {len(runs)} runs")
        print(f"worker alone, emails/s: {_spread([r['alone']['rate'] for r in runs])}")
        print(f"worker alone, CPU ms per email (worker + store + SMTP server): "
              f"{_spread([sum(r['alone'][k] for k in ('worker_ms', 'store_ms', 'smtp_ms')) for r in runs], fmt='.2f')}")
        print(f"deliver (service), emails/s: {_spread([r['deliver'] for r in runs])}")
        print(f"burst (service), welcome emails/s: {_spread([r['burst'] for r in runs])}")
        print(f"email latency p99 at {args.rate}/s, ms: {_spread([_pct(r['latency'], .99) * 1000 for r in runs])}")
        print(f"in-app welcome p99 at {args.welcome_rate:g}/s, s: "
              f"{_spread([_pct(r['welcomes']['feed'], .99) for r in runs], fmt='.2f')}")
        print(f"load average at the end: {load()}")
        await client.close()
    finally:
        smtp.stop()
        sink.kill()
        sink.wait()
        for proc in reversed(procs):
            proc.stop(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
