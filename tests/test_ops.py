"""Tests of the local tooling: tokens, process management, embedded servers, the supervisor.

Each one checks a behaviour the rest of the suite or `make up` relies on and that could break:
a token the services reject, a server left running after stop, a restart that loses the port or
the data, a stale pid file reported as running, an `up` that starts duplicates.
"""

from __future__ import annotations

import mailbox
import os
import smtplib
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import jwt
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import MongoClient
from typer.testing import CliRunner

from ops import stack, stores
from ops.cli import app, service_urls
from ops.infra import (
    ManagedProcess,
    free_port,
    group_alive,
    port_in_use,
    wait_for_kafka,
    wait_for_mongo,
)
from shared.auth import Grant, GrantRole, TokenRejected, TokenVerifier, ensure_local_keypair


def _verifier(public_path: Path) -> TokenVerifier:
    return TokenVerifier(public_key_pem=public_path.read_bytes(), issuer="mentorship-local",
                         audience="mentorship")


def test_token_round_trips_through_the_verifier(jwt_keys) -> None:
    token = jwt_keys.token("program_coordinator", "net-1", institution_id="inst-1",
                           program_ids=["p1", "p2"], person_id="person-1")
    principal = _verifier(jwt_keys.public_path).verify(token)
    # The older one-role shape becomes grants: a program coordinator of each program.
    assert principal.grants == (
        Grant(role=GrantRole.PROGRAM_COORDINATOR, program_id="p1"),
        Grant(role=GrantRole.PROGRAM_COORDINATOR, program_id="p2"),
    )
    assert principal.network_id == "net-1" and principal.institution_ids == ()
    assert principal.program_ids == ("p1", "p2")
    assert principal.subject == principal.person_id == "person-1"


def test_token_from_another_key_is_rejected(jwt_keys, tmp_path: Path) -> None:
    _, other_public = ensure_local_keypair(tmp_path)
    with pytest.raises(TokenRejected, match="not signed by a key this platform trusts"):
        _verifier(other_public).verify(jwt_keys.token("mentor", "net-1"))


