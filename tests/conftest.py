"""Session fixtures: the tests' own embedded servers, on free ports under pytest's tmp dir.

Nothing here touches a running `make up` (.data, ports 27017/9092/8001-8004). Servers are
started with die_with_parent, stopped by the fixtures' teardown, and killed by an atexit guard
as a last resort, so a failed or interrupted run leaves no processes behind. Server logs live
next to their data under the tmp dir; when a server does not come up, the error carries the
tail of its log.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from ops.infra import (
    ManagedProcess,
    embedded_mongo_uri,
    free_port,
    start_noida,
    start_secantus,
    start_tansu,
    wait_for_kafka,
    wait_for_mongo,
)
from shared.auth import ensure_local_keypair, issue_token
from tests.e2e.conftest import Api, IdentityProviders, Mailbox, Platform

_STARTED: list[ManagedProcess] = []


@atexit.register
def _kill_leftovers() -> None:
    for proc in _STARTED:
        if proc.alive:
            proc.kill()


def _track(proc: ManagedProcess) -> ManagedProcess:
    _STARTED.append(proc)
    return proc


class Infra:
    """SecantusDB + noida-db for one test session (or one test that restarts them).

    The restart methods block for a few seconds; from an async test that must not stall its
    event loop, call them with `await asyncio.to_thread(infra.start_kafka)`.
    """

    def __init__(self, root: Path, start_timeout: float = 60, *, test_commands: bool = False) -> None:
        self.root = root
        # configureFailPoint (inject store failures) needs SecantusDB's test commands on; it
        # reads them from a secantusd.toml in its working directory, its storage dir.
        self.test_commands = test_commands
        self.kafka_port, self.mongo_port = free_port(), free_port()
        self.kafka_bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.mongodb_uri = embedded_mongo_uri(self.mongo_port)
        self.kafka_dir, self.mongo_dir = root / "kafka", root / "mongo"
        self.kafka_log, self.mongo_log = root / "logs" / "kafka.log", root / "logs" / "mongo.log"
        self._timeout = start_timeout
        self._kafka: ManagedProcess | None = None
        self._mongo: ManagedProcess | None = None

    def start_kafka(self, wipe_log: bool = False) -> None:
        """(Re)start noida-db on the same port and data dir; wipe_log=True first deletes its
        files, as noida's crash data loss would."""
        if self._kafka is not None and self._kafka.alive:
            raise RuntimeError("Kafka is already running; stop_kafka() or kill_kafka() first")
        if wipe_log and self.kafka_dir.exists():
            shutil.rmtree(self.kafka_dir)
        self._kafka = _track(start_noida(self.kafka_dir, self.kafka_port, self.kafka_log,
                                         die_with_parent=True))
        self._wait(self._kafka, lambda: wait_for_kafka(self.kafka_bootstrap, self._timeout,
                                                       proc=self._kafka))

    def stop_kafka(self, timeout: float = 10) -> None:
        """SIGTERM (noida saves its state), SIGKILL after timeout."""
        if self._kafka is not None:
            self._kafka.stop(timeout)

    def kill_kafka(self) -> None:
        """SIGKILL: noida loses roughly the last second of acknowledged messages."""
        if self._kafka is not None:
            self._kafka.kill()

    def start_mongo(self) -> None:
        if self._mongo is not None and self._mongo.alive:
            raise RuntimeError("MongoDB is already running; kill_mongo() first")
        if self.test_commands:
            self.mongo_dir.mkdir(parents=True, exist_ok=True)
            (self.mongo_dir / "secantusd.toml").write_text("[server]\nenable_test_commands = true\n")
        self._mongo = _track(start_secantus(self.mongo_dir, self.mongo_port, self.mongo_log,
                                            die_with_parent=True))
        self._wait(self._mongo, lambda: wait_for_mongo(self.mongodb_uri, self._timeout,
                                                       proc=self._mongo))

    def pause_mongo(self) -> None:
        """SIGSTOP: the store still accepts connections but answers nothing, like a store
        too busy to answer (resume_mongo lets it go on)."""
        if self._mongo is not None:
            os.killpg(self._mongo.pid, signal.SIGSTOP)

    def resume_mongo(self) -> None:
        if self._mongo is not None:
            os.killpg(self._mongo.pid, signal.SIGCONT)

    def stop_mongo(self, timeout: float = 10) -> None:
        if self._mongo is not None:
            self._mongo.stop(timeout)

    def kill_mongo(self) -> None:
        if self._mongo is not None:
            self._mongo.kill()

    @property
    def kafka_alive(self) -> bool:
        return self._kafka is not None and self._kafka.alive

    @property
    def mongo_alive(self) -> bool:
        return self._mongo is not None and self._mongo.alive

    @staticmethod
    def _wait(proc: ManagedProcess, wait) -> None:
        try:
            wait()
        except BaseException:
            proc.kill()
            raise

    def close(self) -> None:
        """SIGKILL: test data is thrown away, and SecantusDB takes 2 s to honour SIGTERM."""
        for proc in (self._kafka, self._mongo):
            if proc is not None:
                proc.kill()


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """SecantusDB and noida-db on free ports, ready; stopped at session end."""
    servers = Infra(tmp_path_factory.mktemp("infra"))
    try:
        servers.start_mongo()
        servers.start_kafka()
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session")
def tansu_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker (memory only), started the first time a test asks for it."""
    port = free_port()
    proc = _track(start_tansu(port, tmp_path_factory.mktemp("tansu") / "tansu.log",
                              die_with_parent=True))
    try:
        wait_for_kafka(f"127.0.0.1:{port}", 60, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop(timeout=5)


@dataclass(frozen=True)
class JwtKeys:
    private_pem: bytes
    public_path: Path

    @property
    def private_path(self) -> Path:
        """Profiles signs the platform's access tokens with it (JWT_PRIVATE_KEY_FILE)."""
        return self.public_path.with_name("private.pem")

    def token(
        self,
        role: str,
        network_id: str,
        institution_id: str | None = None,
        program_ids: list[str] | None = None,
        person_id: str | None = None,
    ) -> str:
        return issue_token(self.private_pem, role=role, network_id=network_id,
                           institution_id=institution_id, program_ids=program_ids,
                           person_id=person_id)


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> JwtKeys:
    """A key pair for the session: services get public_path as JWT_PUBLIC_KEY_FILE."""
    private_path, public_path = ensure_local_keypair(tmp_path_factory.mktemp("data"))
    return JwtKeys(private_path.read_bytes(), public_path)


