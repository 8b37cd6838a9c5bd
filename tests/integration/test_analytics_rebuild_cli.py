"""`mentorship rebuild-analytics` end to end: refuses while analytics runs; otherwise replays
the domain topics from their beginning into the database the service would load."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from ops.cli import app
from ops.infra import ManagedProcess
from ops.stack import Layout
from services.analytics.measures import Period, Report, Scope
from services.analytics.scenario import hand_computed
from services.analytics.store import load_projection
from shared.db import create_client
from shared.events.registry import spec_for


def test_refused_while_the_service_runs(tmp_path):
    layout = Layout(tmp_path)
    sleeper = ManagedProcess.spawn("analytics", ["sleep", "60"], tmp_path / "sleep.log", die_with_parent=True)
    try:
        layout.record(sleeper, "http://127.0.0.1:8004")
        result = CliRunner().invoke(app, ["rebuild-analytics"], env={"MENTORSHIP_DATA_DIR": str(tmp_path)})
        assert result.exit_code == 1
        assert "analytics is running" in result.output and "stop it first" in result.output
    finally:
        sleeper.stop(timeout=5)


def test_replays_the_topics_into_the_analytics_database(infra, tmp_path):
    suffix = f"-{uuid.uuid4().hex[:6]}"
    network = f"net{suffix}"
    scenario = hand_computed(network).suffixed(suffix)
    asyncio.run(_publish(infra.kafka_bootstrap, scenario))
    database = f"rebuild{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(app, ["rebuild-analytics"], env={
        "MENTORSHIP_DATA_DIR": str(tmp_path), "MONGODB_URI": infra.mongodb_uri,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "MONGODB_DATABASE": database,
    })
    assert result.exit_code == 0, result.output
    assert "replayed" in result.output
    report = asyncio.run(_report(infra.mongodb_uri, database, network, f"P1{suffix}"))
    assert report["matching"]["match_rate_pct"] == 75.0
    assert (report["engagement"]["stalled"], report["engagement"]["never_met"]) == (1, 1)


async def _publish(bootstrap, scenario):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in scenario.cloud_events():
            await producer.send_and_wait(spec_for(event.type).topic, event.to_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()


async def _report(uri, database, network, program):
    client = create_client(uri)
    try:
        projection = await load_projection(client[database])
        await client.drop_database(database)
    finally:
        await client.close()
    period = Period.of_days(date(2026, 1, 5), date(2026, 2, 1))
    return Report(projection, Scope("program", network, program), period).summary()
