"""Kafka transport: topics, the transactional outbox relay and the idempotent consumer."""
