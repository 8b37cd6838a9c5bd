"""The consumer's partition assignment follows the instances, not their session ids: an
instance that restarts (a new member id, the same group.instance.id) gets back exactly its
share, so no other member's share moves (noida-db does not tell the others when it would)."""

from __future__ import annotations

from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from shared.messaging.assignor import StableAssignor


class Partitions:
    """The part of the cluster metadata an assignor reads."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.counts[topic]))


CLUSTER = Partitions({"profiles": 3, "matching": 3})
TOPICS = ["profiles", "matching"]


def _shares(assignor, members: dict[str, str]) -> dict[str, set[tuple[str, int]]]:
    """instance id -> its partitions, for members {member id: instance id}."""
    metadata = {m: StableAssignor(i).metadata(TOPICS) for m, i in members.items()}
    assigned = assignor.assign(CLUSTER, metadata)
    return {members[m]: {(t, p) for t, parts in a.assignment for p in parts}
            for m, a in assigned.items()}


def test_a_restarted_instance_gets_its_share_back_and_the_other_keeps_its_own():
    before = _shares(StableAssignor("matching-1"), {"m-aaa": "matching-1", "m-zzz": "matching-2"})
    # matching-1 restarts: its new member id now sorts after matching-2's.
    after = _shares(StableAssignor("matching-1"), {"m-zzz": "matching-2", "n-111": "matching-1"})
    assert before == after
    assert before["matching-1"].isdisjoint(before["matching-2"])
    assert before["matching-1"] | before["matching-2"] == {(t, p) for t in TOPICS for p in range(3)}
    assert {len(s) for s in before.values()} == {3}


def test_round_robin_would_move_both_shares_on_the_same_restart():
    # What the platform used before: the deal follows member ids, so the survivor's share
    # changes under it, and noida-db never tells the survivor.
    metadata = {m: RoundRobinPartitionAssignor.metadata(TOPICS) for m in ("m-aaa", "m-zzz")}
    before = RoundRobinPartitionAssignor.assign(CLUSTER, metadata)
    metadata = {m: RoundRobinPartitionAssignor.metadata(TOPICS) for m in ("m-zzz", "n-111")}
    after = RoundRobinPartitionAssignor.assign(CLUSTER, metadata)
    assert before["m-zzz"].assignment != after["m-zzz"].assignment


def test_without_instance_ids_members_are_dealt_like_round_robin():
    metadata = {m: StableAssignor(None).metadata(TOPICS) for m in ("m-1", "m-2", "m-3")}
    shares = StableAssignor(None).assign(CLUSTER, metadata)
    assert sorted(sum(len(p) for _, p in a.assignment) for a in shares.values()) == [2, 2, 2]
