"""Two instances of every service on the embedded stack, one of each killed mid-load.

What two instances must give, each checked here on real processes:
- one relay per service publishes, the lease holder's, and the other takes over when the
  holder dies (the hand-over is printed: docs/deployment.md quotes it);
- each consumer group splits its partitions between the two members, and a killed member
  restarted under its id gets its share back;
- notifications' scheduled work (a nudge) runs with both schedulers polling and is mailed
  once, even while the two instances' test clocks disagree by weeks;
- matching's capacity guard holds when the racing acceptances reach different instances;
- nothing acknowledged is lost or doubled: every registration answered 201 is, exactly once,
  a person in profiles with one audit entry, in matching's pool, in analytics' count, one
  in-app welcome, and one welcome email (or, for an email being sent when its instance was
  killed, a delivery listed as interrupted for an admin to retry), never two. Clients retry with their Idempotency-Key
  on the other instance when theirs dies;
- an email whose send is cut off by killing the sender (the mail server holds it) never
  arrives and is listed as interrupted, never resent.

Its own servers (`private_infra`): the consumer groups are named after the services, so a
second set of instances on the session's broker would join the session platform's groups.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from pymongo import AsyncMongoClient

from ops.infra import free_port
from ops.stack import start_service, wait_ready
from services.notifications.deliveries import LEASE_ID as SENDER_LEASE_ID
from services.notifications.deliveries import DELIVERIES, INTERRUPTED, SENDER_STATE
from shared.messaging.outbox_lease import LEASE_ID, STATE
from tests.e2e.conftest import BACKENDS, Api, Platform, in_thread
from tests.e2e.test_matching_lifecycle import _scene
from tests.support import eventually, stays

DAY = 86_400
AHEAD = 34 * DAY  # how far the notifications test clocks are moved, for the nudge
CONSUMERS = ("matching", "notifications", "analytics")  # services with a consumer group
PUBLISHERS = ("profiles", "notifications")  # services whose relays publish under the load


class TwoOfEach(Platform):
    """Two instances of each service (`profiles`, `profiles-2`, ...), sharing each service's
    database, each its own member of the service's consumer group."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ports |= {f"{name}-2": free_port() for name in BACKENDS}

    @staticmethod
    def service(instance: str) -> str:
        return instance.removesuffix("-2")

    def env(self, instance: str) -> dict[str, str]:
        number = 2 if instance.endswith("-2") else 1
        service = self.service(instance)
        return super().env(service) | {"KAFKA_GROUP_INSTANCE_ID": f"{service}-{number}"}

    def start(self, *instances: str) -> None:
        instances = instances or tuple(n for n in self.ports if self.service(n) in BACKENDS)
        for name in instances:
            self.procs[name] = start_service(
                name, self.ports[name], self.env(name), self.root / "logs" / f"{name}.log",
                module=f"services.{self.service(name)}", die_with_parent=True)
        for name in instances:
            wait_ready(self.url(name), 120, proc=self.procs[name])

    def instances(self, service: str) -> tuple[str, str]:
        return service, f"{service}-2"

    def live_by_pid(self) -> dict[int, str]:
        """pid -> instance, of the live ones (lease holders are recorded by pid)."""
        return {proc.pid: name for name, proc in self.procs.items() if proc.alive}


@pytest.fixture
def two_of_each(private_infra, jwt_keys, mailbox, tmp_path) -> Iterator[TwoOfEach]:
    platform = TwoOfEach(private_infra, jwt_keys, tmp_path / "platform", smtp_port=mailbox.port,
                         extra_env={"NOTIFICATIONS_TEST_CLOCK": "true", "SCHEDULER_POLL_MS": "200",
                                    # a send cut off by a kill is resolved 20 s after its last renewal
                                    "DELIVERY_CLAIM_SECONDS": "20"})
    try:
        platform.start()
        yield platform
    finally:
        platform.close()


# ---------------------------------------------------------------- what each instance does


