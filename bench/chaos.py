"""Fault injection on the embedded stack: what is acknowledged, lost, doubled, and how long the
platform takes to agree with itself again.

Each experiment starts a fresh stack of its own (SecantusDB, noida-db, the four services, an
SMTP catcher, all on 127.0.0.1 and free ports, data in a temp dir), writes registrations at a
steady rate through the profiles API, injects one fault mid-load, then audits every
registration the store holds in every projection until they all agree or the time cap runs out:

- `broker-log-loss`: noida-db killed (SIGKILL) with its log deleted, restarted on its port;
- `service-kill`: every service killed (SIGKILL) at once, restarted two seconds later;
- `store-kill`: SecantusDB killed (SIGKILL), restarted three seconds later;
- `slow-smtp`: the SMTP port is held by a server that accepts and never greets, then a real
  one takes the port back.

The load client sends an `Idempotency-Key` with every registration and retries a failed one
(connection error, 5xx, 409 "in progress") with the same key and body, as a careful client
does. Per registration it keeps the final answer; the audit then compares with what profiles
holds (the record):

- acknowledged: registrations answered 201;
- answer lost: registrations profiles holds whose client never got a 201 (a 500 or a dropped
  connection on a committed write; a retry then sees 409 unless the key is honoured);
- lost: acknowledged registrations missing from profiles, or registrations profiles holds
  missing from a projection (its audit entry, matching's pool, analytics' count, the in-app
  welcome, the welcome email) when the cap ran out;
- doubled: the same, counted twice (two audit entries, two welcomes, an analytics count above
  the record);
- converge: seconds from the end of the fault (the restarted component answering, or the SMTP
  server fixed) or of the load, whichever is later, until every projection matched the record.

Run: `.venv/bin/python bench/chaos.py [--only NAME ...] [--rate 10] [--seconds 20] [--cap 360]
[--settle 150]`. Everything is bounded: an experiment waits at most `cap` seconds after its fault,
and stops earlier when nothing changed for `settle` seconds (what is missing then is reported
lost); a stack lives at most seconds + cap + about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller

# Measure this checkout (and start its services), whatever checkout the venv was installed from.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ops.infra import (  # noqa: E402
    ManagedProcess,
    embedded_mongo_uri,
    free_port,
    start_noida,
    start_secantus,
    wait_for_kafka,
    wait_for_mongo,
)
from ops.stack import start_service, wait_ready  # noqa: E402
from shared.auth import ensure_local_keypair, issue_token  # noqa: E402
from shared.settings import DEFAULT_PORTS  # noqa: E402

SERVICES = tuple(DEFAULT_PORTS)
WELCOME_SUBJECT = "Welcome to mentoring"


# ---------------------------------------------------------------- SMTP: a catcher and a hole


class Mailbox:
    """aiosmtpd handler keeping (recipient, subject) of every accepted message."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt.lower(), str(message["Subject"] or "")))
        return "250 Message accepted for delivery"

    def welcomes(self) -> Counter[str]:
        return Counter(to for to, subject in self.received if subject.startswith(WELCOME_SUBJECT))


