"""Partition assignment that depends on who the members are, not on their session ids.

Kafka's round-robin assignor deals partitions to members sorted by member id, and a member id
is new on every start. So when an instance restarts under its static `group.instance.id`, the
group leader (often that very instance) deals the partitions again in a new order. Kafka then
makes every member rejoin and take its new share; noida-db 0.2.3, the embedded broker, does
not: the other members keep consuming their old share, and partitions end up read twice or
by nobody (measured with two instances of a service, the first one killed and restarted:
two of three partitions went unread until the other instance restarted too).

This assignor deals by `group.instance.id` (carried in each member's subscription), so an
instance that comes back gets back exactly what it had and nobody else's share moves. Members
without an instance id (static membership off) are dealt by member id, as round-robin does.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)


class StableAssignor:
    """Round robin over members sorted by their `group.instance.id`."""

    name = "stable-roundrobin"
    version = 0

    def __init__(self, instance_id: str | None) -> None:
        self._instance_id = instance_id or ""

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, list(topics),
                                              self._instance_id.encode())

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        order = sorted(members, key=lambda m: ((members[m].user_data or b"").decode() or m, m))
        topics = sorted({t for metadata in members.values() for t in metadata.subscription})
        shares: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in members}
        dealer = itertools.cycle(order)
        for topic in topics:
            for partition in sorted(cluster.partitions_for_topic(topic) or ()):
                member = next(dealer)
                while topic not in members[member].subscription:
                    member = next(dealer)
                shares[member][topic].append(partition)
        return {
            member: ConsumerProtocolMemberAssignment(self.version, sorted(share.items()), b"")
            for member, share in shares.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass


def assignment_strategy(instance_id: str | None) -> tuple[object, ...]:
    """The consumer's `partition_assignment_strategy`: this assignor alone.

    Listing round robin after it (so that a group could move to it one instance at a time)
    made noida-db hand every member an empty assignment. So a group that still runs the round
    robin assignor is stopped whole before the first instance with this one starts (a member
    with no protocol in common with the group is refused until then)."""
    return (StableAssignor(instance_id),)


__all__ = ["StableAssignor", "assignment_strategy"]
