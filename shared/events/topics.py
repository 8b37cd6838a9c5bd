"""Kafka topic names. One topic per publishing service; the record key is the aggregate id."""

PROFILES_TOPIC = "mentorship.profiles.v1"
MATCHING_TOPIC = "mentorship.matching.v1"
NOTIFICATIONS_TOPIC = "mentorship.notifications.v1"

DOMAIN_TOPICS = (PROFILES_TOPIC, MATCHING_TOPIC, NOTIFICATIONS_TOPIC)
# Every service's audit entries (denied access, privileged changes), for the profiles service's
# audit log; not a domain topic, so the analytics projection never reads it.
AUDIT_TOPIC = "mentorship.audit.v1"
ALL_TOPICS = (*DOMAIN_TOPICS, AUDIT_TOPIC)


def dead_letter_topic(service: str) -> str:
    """Each consuming service has its own dead-letter topic."""
    return f"mentorship.deadletter.{service}"