def test_cli_token_uses_the_data_dir_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["token", "--network", "n1", "--person", "me", "--grant", "program_coordinator:a",
         "--grant", "institution_coordinator:i1", "--ttl", "120"],
        env={"MENTORSHIP_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    principal = _verifier(tmp_path / "jwt" / "public.pem").verify(token)
    assert (principal.program_ids, principal.institution_ids, principal.person_id) == (
        ("a",), ("i1",), "me")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120 and claims["kind"] == "person"
    legacy = CliRunner().invoke(app, ["token", "--role", "mentee", "--network", "n1",
                                      "--person", "me"], env={"MENTORSHIP_DATA_DIR": str(tmp_path)})
    mentee = _verifier(tmp_path / "jwt" / "public.pem").verify(legacy.output.strip())
    assert mentee.grants == () and mentee.person_id == "me"
    bad = CliRunner().invoke(app, ["token", "--network", "n1", "--grant", "dean:x"],
                             env={"MENTORSHIP_DATA_DIR": str(tmp_path)})
    assert bad.exit_code != 0


@pytest.mark.parametrize("command", ["seed", "demo"])
def test_seed_and_demo_reach_the_port_the_platform_was_started_on(tmp_path: Path,
                                                                   command: str) -> None:
    """Both used to call port 8001 whatever PROFILES_PORT said."""
    seen: list[str] = []

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append(f"POST {self.path}")
            self.send_response(503)
            self.end_headers()

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = CliRunner().invoke(app, [command, "--network", "ports"], env={
            "MENTORSHIP_DATA_DIR": str(tmp_path), "PROFILES_PORT": str(server.server_port)})
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1 and "503" in result.output, result.output
    assert seen and seen[0] == "POST /networks/ports/institutions"


def test_cli_finds_the_running_platform_where_up_recorded_it(tmp_path: Path) -> None:
    env = {"MENTORSHIP_DATA_DIR": str(tmp_path)}
    lay = stack.Layout.from_env(env)
    me = ManagedProcess.attach("profiles", os.getpid(), lay.log("profiles"), None)
    lay.record(me, "http://127.0.0.1:18001")
    urls = service_urls(env)
    assert urls["profiles"] == "http://127.0.0.1:18001"  # the running one, as recorded
    assert urls["matching"] == "http://127.0.0.1:8002"  # not running: the default
    assert service_urls({**env, "PROFILES_PORT": "18101"})["profiles"] == "http://127.0.0.1:18101"


def _group_gone(pgid: int, within: float = 3) -> bool:
    deadline = time.monotonic() + within
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stop_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    # The shell and both children ignore SIGTERM (an ignored signal survives exec).
    proc = ManagedProcess.spawn(
        "stubborn", ["bash", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait"],
        tmp_path / "stubborn.log")
    time.sleep(0.3)
    started = time.monotonic()
    proc.stop(timeout=1)
    assert time.monotonic() - started < 5
    assert not proc.alive
    assert _group_gone(proc.pid), "processes of the group survived stop()"


def test_stop_is_quick_when_the_process_obeys_sigterm(tmp_path: Path) -> None:
    proc = ManagedProcess.spawn("sleeper", ["sleep", "300"], tmp_path / "sleeper.log")
    started = time.monotonic()
    proc.stop(timeout=10)
    assert time.monotonic() - started < 2
    assert proc.returncode == -signal.SIGTERM
    assert _group_gone(proc.pid)


def test_die_with_parent_outlives_the_starting_thread_but_not_the_process(
    tmp_path: Path,
) -> None:
    started: list[ManagedProcess] = []
    thread = threading.Thread(target=lambda: started.append(ManagedProcess.spawn(
        "sleeper", ["sleep", "300"], tmp_path / "s.log", die_with_parent=True)))
    thread.start()
    thread.join()
    time.sleep(0.3)
    try:
        assert started[0].alive, "server died with the short-lived thread that started it"
    finally:
        started[0].kill()

    # A parent killed with SIGKILL takes its die_with_parent servers along.
    script = ("import sys, time; from pathlib import Path; from ops.infra import ManagedProcess; "
              "p = ManagedProcess.spawn('s', ['sleep', '300'], Path(sys.argv[1]), "
              "die_with_parent=True); print(p.pid, flush=True); time.sleep(300)")
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "c.log")],
                              stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    assert group_alive(child_pid)
    parent.kill()
    parent.wait()
    assert _group_gone(child_pid), "server outlived its SIGKILLed parent"


def test_attached_process_can_be_stopped_by_a_later_caller(tmp_path: Path) -> None:
    lay = stack.Layout(tmp_path)
    lay.record(ManagedProcess.spawn("kafka", ["sleep", "300"], lay.log("kafka")), "x")
    attached, url = lay.recorded("kafka")
    assert attached is not None and attached.alive and url == "x"
    attached.stop(timeout=5)
    assert not attached.alive and _group_gone(attached.pid)


def test_status_reports_dead_and_reused_pids_as_not_running(tmp_path: Path) -> None:
    lay = stack.Layout(tmp_path)
    dead = ManagedProcess.spawn("profiles", ["true"], tmp_path / "true.log")
    dead.wait(5)
    lay.record(dead, "http://127.0.0.1:1")
    # A pid file naming a live process that started at another time: the pid was reused.
    reused = ManagedProcess("matching", os.getpid(), lay.log("matching"), start_ticks=1)
    lay.record(reused, "http://127.0.0.1:2")
    lay.pid_file("analytics").parent.mkdir(parents=True, exist_ok=True)
    lay.pid_file("analytics").write_text("not a pid\n")
    rows = {row.name: row for row in stack.status({"MENTORSHIP_DATA_DIR": str(tmp_path)})}
    assert (rows["profiles"].pid, rows["profiles"].alive) == (dead.pid, False)
    assert rows["profiles"].note == "stale pid file"
    assert (rows["matching"].pid, rows["matching"].alive) == (os.getpid(), False)
    assert rows["analytics"].alive is False and rows["analytics"].note == "not started"


