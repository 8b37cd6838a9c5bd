"""Kafka topic names. One topic per publishing service; the record key is the aggregate id."""

PROFILES_TOPIC = "mentorship.profiles.v1"
MATCHING_TOPIC = "mentorship.matching.v1"
NOTIFICATIONS_TOPIC = "mentorship.notifications.v1"

DOMAIN_TOPICS = (PROFILES_TOPIC, MATCHING_TOPIC, NOTIFICATIONS_TOPIC)
# Each service's audit entries (denied access, privileged changes), for the profiles service's
# audit log: one topic per publishing service, like the domain topics (the outbox verifier
# reads a topic as one service's log), and none of them a domain topic, so the analytics
# projection never reads them.
AUDIT_SERVICES = ("profiles", "matching", "notifications", "analytics")
AUDIT_TOPICS = {service: f"mentorship.audit.{service}.v1" for service in AUDIT_SERVICES}
ALL_TOPICS = (*DOMAIN_TOPICS, *AUDIT_TOPICS.values())


def dead_letter_topic(service: str) -> str:
    """Each consuming service has its own dead-letter topic."""
    return f"mentorship.deadletter.{service}"
