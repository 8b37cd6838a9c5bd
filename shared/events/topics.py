"""Kafka topic names. One topic per publishing service; the record key is the aggregate id."""

PROFILES_TOPIC = "mentorship.profiles.v1"
MATCHING_TOPIC = "mentorship.matching.v1"
NOTIFICATIONS_TOPIC = "mentorship.notifications.v1"

DOMAIN_TOPICS = (PROFILES_TOPIC, MATCHING_TOPIC, NOTIFICATIONS_TOPIC)


def dead_letter_topic(service: str) -> str:
    """Each consuming service has its own dead-letter topic."""
    return f"mentorship.deadletter.{service}"