def test_free_port_is_bindable_and_outside_the_ephemeral_range() -> None:
    port = free_port()
    assert not port_in_use(port)
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert port < low


def test_session_servers_answer(infra) -> None:
    wait_for_kafka(infra.kafka_bootstrap, timeout=5)
    wait_for_mongo(infra.mongodb_uri, timeout=5)
    assert infra.root.is_dir()


def test_tansu_answers(tansu_bootstrap: str) -> None:
    wait_for_kafka(tansu_bootstrap, timeout=5)


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while len(values) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            values += [msg.value for msg in batch.get(tp, [])]
        return values
    finally:
        await consumer.stop()


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


async def test_kafka_restart_keeps_port_and_data_and_wipe_loses_it(private_infra) -> None:
    topic = f"ops-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=private_infra.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    await _produce(private_infra.kafka_bootstrap, topic, [b"a", b"b"])

    private_infra.stop_kafka()  # SIGTERM: noida writes kafka.json
    assert not private_infra.kafka_alive and not port_in_use(private_infra.kafka_port)
    private_infra.start_kafka()
    assert await _read_all(private_infra.kafka_bootstrap, topic) == [b"a", b"b"]

    private_infra.kill_kafka()
    private_infra.start_kafka(wipe_log=True)
    assert topic not in await _topics(private_infra.kafka_bootstrap)


STAND_IN_SERVICE = '''
import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pymongo import MongoClient, WriteConcern

MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=5000).admin.command("ping")
assert os.path.isabs(os.environ["DATA_DIR"]) and os.environ["KAFKA_BOOTSTRAP_SERVERS"]
uris = os.path.join(os.environ["DATA_DIR"], "standin-uris")
os.makedirs(uris, exist_ok=True)
with open(os.path.join(uris, os.environ["HTTP_PORT"]), "w") as fh:
    fh.write(os.environ["MONGODB_URI"])

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path in ("/healthz", "/readyz") else 404)
        self.end_headers()
    def log_message(self, *args):
        pass

signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
HTTPServer(("127.0.0.1", int(os.environ["HTTP_PORT"])), Handler).serve_forever()
'''


def _stack_env(tmp_path: Path, module_source: str) -> dict[str, str]:
    (tmp_path / "standin").mkdir()
    (tmp_path / "standin" / "standin_service.py").write_text(module_source)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(
        MENTORSHIP_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=os.pathsep.join([str(tmp_path / "standin"), *sys.path]),
        KAFKA_PORT=str(free_port()), MONGODB_PORT=str(free_port()),
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port()),
        MENTORSHIP_START_TIMEOUT="60",
        **{f"{name.upper()}_PORT": str(free_port()) for name in stack.SERVICES},
        **{f"{name.upper()}_MONGODB_PORT": str(free_port()) for name in stores.OWN_STORE},
    )
    return env


STANDINS = {name: "standin_service" for name in stack.SERVICES}


def test_up_is_idempotent_and_down_leaves_nothing_running(tmp_path: Path) -> None:
    env = _stack_env(tmp_path, STAND_IN_SERVICE)
    try:
        urls = stack.up(env, modules=STANDINS, echo=lambda _: None)
        assert set(urls) == set(stack.SERVICES)
        first = {row.name: row for row in stack.status(env)}
        assert all(row.alive for row in first.values()), first
        mongo_uri = first["mongo"].url
        # A store per service that keeps data (a new data dir), each service told its own.
        told = {service: (tmp_path / "data" / "standin-uris" / env[f"{service.upper()}_PORT"])
                .read_text() for service in stack.SERVICES}
        assert told["profiles"] == told["web"] == mongo_uri
        for service in stores.OWN_STORE:
            assert first[f"mongo-{service}"].alive and told[service] == first[f"mongo-{service}"].url
            assert f":{env[f'{service.upper()}_MONGODB_PORT']}/" in told[service]
        assert len({*told.values()}) == 1 + len(stores.OWN_STORE)
        with MongoClient(mongo_uri) as client:
            client.ops_test.docs.insert_one({"_id": "survives-down"})
        # The mail catcher keeps what the services send under the data dir.
        with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as smtp:
            smtp.sendmail("no-reply@mentorship.local", ["ada@example.org"],
                          "Subject: Welcome\r\n\r\nHello Ada\r\n")
        kept = list(mailbox.Maildir(tmp_path / "data" / "mail", create=False))
        assert [m["Subject"] for m in kept] == ["Welcome"]

        stack.up(env, modules=STANDINS, echo=lambda _: None)
        second = {row.name: row.pid for row in stack.status(env)}
        assert second == {name: row.pid for name, row in first.items()}, "up started duplicates"
    finally:
        stack.down(env, echo=lambda _: None)

    for row in first.values():
        assert _group_gone(row.pid), f"{row.name} still running after down"
    assert not any(row.alive or row.pid for row in stack.status(env))
    assert not list((tmp_path / "data" / "run").glob("*.pid"))

    try:
        stack.up(env, modules=STANDINS, echo=lambda _: None)
        with MongoClient(mongo_uri) as client:
            assert client.ops_test.docs.find_one({"_id": "survives-down"})
    finally:
        stack.down(env, echo=lambda _: None)


