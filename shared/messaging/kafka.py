"""Small aiokafka helpers shared by the relay, the consumer and the health check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.connections import kafka_options
from shared.logging import get_logger
from shared.settings import ServiceSettings

log = get_logger(__name__)

# Events carry up to a few hundred KB of JSON at most; 1 MiB on the producer side lets the
# broker's own limit be the one that speaks.
MAX_REQUEST_SIZE = 1_048_576


def create_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    """An acks=all producer, idempotent unless the broker cannot do it (Tansu)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-producer",
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        linger_ms=2,
        max_request_size=MAX_REQUEST_SIZE,
        request_timeout_ms=15_000,
        metadata_max_age_ms=5_000,  # pick up partitions restored after a broker lost a topic
        **kafka_options(settings),
    )


def topic_layout(settings: ServiceSettings) -> dict[str, int]:
    """How the platform's topics are laid out on this cluster: `ensure_topics(**layout)`."""
    return {
        "partitions": settings.kafka_topic_partitions,
        "replication_factor": settings.kafka_replication_factor,
        "min_insync_replicas": settings.kafka_min_insync_replicas,
    }


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    client_id: str = "admin",
    **options: Any,
) -> None:
    """Create topics explicitly (an auto-created topic gets one partition on noida-db), and
    give back partitions to a topic that came back smaller after a broker lost it.

    On a cluster, a topic is created with `replication_factor` copies and acks=all writes
    wait for `min_insync_replicas` of them (3 and 2 survive the loss of one broker with no
    acknowledged record lost). Topics that exist keep their replication; see
    docs/deployment.md for changing it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, **options)
    await admin.start()
    try:
        wanted = list(dict.fromkeys(topics))
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                configs = ({"min.insync.replicas": str(min_insync_replicas)}
                           if min_insync_replicas > 1 else {})
                await admin.create_topics([
                    NewTopic(t, num_partitions=partitions, replication_factor=replication_factor,
                             topic_configs=configs)
                    for t in missing
                ])
            except TopicAlreadyExistsError:
                pass  # another service created it between our list and create
            log.info("kafka.topics_created", topics=missing, partitions=partitions,
                     replication_factor=replication_factor,
                     min_insync_replicas=min_insync_replicas)
        present = [t for t in wanted if t in existing]
        if present:
            await _grow_partitions(admin, present, partitions)
    finally:
        await admin.close()


async def _grow_partitions(admin: AIOKafkaAdminClient, topics: list[str], partitions: int) -> None:
    try:
        described = await admin.describe_topics(topics)
    except Exception as exc:  # not every broker describes topics; growing is best effort
        log.debug("kafka.describe_failed", error=repr(exc))
        return
    short = {
        d["topic"]: NewPartitions(total_count=partitions)
        for d in described
        if not d.get("error_code") and 0 < len(d.get("partitions", [])) < partitions
    }
    if short:
        try:
            await admin.create_partitions(short)
            log.warning("kafka.partitions_restored", topics=sorted(short), partitions=partitions)
        except Exception as exc:
            log.warning("kafka.partitions_not_restored", error=repr(exc))


async def kafka_reachable(bootstrap: str, timeout: float = 1.0) -> str | None:
    """None when some bootstrap server accepts a TCP connection, otherwise the reason."""
    reasons = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
            writer.close()
            return None
        except (OSError, TimeoutError, ValueError) as exc:
            reasons.append(f"{server}: {exc or type(exc).__name__}")
    return "Kafka is not reachable (" + "; ".join(reasons) + ")"
