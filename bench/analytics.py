"""Analytics benchmark: events applied per second, and report latency, for a big network.

A synthetic network (default 20,000 people in 10 chapters, a year of activity: ~320,000
events; `services.analytics.synthetic`) is

1. folded into a projection in memory (the pure apply rate);
2. published to a real broker (noida-db) and consumed by the analytics handlers through the
   real EventConsumer into a real SecantusDB (facts, inbox and offsets in one transaction per
   batch): events applied per second end to end;
3. loaded back from the stored facts, as the service does when it starts;
4. reported on: every report, for the network, chapters and programs, over a year, a quarter
   and a month, computed and JSON-encoded from the loaded projection; p50/p99 per report,
   both steady and right after new events arrived (the columns catch up first).

Starts its own servers on free ports. Run: `.venv/bin/python bench/analytics.py
[--people 20000] [--days 365] [--skip-pipeline]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer

from ops.infra import embedded_mongo_uri, free_port, start_noida, start_secantus, wait_for_kafka, wait_for_mongo
from services.analytics import events as analytics_events
from services.analytics import reports_api
from services.analytics.live import loaded_projection
from services.analytics.measures import Period, Scope
from services.analytics.projection import Projection
from services.analytics.store import create_indexes
from services.analytics.synthetic import network
from shared.db import create_client
from shared.events.registry import spec_for
from shared.logging import configure_logging
from shared.messaging.consumer import OFFSETS, EventConsumer
from shared.messaging.kafka import create_producer, ensure_topics
from shared.settings import ServiceSettings

NETWORK = "bench"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to see past a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def pure_apply(events) -> float:  # type: ignore[no-untyped-def]
    projection = Projection()
    started = time.perf_counter()
    for name, payload in events:
        projection.apply(name, payload)
    return len(events) / (time.perf_counter() - started)


async def pipeline(scenario, root: Path) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """Publish, consume into SecantusDB; returns (events/s applied, load seconds, projection)."""
    kafka_port, mongo_port = free_port(), free_port()
    bootstrap, mongo_uri = f"127.0.0.1:{kafka_port}", embedded_mongo_uri(mongo_port)
    procs = [
        start_secantus(root / "mongo", mongo_port, root / "mongo.log", die_with_parent=True),
        start_noida(root / "kafka", kafka_port, root / "kafka.log", die_with_parent=True),
    ]
    try:
        wait_for_mongo(mongo_uri)
        wait_for_kafka(bootstrap)
        topics = ["bench.profiles", "bench.matching"]
        await ensure_topics(bootstrap, topics, partitions=3, client_id="bench")
        cloud = scenario.cloud_events()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144)
        await producer.start()
        for event in cloud:
            topic = topics[1] if spec_for(event.type).topic.endswith("matching.v1") else topics[0]
            await producer.send(topic, event.to_bytes(), key=event.subject.encode())
        await producer.flush()
        await producer.stop()
        print(f"published {len(cloud):,} events")

        settings = ServiceSettings(
            service_name="analytics", kafka_bootstrap_servers=bootstrap, mongodb_uri=mongo_uri,
            kafka_static_membership=False, kafka_topic_partitions=3, log_level="WARNING",
        )
        client = create_client(mongo_uri)
        db = client[settings.database_name]
        await create_indexes(db)
        consumer = EventConsumer(
            db=db, settings=settings, topics=topics, handlers=analytics_events.handlers(),
            producer_factory=lambda: create_producer(settings),
        )
        started = time.perf_counter()
        cpu_before = _cpu_seconds(os.getpid()), _cpu_seconds(procs[0].pid), _cpu_seconds(procs[1].pid)
        task = asyncio.create_task(consumer.run())
        last_report = started
        while True:
            await asyncio.sleep(1)
            applied = sum([doc["offset"] + 1 async for doc in db[OFFSETS].find({})])
            if applied >= len(cloud):
                break
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                print(f"  {applied:,} applied after {last_report - started:.0f} s "
                      f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        elapsed = time.perf_counter() - started
        cpu_after = _cpu_seconds(os.getpid()), _cpu_seconds(procs[0].pid), _cpu_seconds(procs[1].pid)
        own, database, broker = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
        print(f"CPU seconds spent: consumer {own:.0f}, SecantusDB {database:.0f}, noida-db {broker:.0f} "
              f"-> {len(cloud) / max(own, database):,.0f} events/s if each had a core of its own, "
              f"{len(cloud) / (own + database + broker):,.0f} events/s on one core")
        consumer.stop()
        await asyncio.wait_for(task, 30)
        rate = len(cloud) / elapsed
        print(f"consumed and stored {len(cloud):,} events in {elapsed:.1f} s: {rate:,.0f} events/s")
        from services.analytics.live import forget

        forget(db)
        started = time.perf_counter()
        projection = await loaded_projection(db)
        load = time.perf_counter() - started
        print(f"loaded the projection from {len(cloud):,} stored facts in {load:.1f} s")
        await client.close()
        return rate, load, projection
    finally:
        for proc in reversed(procs):
            proc.stop(timeout=10)


def latency(projection: Projection, days: int, extra_events, repeats: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    end = date(2026, 1, 5) + timedelta(days=days - 1)
    periods = [
        Period.of_days(date(2026, 1, 5), end),
        Period.of_days(end - timedelta(days=89), end),
        Period.of_days(end - timedelta(days=29), end),
    ]
    programs = sorted(p for p in projection.programs)[:3]
    scopes = [Scope("network", NETWORK)] + [
        Scope("institution", NETWORK, f"{NETWORK}-c{i}") for i in range(3)
    ] + [Scope("program", NETWORK, p) for p in programs]
    timings: dict[str, list[float]] = {name: [] for name in reports_api.REPORTS}
    cpu: dict[str, list[float]] = {name: [] for name in reports_api.REPORTS}
    extra = iter(extra_events)
    for r in range(repeats):
        for scope in scopes:
            for period in periods:
                if r % 2:  # half the rounds right after new events: the columns catch up first
                    for _ in range(50):
                        name, payload = next(extra, (None, None))
                        if name:
                            projection.apply(name, payload)
                for report in reports_api.REPORTS:
                    reports_api._CACHE.clear()
                    started, cpu_started = time.perf_counter(), time.process_time()
                    json.dumps(reports_api.build(projection, report, scope, period))
                    timings[report].append((time.perf_counter() - started) * 1000)
                    cpu[report].append((time.process_time() - cpu_started) * 1000)
    return timings, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--chapters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--skip-pipeline", action="store_true", help="in memory only")
    args = parser.parse_args()
    # As the service runs: without this every applied event printed a debug line, and the
    # printing cost more than applying.
    configure_logging("analytics", level="WARNING")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    scenario = network(args.people, days=args.days, chapters=args.chapters, network_id=NETWORK)
    print(f"generated {len(scenario.events):,} events for {args.people:,} people over {args.days} days "
          f"in {time.perf_counter() - started:.1f} s")
    print(f"in-memory projection: {pure_apply(scenario.events):,.0f} events/s")
    # New events for the "right after ingest" rounds: a later slice of another network's life.
    extra = network(2_000, days=args.days, chapters=2, seed=99, network_id="bench-extra").events
    if args.skip_pipeline:
        projection = Projection()
        for name, payload in scenario.events:
            projection.apply(name, payload)
    else:
        root = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
        _, _, projection = await pipeline(scenario, root)
    started = time.perf_counter()
    reports_api.build(projection, "summary", Scope("network", NETWORK),  # type: ignore[arg-type]
                      Period.of_days(date(2026, 1, 5), date(2026, 1, 5) + timedelta(days=args.days - 1)))
    print(f"first report after loading (builds the columns): {(time.perf_counter() - started) * 1000:.0f} ms")
    timings, cpu = latency(projection, args.days, extra, args.repeats)  # type: ignore[arg-type]
    print(f"report latency over {len(next(iter(timings.values())))} runs each "
          "(7 scopes x 3 periods; network summary includes every chapter), ms; "
          "wall clock, and CPU time of the process (what an idle core would take):")
    print(f"{'report':<14}{'p50':>8}{'p99':>8}{'max':>8}{'cpu p50':>10}{'cpu p99':>10}")
    for report, values in timings.items():
        print(f"{report:<14}{statistics.median(values):>8.1f}{percentile(values, 0.99):>8.1f}"
              f"{max(values):>8.1f}{statistics.median(cpu[report]):>10.1f}{percentile(cpu[report], 0.99):>10.1f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