def test_a_new_data_dir_gets_a_store_per_service_and_an_older_one_keeps_its_single_store(
        tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    assert stores.layout(new) == {"profiles": "mongo", "web": "mongo", "matching": "mongo-matching",
                                  "notifications": "mongo-notifications",
                                  "analytics": "mongo-analytics"}
    (old / "mongo").mkdir(parents=True)  # started before: every service's database is there
    assert set(stores.layout(old).values()) == {"mongo"}
    assert stores.store_of(old, "analytics") == "mongo" and stores.extra_stores(stores.layout(old)) == []
    (new / "mongo").mkdir()  # the choice is kept once made, whatever the dir holds since
    assert stores.store_of(new, "analytics") == "mongo-analytics"
    assert stores.extra_stores(stores.layout(new)) == [
        "mongo-analytics", "mongo-matching", "mongo-notifications"]
    assert stores.store_port({"MONGODB_PORT": "30000"}, "mongo-notifications") == 30002
    assert stores.store_port({"MATCHING_MONGODB_PORT": "31000"}, "mongo-matching") == 31000


def test_up_reports_a_crashing_service_with_its_log(tmp_path: Path) -> None:
    env = _stack_env(tmp_path, "import sys\nprint('boom: config is broken')\nsys.exit(3)\n")
    try:
        with pytest.raises(stack.StackError, match="(?s)exited.*boom: config is broken"):
            stack.up(env, modules=STANDINS, echo=lambda _: None)
    finally:
        stack.down(env, echo=lambda _: None)



def test_replicas_run_side_by_side_and_status_and_down_see_each(tmp_path: Path) -> None:
    env = _stack_env(tmp_path, STAND_IN_SERVICE)
    env.update({f"{name.upper()}_2_PORT": str(free_port()) for name in stack.SERVICES})
    try:
        urls = stack.up(env, modules=STANDINS, echo=lambda _: None, replicas=2)
        assert set(urls) == {*stack.SERVICES, *(f"{name}-2" for name in stack.SERVICES)}
        assert len(set(urls.values())) == 2 * len(stack.SERVICES), urls
        rows = {row.name: row for row in stack.status(env)}
        assert all(rows[name].alive for name in urls), rows
        assert urls["profiles-2"] == f"http://127.0.0.1:{env['PROFILES_2_PORT']}"
        # Fewer replicas asked for later: up leaves the running ones alone.
        stack.up(env, modules=STANDINS, echo=lambda _: None)
        assert {row.name: row.pid for row in stack.status(env)} == {
            name: row.pid for name, row in rows.items()}
    finally:
        stack.down(env, echo=lambda _: None)
    assert not list((tmp_path / "data" / "run").glob("*.pid"))
    for name in urls:
        assert _group_gone(rows[name].pid), f"{name} still running after down"
    with pytest.raises(stack.StackError, match="REPLICAS"):
        stack.up({**env, "REPLICAS": "9"}, modules=STANDINS, echo=lambda _: None)
