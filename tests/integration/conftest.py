"""In-process fixtures for the messaging layer: real noida-db and SecantusDB, one test each."""

from __future__ import annotations

import uuid

import pytest

from shared.db import create_client
from shared.settings import ServiceSettings


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


def settings_for(servers, unique: str) -> ServiceSettings:
    """Settings of a throwaway service: its own group, dead-letter topic and database."""
    return ServiceSettings(
        service_name=f"t{unique}",
        kafka_bootstrap_servers=servers.kafka_bootstrap,
        mongodb_uri=servers.mongodb_uri,
        kafka_static_membership=False,
        kafka_topic_partitions=3,
        kafka_session_timeout_ms=6000,
        consumer_max_attempts=3,
        consumer_retry_backoff_ms=20,
        outbox_poll_interval_ms=20,
        outbox_verify_interval_seconds=0.3,
        outbox_verify_settle_seconds=1.0,
    )


@pytest.fixture
def servers(request, infra):
    """The session's servers, or with `indirect` param "private" a test's own (for tests
    that stop, kill or wipe them)."""
    if getattr(request, "param", None) == "private":
        return request.getfixturevalue("private_infra")
    return infra


@pytest.fixture
def settings(servers, unique) -> ServiceSettings:
    return settings_for(servers, unique)


@pytest.fixture
async def db(settings):
    client = create_client(settings.mongodb_uri)
    yield client[settings.database_name]
    await client.drop_database(settings.database_name)
    await client.close()