class SmtpPort:
    """One port, served either by a real SMTP server (the mailbox) or by a hole that accepts
    connections and never says a word (a mail server that hangs)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self._controller: Controller | None = None
        self._hole: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    def serve_mail(self) -> None:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    async def serve_hole(self) -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._held.append(writer)
            try:
                while await reader.read(4096):
                    pass
            except ConnectionError:
                pass

        self._hole = await asyncio.start_server(hold, "127.0.0.1", self.port, reuse_address=True)

    async def fix(self) -> None:
        """The hanging server goes away (its connections drop) and a real one takes the port."""
        await self.close_hole()
        self.serve_mail()

    async def close_hole(self) -> None:
        if self._hole is not None:
            self._hole.close()
            for writer in self._held:
                writer.close()
            self._held.clear()
            await self._hole.wait_closed()
            self._hole = None

    async def close(self) -> None:
        await self.close_hole()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


# ---------------------------------------------------------------- the stack


class Stack:
    """SecantusDB, noida-db and the four services of one experiment, in a temp dir."""

    def __init__(self, root: Path, smtp_port: int) -> None:
        self.root = root
        self.kafka_port, self.mongo_port = free_port(), free_port()
        self.kafka = f"127.0.0.1:{self.kafka_port}"
        self.mongo_uri = embedded_mongo_uri(self.mongo_port)
        self.ports = {name: free_port() for name in SERVICES}
        self.smtp_port = smtp_port
        self.private_key, self.public_key = ensure_local_keypair(root)
        self.procs: dict[str, ManagedProcess] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start_mongo(self) -> None:
        self.procs["mongo"] = start_secantus(self.root / "mongo", self.mongo_port,
                                             self.root / "logs" / "mongo.log", die_with_parent=True)
        wait_for_mongo(self.mongo_uri, 60, proc=self.procs["mongo"])

    def start_kafka(self, wipe: bool = False) -> None:
        if wipe:
            shutil.rmtree(self.root / "kafka", ignore_errors=True)
        self.procs["kafka"] = start_noida(self.root / "kafka", self.kafka_port,
                                          self.root / "logs" / "kafka.log", die_with_parent=True)
        wait_for_kafka(self.kafka, 60, proc=self.procs["kafka"])

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "MONGODB_URI": self.mongo_uri,
            "DATA_DIR": str(self.root),
            "JWT_PUBLIC_KEY_FILE": str(self.public_key),
            "SMTP_PORT": str(self.smtp_port),
            "PUBLIC_BASE_URL": self.url("notifications"),
            "KAFKA_GROUP_INSTANCE_ID": f"{name}-1",
            "LOG_LEVEL": "INFO",
        }

    def start_services(self, *names: str) -> None:
        for name in names or SERVICES:
            self.procs[name] = start_service(name, self.ports[name], self.env(name),
                                             self.root / "logs" / f"{name}.log",
                                             die_with_parent=True)
        for name in names or SERVICES:
            wait_ready(self.url(name), 120, proc=self.procs[name])

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    def close(self) -> None:
        for name in (*SERVICES, "kafka", "mongo"):
            if name in self.procs:
                self.procs[name].kill()

    def token(self, network_id: str, **claims) -> str:
        role = claims.pop("role", "network_admin")
        return issue_token(self.private_key.read_bytes(), role=role, network_id=network_id,
                           **claims)


# ---------------------------------------------------------------- load


@dataclass
class Attempt:
    email: str
    status: int | None = None  # the last HTTP answer (None: no answer at all)
    person_id: str | None = None
    tries: int = 0
    error: str = ""
    history: list[str] = field(default_factory=list)


class Load:
    """Registrations at a steady rate, each retried with its key until answered for good."""

    RETRY_FOR = 90.0

    def __init__(self, stack: Stack, network_id: str, rate: float) -> None:
        self.stack, self.network_id, self.rate = stack, network_id, rate
        self.attempts: list[Attempt] = []
        self._headers = {"Authorization": f"Bearer {stack.token(network_id)}"}

    async def add_institutions(self) -> None:
        """The three institutions the registrations name (profiles refuses an unknown one, 422)."""
        async with httpx.AsyncClient(timeout=30) as http:
            for i in range(3):
                response = await http.post(
                    f"{self.stack.url('profiles')}/networks/{self.network_id}/institutions",
                    json={"id": f"inst-{i}", "name": f"Chaos Institution {i}"}, headers=self._headers)
                if response.status_code not in (201, 409):
                    print(f"   adding inst-{i}: {response.status_code} {response.text[:200]}", flush=True)

    async def run(self, seconds: float) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            tasks = []
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < seconds:
                tasks.append(asyncio.create_task(self._register(http, n)))
                n += 1
                await asyncio.sleep(max(0.0, started + n / self.rate - time.monotonic()))
            await asyncio.gather(*tasks)

    async def _register(self, http: httpx.AsyncClient, n: int) -> None:
        attempt = Attempt(email=f"chaos{n}-{uuid.uuid4().hex[:8]}@example.org")
        self.attempts.append(attempt)
        body = {"institution_id": f"inst-{n % 3}", "display_name": f"Chaos Person {n}",
                "email": attempt.email, "career_stage": "M2"}
        headers = {**self._headers, "Idempotency-Key": str(uuid.uuid4())}
        url = f"{self.stack.url('profiles')}/networks/{self.network_id}/mentees"
        deadline = time.monotonic() + self.RETRY_FOR
        while True:
            attempt.tries += 1
            try:
                response = await http.post(url, json=body, headers=headers)
                attempt.status = response.status_code
                if response.status_code == 201:
                    attempt.person_id = response.json()["id"]
                    return
                attempt.error = response.text[:200]
                attempt.history.append(f"{response.status_code} {response.text[:90]}")
                # 5xx: try again; 409 is final unless it says the first try is still running.
                retry = response.status_code >= 500 or response.status_code == 429 or (
                    response.status_code == 409 and "in progress" in response.text)
            except httpx.HTTPError as exc:
                attempt.status, attempt.error, retry = None, repr(exc), True
                attempt.history.append(repr(exc)[:90])
            if not retry or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)


# ---------------------------------------------------------------- audit


@dataclass
class Tally:
    """What one look at every projection found, against the record (profiles' people)."""

    record: dict[str, str] = field(default_factory=dict)  # email -> person id
    missing: dict[str, int] = field(default_factory=dict)  # projection -> how many
    doubled: dict[str, int] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return not any(self.missing.values()) and not any(self.doubled.values())


class Auditor:
    def __init__(self, stack: Stack, network_id: str, smtp: SmtpPort) -> None:
        self.stack, self.network_id, self.smtp = stack, network_id, smtp
        self._admin = {"Authorization": f"Bearer {stack.token(network_id)}"}
        self._welcomed: set[str] = set()

    async def _pages(self, http: httpx.AsyncClient, url: str, params: dict) -> list[dict]:
        items, cursor = [], None
        while True:
            response = await http.get(url, params={**params, **({"cursor": cursor} if cursor else {})},
                                      headers=self._admin)
            response.raise_for_status()
            page = response.json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def look(self, http: httpx.AsyncClient, *, every_feed: bool = False) -> Tally:
        base = f"/networks/{self.network_id}"
        tally = Tally()
        people = await self._pages(http, f"{self.stack.url('profiles')}{base}/people",
                                   {"limit": 100})
        tally.record = {p["email"].lower(): p["id"] for p in people if p.get("email")}
        ids = set(tally.record.values())

        trail = await self._pages(http, f"{self.stack.url('profiles')}{base}/audit",
                                  {"limit": 200, "action": "mentee.registered"})
        audited = Counter(e["target_id"] for e in trail)
        tally.missing["audit"] = len(ids - set(audited))
        tally.doubled["audit"] = sum(n - 1 for n in audited.values() if n > 1)

        pool = await http.get(f"{self.stack.url('matching')}{base}/pool/mentees",
                              headers=self._admin)
        pool.raise_for_status()
        pooled = Counter(e["person_id"] for e in pool.json())
        tally.missing["pool"] = len(ids - set(pooled))
        tally.doubled["pool"] = sum(n - 1 for n in pooled.values() if n > 1)

        counts = await http.get(f"{self.stack.url('analytics')}{base}/registrations",
                                headers=self._admin)
        counts.raise_for_status()
        counted = counts.json()["total"]["mentees_registered"]
        tally.missing["analytics"] = max(0, len(ids) - counted)
        tally.doubled["analytics"] = max(0, counted - len(ids))

        mails = self.smtp.mailbox.welcomes()
        tally.missing["email"] = sum(1 for e in tally.record if mails[e] == 0)
        tally.doubled["email"] = sum(mails[e] - 1 for e in tally.record if mails[e] > 1)

        tally.missing["in-app"], tally.doubled["in-app"] = 0, 0
        for person_id in sorted(ids):
            if person_id in self._welcomed and not every_feed:
                continue
            token = self.stack.token(self.network_id, role="mentee", person_id=person_id)
            feed = await http.get(f"{self.stack.url('notifications')}/me/notifications",
                                  params={"limit": 100},
                                  headers={"Authorization": f"Bearer {token}"})
            feed.raise_for_status()
            welcomes = sum(1 for item in feed.json()["items"] if item["kind"] == "welcome")
            if welcomes == 0:
                tally.missing["in-app"] += 1
                if not every_feed:
                    break  # the feed is not there yet: no need to ask everyone else now
            else:
                self._welcomed.add(person_id)
                tally.doubled["in-app"] += welcomes - 1
        return tally

    async def converge(self, load_end: float, fault: asyncio.Task, cap: float,
                       settle: float) -> Convergence:
        """Look at every projection from the end of the load until all match the record once
        the fault is over (or nothing changed for `settle` seconds, or `cap` ran out); then
        look once more, every feed included, for anything doubled late."""
        result = Convergence()
        async with httpx.AsyncClient(timeout=30) as http:
            last, changed = None, load_end
            while True:
                try:
                    tally = await self.look(http)
                except httpx.HTTPError:
                    tally = None
                now = time.monotonic()
                since = result.since = max(load_end, fault.result()[1]) if fault.done() else None
                if tally is not None:
                    for name in tally.missing:
                        if not tally.missing[name] and not tally.doubled[name]:
                            result.first_exact.setdefault(name, now - load_end)
                        else:
                            result.first_exact.pop(name, None)
                    seen = (tally.missing, tally.doubled, len(tally.record))
                    if seen != last:
                        changed, last = now, seen
                    if since is not None and tally.exact:
                        result.converged = now - since
                        break
                    if since is not None and now - max(changed, since) > settle:
                        break
                if since is not None and now - since > cap:
                    break
                await asyncio.sleep(2)
            result.settled = changed - (result.since or load_end)
            await asyncio.sleep(5)  # anything arriving late would show up as doubled now
            for _ in range(10):
                try:
                    result.tally = await self.look(http, every_feed=True)
                    return result
                except httpx.HTTPError:
                    await asyncio.sleep(3)
            raise RuntimeError("the services stopped answering the audit")


@dataclass
class Convergence:
    converged: float | None = None  # seconds after the fault (or the load) ended
    settled: float = 0.0  # seconds after it until the last change seen
    since: float | None = None
    first_exact: dict[str, float] = field(default_factory=dict)  # after the load ended
    tally: Tally = field(default_factory=Tally)


# ---------------------------------------------------------------- experiments


@dataclass
class Result:
    name: str
    acknowledged: int
    answer_lost: int
    lost: dict[str, int]
    doubled: dict[str, int]
    converge: float | None
    settled: float
    first_exact: dict[str, float]
    note: str = ""


Fault = Callable[[Stack, SmtpPort], Awaitable[str]]


async def outbox_copies(stack: Stack) -> str:
    """Entries in each service's outbox log against the events they carry: copies are the
    verifier's republications (a few after a broker lost its log, not thousands)."""
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(stack.mongo_uri, serverSelectionTimeoutMS=5000)
    parts = []
    try:
        for name in SERVICES:
            outbox = client[f"mentorship_{name}"]["outbox"]
            entries = await outbox.count_documents({})
            events = len(await outbox.distinct("event_id"))
            if entries:
                parts.append(f"{name} {entries}/{events}")
    finally:
        await client.close()
    return "outbox entries/events: " + ", ".join(parts)


async def _in_thread(fn, *args):
    return await asyncio.to_thread(fn, *args)


async def broker_log_loss(stack: Stack, smtp: SmtpPort) -> str:
    await _in_thread(stack.kill, "kafka")
    await _in_thread(stack.start_kafka, True)
    return "noida-db killed, its log deleted, restarted"


async def service_kill(stack: Stack, smtp: SmtpPort) -> str:
    for name in SERVICES:
        await _in_thread(stack.kill, name)
    await asyncio.sleep(2)
    await _in_thread(stack.start_services)
    return "every service killed, restarted 2 s later"


async def store_kill(stack: Stack, smtp: SmtpPort) -> str:
    await _in_thread(stack.kill, "mongo")
    await asyncio.sleep(3)
    await _in_thread(stack.start_mongo)
    return "SecantusDB killed, restarted 3 s later"


async def slow_smtp(stack: Stack, smtp: SmtpPort) -> str:
    # The hole has held the port since the stack started; it keeps it for 90 s of load and
    # waiting, longer than a delivery claim (60 s), then a real server takes over.
    await asyncio.sleep(max(0.0, 90 - SLOW_SMTP_FAULT_AT))
    await smtp.fix()
    return "SMTP hung (accepts, never greets) for 90 s, then a real server"


SLOW_SMTP_FAULT_AT = 0.0
KEEP = False  # --keep: leave each experiment's data and logs in place
EXPERIMENTS: dict[str, tuple[Fault, float]] = {
    # name -> (fault, seconds into the load when it strikes)
    "broker-log-loss": (broker_log_loss, 6.0),
    "service-kill": (service_kill, 6.0),
    "store-kill": (store_kill, 6.0),
    "slow-smtp": (slow_smtp, SLOW_SMTP_FAULT_AT),
}


async def run_experiment(name: str, rate: float, seconds: float, cap: float,
                         settle: float) -> Result:
    fault, at = EXPERIMENTS[name]
    root = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    smtp = SmtpPort(free_port())
    if name == "slow-smtp":
        await smtp.serve_hole()
    else:
        smtp.serve_mail()
    stack = Stack(root, smtp.port)
    try:
        await _in_thread(stack.start_mongo)
        await _in_thread(stack.start_kafka)
        await _in_thread(stack.start_services)
        network_id = f"chaos-{uuid.uuid4().hex[:6]}"
        load = Load(stack, network_id, rate)
        await load.add_institutions()

        async def strike() -> tuple[str, float]:
            await asyncio.sleep(at)
            note = await fault(stack, smtp)
            return note, time.monotonic()

        load_task = asyncio.create_task(load.run(seconds))
        fault_task = asyncio.create_task(strike())
        await load_task
        found = await Auditor(stack, network_id, smtp).converge(
            time.monotonic(), fault_task, cap, settle)
        note, _ = await fault_task
        tally = found.tally
        acked = {a.person_id for a in load.attempts if a.status == 201}
        record_ids = set(tally.record.values())
        answered = {a.email for a in load.attempts if a.status == 201}
        note += "; " + await outbox_copies(stack)
        unanswered = [a for a in load.attempts if a.status != 201]
        if unanswered:
            note += "; not answered 201: " + "; ".join(
                f"{a.email.split('@')[0]} {'in record' if a.email in tally.record else 'absent'}"
                f" after {a.tries} tries: {' / '.join(a.history)}" for a in unanswered[:3])
        lost = dict(tally.missing)
        lost["profiles"] = len(acked - record_ids)
        return Result(
            name=name,
            acknowledged=len(acked),
            answer_lost=sum(1 for e in tally.record if e not in answered),
            lost=lost,
            doubled=dict(tally.doubled),
            converge=found.converged,
            settled=found.settled,
            first_exact=found.first_exact,
            note=note,
        )
    finally:
        await _in_thread(stack.close)
        await smtp.close()
        if KEEP:
            print(f"   kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _cell(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    detail = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    return f"{total}" + (f" ({detail})" if detail else "")


def print_table(results: list[Result], cap: float) -> None:
    print()
    print("| Experiment | Acknowledged | Answer lost | Lost | Doubled | Converged after |")
    print("|---|---|---|---|---|---|")
    for r in results:
        converge = (f"{r.converge:.0f} s" if r.converge is not None
                    else f"never (last change after {r.settled:.0f} s; cap {cap:.0f} s)")
        print(f"| {r.name} | {r.acknowledged} | {r.answer_lost} | {_cell(r.lost)} | "
              f"{_cell(r.doubled)} | {converge} |")
    print()
    for r in results:
        exact = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(r.first_exact.items(),
                                                               key=lambda kv: kv[1]))
        print(f"- {r.name}: {r.note}; each projection exact after the load ended: "
              f"{exact or 'none'}")
    with open("/proc/loadavg") as fh:
        print(f"load average at the end: {fh.read().split()[:3]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(EXPERIMENTS), default=None)
    parser.add_argument("--rate", type=float, default=10.0, help="registrations per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the load runs")
    parser.add_argument("--cap", type=float, default=360.0,
                        help="seconds each experiment may take to converge")
    parser.add_argument("--settle", type=float, default=150.0,
                        help="stop waiting after this many seconds without any change")
    parser.add_argument("--keep", action="store_true", help="keep data and logs (temp dirs)")
    args = parser.parse_args()
    global KEEP
    KEEP = args.keep
    results = []
    for name in args.only or list(EXPERIMENTS):
        started = time.monotonic()
        print(f"== {name}", flush=True)
        result = await run_experiment(name, args.rate, args.seconds, args.cap, args.settle)
        print(f"   {result} ({time.monotonic() - started:.0f} s)", flush=True)
        results.append(result)
    print_table(results, args.cap)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly: kill what started
    asyncio.run(main())