@pytest.fixture
def private_infra(tmp_path: Path) -> Iterator[Infra]:
    """Servers of one test's own, for tests that crash or wipe them (slower: ~2 s to start)."""
    servers = Infra(tmp_path / "infra")
    try:
        servers.start_mongo()
        servers.start_kafka()
        yield servers
    finally:
        servers.close()


# ---------------------------------------------------------------- the session's platform
# Defined here, not in tests/e2e, so that tests/e2e and tests/security share ONE platform per
# session: two would be two consumer groups' worth of services on the same broker, each taking
# some of the other's partitions (a welcome email sent by the platform without the mailbox).


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on a free port, shared by the session's platform."""
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def identity_providers() -> Iterator[IdentityProviders]:
    providers = IdentityProviders()
    try:
        yield providers
    finally:
        providers.stop()


@pytest.fixture(scope="session")
def app_url(platform: Platform) -> str:
    """The web app's address, which every link in a message starts with."""
    return platform.url("web")


@pytest.fixture(scope="session")
def platform(infra, jwt_keys, mailbox, identity_providers, tmp_path_factory) -> Iterator[Platform]:
    running = Platform(
        infra, jwt_keys, tmp_path_factory.mktemp("platform"), smtp_port=mailbox.port,
        # The session platform signs in like `make up`: local sign-in on, and the mock IdPs.
        extra_env={**identity_providers.env(), "LOCAL_SIGN_IN": "true"},
    )
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
async def api(platform) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield Api(platform, client)


@pytest.fixture
def network_id() -> str:
    return f"net-{uuid.uuid4().hex[:8]}"
