"""Topics are created with the layout the settings ask for: partitions, replication factor and
min.insync.replicas (what a three-broker cluster needs so acks=all survives a lost broker)."""

from __future__ import annotations

import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.messaging.kafka import ensure_topics, topic_layout
from shared.settings import ServiceSettings


async def test_topics_get_the_partitions_replication_and_min_insync_replicas_of_the_settings(infra):
    settings = ServiceSettings(kafka_bootstrap_servers=infra.kafka_bootstrap,
                               kafka_topic_partitions=4, kafka_min_insync_replicas=2)
    topic = f"layout-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], **topic_layout(settings))
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 4
    assert {len(p["replicas"]) for p in described["partitions"]} == {1}  # one broker here
    [resource] = response.resources
    configs = {entry[0]: entry[1] for entry in resource[4]}
    assert configs["min.insync.replicas"] == "2"
