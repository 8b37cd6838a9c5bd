"""The platform as `mentorship up` runs it, for the benches: SecantusDB (a store per service
that keeps data, see `ops.stores`; `BENCH_SHARED_STORE=1` runs one store for all, as before),
noida-db, a mail catcher and the services as real processes, on free ports and a temp data dir.

Run a bench with `PYTHONPATH=<another checkout>` to measure that checkout's code (the figures
of before): its own servers, URI and services are used, and what it lacks (the mail catcher)
is left out.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from ops.infra import (
    embedded_mongo_uri,
    free_port,
    start_noida,
    start_secantus,
    wait_for_kafka,
    wait_for_mongo,
)
from ops.stack import SERVICES, start_service, wait_ready
from shared.auth import ensure_local_keypair, issue_token
from shared.db import create_client
from shared.messaging.outbox import CURSOR_ID, PENDING_FLAG, STATE


@dataclass
class Platform:
    root: Path
    bootstrap: str
    mongo_uri: str  # the shared store (profiles')
    urls: dict[str, str]
    private_key: bytes
    procs: list = field(default_factory=list)
    store_uris: dict[str, str] = field(default_factory=dict)  # service -> its store

    def store_uri(self, service: str) -> str:
        return self.store_uris.get(service, self.mongo_uri)

    def token(self, network: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue_token(
            self.private_key, role="network_admin", network_id=network, ttl_seconds=7200)}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=10)


def start_platform(env_extra: dict[str, str] | None = None) -> Platform:
    root = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    kafka_port, mongo_port, smtp_port = free_port(), free_port(), free_port()
    bootstrap, mongo_uri = f"127.0.0.1:{kafka_port}", embedded_mongo_uri(mongo_port)
    procs = [
        start_secantus(root / "mongo", mongo_port, root / "mongo.log", die_with_parent=True),
        start_noida(root / "kafka", kafka_port, root / "kafka.log", die_with_parent=True),
    ]
    store_uris: dict[str, str] = {}
    try:
        from ops.stores import OWN_STORE, store_name
    except ImportError:  # code of before: one store for all
        OWN_STORE = ()
    for service in () if os.environ.get("BENCH_SHARED_STORE") else OWN_STORE:
        name, port = store_name(service), free_port()
        procs.append(start_secantus(root / name, port, root / f"{name}.log",
                                    die_with_parent=True, name=name))
        store_uris[service] = embedded_mongo_uri(port)
    try:
        from ops.infra import start_mail_catcher, wait_for_smtp
    except ImportError:  # code of before: no mail catcher (emails are retried, then failed)
        start_mail_catcher = wait_for_smtp = None
    if start_mail_catcher is not None:
        procs.append(start_mail_catcher(root / "mail", smtp_port, root / "mail.log",
                                        die_with_parent=True))
    for uri in (mongo_uri, *store_uris.values()):
        wait_for_mongo(uri)
    wait_for_kafka(bootstrap)
    if wait_for_smtp is not None:
        wait_for_smtp(f"127.0.0.1:{smtp_port}")
    private, public = ensure_local_keypair(root)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_URI": mongo_uri,
           "DATA_DIR": str(root), "JWT_PUBLIC_KEY_FILE": str(public), "LOG_LEVEL": "WARNING",
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), **(env_extra or {})}
    urls = {}
    plat = Platform(root, bootstrap, mongo_uri, urls, private.read_bytes(), procs, store_uris)
    try:
        for name in SERVICES:
            port = free_port()
            service_env = {**env, "MONGODB_URI": plat.store_uri(name)}
            procs.append(start_service(name, port, service_env, root / f"{name}.log",
                                       die_with_parent=True))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_ready(url, 120)
    except BaseException:
        plat.stop()
        raise
    return plat


def _cpu_of_tree(pid: int, stats: dict[int, list[str]]) -> float:
    """User + system CPU seconds of a process and its live descendants (uvicorn workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
        todo += [child for child, f in stats.items() if int(f[1]) == current]
    return total


def cpu_seconds(plat: Platform) -> dict[str, float]:
    """CPU seconds each component of the platform has used so far (Linux /proc): on a shared
    machine, steadier than wall-clock time (a quiet 2-core machine needs at least their sum
    divided by two)."""
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
    return {proc.name: _cpu_of_tree(proc.pid, stats) for proc in plat.procs}


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> str:
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    parts = ", ".join(f"{name} {value:.0f}" for name, value in
                      sorted(spent.items(), key=lambda item: -item[1]) if value >= 0.5)
    return f"{sum(spent.values()):.0f} CPU s ({parts})"


def describe(env_extra: dict[str, str] | None = None) -> str:
    import ops

    code = Path(ops.__file__).resolve().parents[1]
    return (f"services from {code}; store URI {embedded_mongo_uri(1).split('?', 1)[1]}; "
            f"extra environment {env_extra or 'none'}")


class Convergence:
    """Whether every service has applied everything: profiles' outbox drained, and every
    consuming service's stored offsets at the end of every partition it reads (and its own
    outbox drained, for what it published in turn)."""

    def __init__(self, plat: Platform) -> None:
        self.clients = {name: create_client(plat.store_uri(name)) for name in SERVICES}
        self.bootstrap = plat.bootstrap
        modules = {name: importlib.import_module(f"services.{name}.app") for name in SERVICES}
        # the web app has no store, outbox or consumer of its own: nothing to converge
        self.definitions = {name: module.DEFINITION for name, module in modules.items()
                            if hasattr(module, "DEFINITION")}
        self.kafka: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.kafka = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await self.kafka.start()

    async def close(self) -> None:
        if self.kafka is not None:
            await self.kafka.stop()
        for client in self.clients.values():
            await client.close()

    async def published(self, service: str) -> bool:
        db = self.clients[service][f"mentorship_{service}"]
        for name in self.definitions[service].outbox_collections:
            if await db[name].count_documents({PENDING_FLAG: True}, limit=1):
                return False
        seq = await db[STATE].find_one({"_id": "seq"}) or {}
        cursor = await db[STATE].find_one({"_id": CURSOR_ID}) or {}
        return int(cursor.get("seq", 0)) >= int(seq.get("value", 0))

    async def applied(self, service: str) -> bool:
        assert self.kafka is not None
        topics = list(self.definitions[service].subscriptions)
        if not topics:
            return True
        partitions = [TopicPartition(t, p) for t in topics
                      for p in (self.kafka.partitions_for_topic(t) or ())]
        if not partitions:
            await self.kafka._client.force_metadata_update()  # noqa: SLF001 - bench only
            return False
        ends = await self.kafka.end_offsets(partitions)
        db = self.clients[service][f"mentorship_{service}"]
        stored = {d["_id"]: d["offset"] async for d in db["consumer_offsets"].find({})}
        return all(stored.get(f"{tp.topic}:{tp.partition}", -1) + 1 >= end
                   for tp, end in ends.items() if end > 0)

    async def everything_applied(self) -> bool:
        for service in self.definitions:
            if not await self.published(service) or not await self.applied(service):
                return False
        return True