async def published(http: httpx.AsyncClient, url: str) -> float:
    """Events this instance's relay has published (its /metrics)."""
    text = (await http.get(f"{url}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("events_published_total{"))


async def lease_holders(mongo: AsyncMongoClient, platform: TwoOfEach) -> dict[str, str | None]:
    """service -> the instance whose relay holds the outbox lease (None: nobody live)."""
    by_pid = platform.live_by_pid()
    holders = {}
    for service in BACKENDS:
        lease = await mongo[f"{platform.database_prefix}_{service}"][STATE].find_one({"_id": LEASE_ID})
        pid = int(lease["holder"].split(":")[1]) if lease else None
        holders[service] = by_pid.get(pid)
    return holders


async def assignments(bootstrap: str, group: str) -> list[frozenset[tuple[str, int]]]:
    """The partitions each member of a consumer group holds, as the broker says."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [described] = response.groups
    members = []
    for member in described[5]:
        if not member[4]:  # between a rebalance's join and sync
            members.append(frozenset())
            continue
        assignment = ConsumerProtocolMemberAssignment.decode(member[4])
        members.append(frozenset((topic, p) for topic, parts in assignment.assignment
                                 for p in parts))
    return members


def _split(members: list[frozenset]) -> bool:
    """Two members, each with a share, together every partition (3 per topic), none twice."""
    every = members[0] | members[1] if len(members) == 2 else frozenset()
    return (len(members) == 2 and all(members) and not (members[0] & members[1])
            and len(every) == 3 * len({topic for topic, _ in every}))


# ---------------------------------------------------------------- the load


class Registrations:
    """Registrations at a steady rate, alternating between the two profiles instances; a
    failed one is retried with the same key on the other instance until answered."""

    def __init__(self, http: httpx.AsyncClient, platform: TwoOfEach, network_id: str) -> None:
        self.http, self.platform, self.network_id = http, platform, network_id
        self.answered: dict[str, str] = {}  # email -> person id, for every 201
        self.refused: list[str] = []
        self._auth = {"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}"}

    async def run(self, count: int, rate: float) -> None:
        tasks = []
        for n in range(count):
            tasks.append(asyncio.create_task(self._one(n)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)

    async def _one(self, n: int) -> None:
        email = f"r{n}-{self.network_id}@example.org"
        body = {"institution_id": "inst-a", "display_name": f"Person {n}", "email": email,
                "career_stage": "M2"}
        headers = {**self._auth, "Idempotency-Key": str(uuid.uuid4())}
        instances = self.platform.instances("profiles")
        for attempt in range(240):
            url = self.platform.url(instances[(n + attempt) % 2])
            try:
                response = await self.http.post(f"{url}/networks/{self.network_id}/mentees",
                                                json=body, headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.25)
                continue
            if response.status_code == 201:
                self.answered[email] = response.json()["id"]
                return
            if response.status_code < 500 and "in progress" not in response.text:
                self.refused.append(f"{email}: {response.status_code} {response.text}")
                return
            await asyncio.sleep(0.25)
        self.refused.append(f"{email}: no answer")


# ---------------------------------------------------------------- the test


@pytest.mark.timeout(600)  # about a minute alone; several on a machine shared by other runs
async def test_two_instances_of_every_service_share_the_work_and_survive_losing_one(
    two_of_each: TwoOfEach, mailbox
):
    platform = two_of_each
    mongo = AsyncMongoClient(platform.servers.mongodb_uri, tz_aware=True)
    async with httpx.AsyncClient(timeout=60) as http:
        try:
            await _capacity_and_schedule(platform, http, mongo, mailbox)
            await _load_with_one_of_each_killed(platform, http, mongo, mailbox)
            await _a_send_cut_off_by_a_kill(platform, http, mongo, mailbox)
        finally:
            await mongo.close()


async def _capacity_and_schedule(platform: TwoOfEach, http: httpx.AsyncClient,
                                 mongo: AsyncMongoClient, mailbox) -> None:
    """The capacity guard across matching instances; a nudge sent once by two schedulers."""
    network_id = f"net-{uuid.uuid4().hex[:8]}"
    m, pid = await _scene(Api(platform, http), network_id)
    await m.profile("Mira", {"mentor": {"capacity": 2}})  # room for two proposals...
    await m.settled("Mira")
    mids = {}
    for mentee in ("Ana", "Ben"):
        proposed = await m.program(pid, "/proposals", "POST",
                                   {"mentee_id": m.ids[mentee], "mentor_id": m.ids["Mira"]})
        assert proposed.status_code == 201, proposed.text
        mids[mentee] = proposed.json()["mentorship_id"]
        accepted = await m.mentorship(mids[mentee], "/accept", "POST", {}, headers=m.as_(mentee))
        assert accepted.status_code == 200, accepted.text
    await m.profile("Mira", {"mentor": {"capacity": 1}})  # ...and then one place for both
    await m.settled("Mira")
    # Her two acceptances race for it, each to its own matching instance.
    mira = m.as_("Mira", "mentor")
    racing = await asyncio.gather(*(
        http.post(f"{platform.url(instance)}/networks/{network_id}/mentorships/{mids[mentee]}/accept",
                  json={}, headers=mira)
        for instance, mentee in zip(platform.instances("matching"), ("Ana", "Ben"), strict=True)))
    assert sorted(r.status_code for r in racing) == [200, 409], [r.text for r in racing]
    assert "no free place" in next(r for r in racing if r.status_code == 409).json()["detail"]
    active = await m.mentorships(program_id=pid, status="active")
    assert len(active) == 1
    [mentee] = [name for name in ("Ana", "Ben") if m.ids[name] == active[0]["mentee_id"]]
    address = f"{mentee.lower()}-{network_id}@example.org"

    def subjects() -> list[str]:
        return [message["Subject"] for message in mailbox.to(address)]

    await eventually(subjects, lambda s: any(x.startswith("Meet Mira") for x in s),
                     timeout=120, what="the introduction (the pair's jobs are scheduled)")
    # Both schedulers see the nudge fall due (each instance has its own test clock: move
    # both, the sender lease's holder first, then the other: for a moment the clocks disagree
    # by 34 days, which the lease, on real time, must not notice).
    holder = await _sender(mongo, platform)
    for instance in sorted(platform.instances("notifications"), key=lambda i: i != holder):
        moved = await http.post(f"{platform.url(instance)}/test/clock/advance",
                                json={"seconds": AHEAD})
        assert moved.status_code == 200, moved.text
    await eventually(subjects, lambda s: "Time to meet Mira?" in s, timeout=60, what="the nudge")
    # Once: the sender lease runs on real time, so the instance whose clock is ahead never
    # takes it from the live holder (it did, and the nudge went out twice one run in three).
    await stays(lambda: subjects().count("Time to meet Mira?"), 1, seconds=5)


async def _load_with_one_of_each_killed(platform: TwoOfEach, http: httpx.AsyncClient,
                                        mongo: AsyncMongoClient, mailbox) -> None:
    network_id = f"net-{uuid.uuid4().hex[:8]}"
    await Api(platform, http).ensure_institution(network_id)  # people register at one it has
    load = Registrations(http, platform, network_id)
    writer = asyncio.create_task(load.run(count=60, rate=3))

    # Under load: one publisher per service, two members per consumer group.
    await eventually(lambda: _publishing(http, platform), lambda p: all(p[s] for s in PUBLISHERS),
                     timeout=60, what="both publishing services to publish")
    holders = await lease_holders(mongo, platform)
    assert all(holders.values()), holders
    counts = await _publishing(http, platform)
    for service in PUBLISHERS:
        [publisher] = counts[service]
        assert publisher == holders[service], (service, counts, holders)
    for group in CONSUMERS:
        await eventually(lambda g=group: assignments(platform.servers.kafka_bootstrap, g),
                         _split, timeout=60, what=f"{group}'s partitions split in two")

    # Kill (SIGKILL) the lease holder of every service, mid-load.
    killed_at = time.monotonic()
    for service in BACKENDS:
        platform.kill(holders[service])
    survivors = {s: next(i for i in platform.instances(s) if i != holders[s]) for s in BACKENDS}
    handover = {}
    while len(handover) < len(BACKENDS) and time.monotonic() - killed_at < 60:
        now = await lease_holders(mongo, platform)
        for service, holder in now.items():
            if holder == survivors[service] and service not in handover:
                handover[service] = time.monotonic() - killed_at
        await asyncio.sleep(0.2)
    print(f"\nlease hand-over after SIGKILL of the holder (s): "
          f"{ {s: round(t, 1) for s, t in sorted(handover.items())} }")
    assert set(handover) == set(BACKENDS), handover
    # The supervisor (compose's restart policy, Kubernetes) starts the killed instances again
    # under their member ids: static membership gives each its partitions back without a
    # rebalance. (A static member that never returns keeps its partitions until the broker
    # expires its session: after KAFKA_SESSION_TIMEOUT_MS on Kafka, never on noida-db.)
    await in_thread(platform.start, *(holders[s] for s in BACKENDS))
    # A restarted process's test clock starts at real time. The platform's time is the one the
    # survivors keep, as every clock agrees in production: else, holding the sender lease, the
    # restarted instance would find what the survivor scheduled not due for weeks.
    moved = await http.post(f"{platform.url(holders['notifications'])}/test/clock/advance",
                            json={"seconds": AHEAD})
    assert moved.status_code == 200, moved.text
    for group in CONSUMERS:
        await eventually(lambda g=group: assignments(platform.servers.kafka_bootstrap, g),
                         _split, timeout=60, what=f"{group}'s partitions shared again")
    await writer
    assert not load.refused, load.refused
    assert len(load.answered) == 60
    after = await _publishing(http, platform)
    for service in PUBLISHERS:  # the restarted instance does not publish: the lease is taken
        assert after[service] == [survivors[service]], (service, after)

    await _every_registration_once(platform, http, network_id, load.answered, mailbox, survivors)


async def _a_send_cut_off_by_a_kill(platform: TwoOfEach, http: httpx.AsyncClient,
                                    mongo: AsyncMongoClient, mailbox) -> None:
    """The sender killed while the mail server has not yet taken a welcome email: it never
    arrives, is never resent, and is on the admins' list as interrupted (the other instance
    resolves it once the claim lapses), for an admin to retry by hand."""
    network_id = f"net-{uuid.uuid4().hex[:8]}"
    await Api(platform, http).ensure_institution(network_id)
    address = f"held-{network_id}@example.org"
    admin = {"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}"}
    mailbox.held.add(address)
    try:
        registered = await http.post(
            f"{platform.url('profiles')}/networks/{network_id}/mentees", headers=admin,
            json={"institution_id": "inst-a", "display_name": "Held Person", "email": address,
                  "career_stage": "M2"})
        assert registered.status_code == 201, registered.text
        await eventually(lambda: address in mailbox.holding, bool, timeout=60,
                         what="the welcome email's send, held by the mail server")
        sender = await _sender(mongo, platform)
        assert sender is not None
        platform.kill(sender)
    finally:
        mailbox.held.discard(address)
    [other] = [i for i in platform.instances("notifications") if i != sender]
    await eventually(lambda: interrupted_welcomes(http, platform, platform.url(other), network_id),
                     lambda people: registered.json()["id"] in people, timeout=120,
                     what="the cut-off welcome email listed as interrupted")
    await stays(lambda: len(mailbox.to(address)), 0, seconds=2)


async def _sender(mongo: AsyncMongoClient, platform: TwoOfEach) -> str | None:
    """The live notifications instance holding the sender lease (None: none has taken it)."""
    lease = await mongo[f"{platform.database_prefix}_notifications"][SENDER_STATE].find_one(
        {"_id": SENDER_LEASE_ID})
    return platform.live_by_pid().get(int(lease["holder"].split(":")[1])) if lease else None


async def _welcome_emails_of(platform: TwoOfEach, answered: dict[str, str], mailbox) -> dict:
    """Where the welcome emails missing from the mailbox are: their delivery records (status,
    attempts, due time, last error), the sender lease and the batches in flight, and each live
    notifications instance's clock. What a failure needs to be understood."""
    missing = [p for e, p in answered.items()
               if not any(m["Subject"].startswith("Welcome") for m in mailbox.to(e))]
    mongo = AsyncMongoClient(platform.servers.mongodb_uri, tz_aware=True)
    db = mongo[f"{platform.database_prefix}_notifications"]
    fields = {"context": 0, "staged": 0}
    try:
        found = {
            "deliveries": [d async for d in db[DELIVERIES].find(
                {"person_id": {"$in": missing}, "channel": "email"}, fields)],
            "sender": [s async for s in db[SENDER_STATE].find({"kind": {"$ne": "settled"}})],
            "clocks": {},
        }
    finally:
        await mongo.close()
    found["live"] = platform.live_by_pid()
    async with httpx.AsyncClient(timeout=10) as http:
        for instance in platform.instances("notifications"):
            if platform.procs[instance].alive:
                found["clocks"][instance] = (await http.get(f"{platform.url(instance)}/test/clock")).json()
    return found


async def interrupted_welcomes(http: httpx.AsyncClient, platform: TwoOfEach, notifications: str,
                               network_id: str) -> set[str]:
    """People whose welcome email was being sent when its instance was killed, as the admins'
    list shows them: failed as interrupted for an admin to retry by hand, never resent on its
    own (SMTP cannot tell a resend from a first send)."""
    admin = {"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}"}
    failed = await http.get(f"{notifications}/networks/{network_id}/deliveries",
                            params={"status": "failed", "channel": "email", "limit": 200},
                            headers=admin)
    assert failed.status_code == 200, failed.text
    return {d["person_id"] for d in failed.json()
            if d["kind"] == "welcome" and d["last_error"] == INTERRUPTED}


async def _publishing(http: httpx.AsyncClient, platform: TwoOfEach) -> dict[str, list[str]]:
    """service -> the live instances that have published anything."""
    found: dict[str, list[str]] = {}
    for service in BACKENDS:
        found[service] = [i for i in platform.instances(service) if platform.procs[i].alive
                          and await published(http, platform.url(i)) > 0]
    return found


async def _every_registration_once(platform: TwoOfEach, http: httpx.AsyncClient, network_id: str,
                                   answered: dict[str, str], mailbox, survivors: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}"}
    profiles = f"{platform.url(survivors['profiles'])}/networks/{network_id}"
    people = (await http.get(f"{profiles}/people", params={"limit": 100}, headers=admin)).json()
    assert sorted(p["id"] for p in people["items"]) == sorted(answered.values())
    trail = (await http.get(f"{profiles}/audit", params={"limit": 200, "action": "mentee.registered"},
                            headers=admin)).json()["items"]
    assert sorted(e["target_id"] for e in trail) == sorted(answered.values())

    async def pool() -> list[str]:
        response = await http.get(f"{platform.url(survivors['matching'])}/networks/{network_id}"
                                  "/pool/mentees", headers=admin)
        return sorted(e["person_id"] for e in response.json())

    async def counted() -> int:
        response = await http.get(f"{platform.url(survivors['analytics'])}/networks/{network_id}"
                                  "/registrations", headers=admin)
        return response.json()["total"]["mentees_registered"]

    await eventually(pool, lambda ids: ids == sorted(answered.values()), timeout=120, what="the pool")
    await eventually(counted, lambda n: n >= len(answered), timeout=120, what="analytics")

    def welcomed() -> dict[str, int]:
        return {e: sum(m["Subject"].startswith("Welcome") for m in mailbox.to(e)) for e in answered}

    notifications = platform.url(survivors["notifications"])

    async def accounted() -> tuple[dict[str, int], set[str]]:
        return welcomed(), await interrupted_welcomes(http, platform, notifications, network_id)

    # Every welcome email went out once, or is on the admins' list as interrupted.
    try:
        await eventually(accounted, lambda w: all(n == 1 or answered[e] in w[1]
                                                  for e, n in w[0].items()),
                         timeout=180, what="welcome emails, each sent or listed as interrupted")
    except AssertionError as failure:
        try:
            where = await _welcome_emails_of(platform, answered, mailbox)
        except Exception as exc:  # the failure itself matters more than its details
            where = f"(could not be read: {exc!r})"
        raise AssertionError(f"{failure}\nwhere the missing ones are: {where}") from None
    for person_id in answered.values():
        token = platform.jwt_keys.token("mentee", network_id, person_id=person_id)
        feed = await eventually(
            lambda t=token: http.get(f"{notifications}/me/notifications",
                                     headers={"Authorization": f"Bearer {t}"}),
            lambda r: len(r.json()["items"]) >= 1, timeout=60, what="an in-app welcome")
        assert [item["kind"] for item in feed.json()["items"]] == ["welcome"]
    await stays(counted, len(answered), seconds=3)
    # An email being sent when its instance is killed is marked interrupted, never resent.
    assert max(welcomed().values()) == 1, welcomed()
