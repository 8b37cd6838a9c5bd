"""The local platform supervisor behind `mentorship up/down/status`.

Everything lives under one data dir (default `<repo>/.data`, env `MENTORSHIP_DATA_DIR`):
`run/<name>.pid` (+ `run/<name>.json` with the start time and URL, so a reused pid is not
mistaken for ours), `logs/<name>.log`, broker state in `kafka/`, database files in `mongo/`
and `mongo-<service>/` (a store per service, `ops.stores`), the local JWT key pair in `jwt/`.
Each CLI call is a fresh process, so the pid files are the only memory of what runs; the
servers run in their own sessions and outlive the CLI.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from ops import stores
from ops.infra import (
    ManagedProcess,
    embedded_mongo_uri,
    port_in_use,
    start_mail_catcher,
    start_noida,
    start_secantus,
    wait_for_kafka,
    wait_for_mongo,
    wait_for_smtp,
)
from shared.auth import ensure_local_keypair
from shared.settings import DEFAULT_PORTS

SERVICES = ("profiles", "matching", "notifications", "analytics", "web")
LOCAL_HOSTS = ("", "127.0.0.1", "localhost")
DEFAULT_SMTP_PORT = 1025
Echo = Callable[[str], None]
MAX_REPLICAS = 6  # a topic's partitions (KAFKA_TOPIC_PARTITIONS, 6): more would sit idle


class StackError(RuntimeError):
    """A component did not start or become ready; the message says which and why."""


def repo_root() -> Path:
    """The source checkout this package runs from (editable install), else the cwd."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


@dataclass(frozen=True)
class Layout:
    data: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Layout:
        environ = os.environ if environ is None else environ
        raw = environ.get("MENTORSHIP_DATA_DIR")
        return cls((Path(raw) if raw else repo_root() / ".data").resolve())

    @property
    def run(self) -> Path:
        return self.data / "run"

    def log(self, name: str) -> Path:
        return self.data / "logs" / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def _meta_file(self, name: str) -> Path:
        return self.run / f"{name}.json"

    def record(self, proc: ManagedProcess, url: str) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        meta = {"pid": proc.pid, "start_ticks": proc.start_ticks, "url": url,
                "log": str(proc.log_path)}
        self._meta_file(proc.name).write_text(json.dumps(meta))
        self.pid_file(proc.name).write_text(f"{proc.pid}\n")

    def recorded(self, name: str) -> tuple[ManagedProcess | None, str | None]:
        """The process a pid file names (None when there is no readable pid file) and its URL."""
        try:
            pid = int(self.pid_file(name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None, None
        try:
            meta = json.loads(self._meta_file(name).read_text())
        except (OSError, ValueError):
            meta = {}
        ticks = meta.get("start_ticks") if meta.get("pid") == pid else None
        return ManagedProcess.attach(name, pid, self.log(name), ticks), meta.get("url")

    def store_of(self, service: str) -> str:
        """The name of the store a service of this data dir uses (`ops.stores`)."""
        return stores.store_of(self.data, service)

    def forget(self, name: str) -> None:
        self.pid_file(name).unlink(missing_ok=True)
        self._meta_file(name).unlink(missing_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise concurrent up/down calls so they cannot start duplicates."""
        self.run.mkdir(parents=True, exist_ok=True)
        with open(self.run / "stack.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield


def start_service(
    name: str,
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    *,
    module: str | None = None,
    die_with_parent: bool = False,
) -> ManagedProcess:
    """Run `python -m services.<name>` in its own session; env is its complete environment
    (`<NAME>_HTTP_WORKERS` becomes the service's HTTP_WORKERS)."""
    workers = env.get(f"{name.upper()}_HTTP_WORKERS")
    env = {**env, "HTTP_PORT": str(port), "PYTHONUNBUFFERED": "1",
           **({"HTTP_WORKERS": workers} if workers else {})}
    cmd = [sys.executable, "-m", module or f"services.{name}"]
    return ManagedProcess.spawn(
        name, cmd, log_path, env=env, cwd=repo_root(), die_with_parent=die_with_parent
    )


def instance_name(service: str, number: int) -> str:
    """`profiles` for the first instance (its files keep their names), `profiles-2`, ..."""
    return service if number == 1 else f"{service}-{number}"


def instance_port(env: Mapping[str, str], service: str, number: int) -> int:
    """`<SERVICE>_PORT` (default: the service's port) for the first instance, then 10 more per
    instance (8001, 8011, ...) unless `<SERVICE>_<N>_PORT` says otherwise."""
    base = int(env.get(f"{service.upper()}_PORT", DEFAULT_PORTS[service]))
    if number == 1:
        return base
    return int(env.get(f"{service.upper()}_{number}_PORT", base + 10 * (number - 1)))


def replica_count(env: Mapping[str, str], replicas: int | None = None) -> int:
    count = replicas if replicas is not None else env.get("REPLICAS", "1")
    try:
        count = int(count)
    except ValueError:
        raise StackError(f"REPLICAS must be a number from 1 to {MAX_REPLICAS}, not {count!r}") from None
    if not 1 <= count <= MAX_REPLICAS:
        raise StackError(f"REPLICAS must be from 1 to {MAX_REPLICAS} (each topic has "
                         f"{MAX_REPLICAS} partitions to share), not {count}")
    return count


def _instances(lay: Layout, service: str) -> list[str]:
    """Every instance of a service with a pid file, first instance first."""
    numbered = []
    for pid_file in lay.run.glob(f"{service}-*.pid"):
        suffix = pid_file.stem.removeprefix(f"{service}-")
        if suffix.isdigit():
            numbered.append(int(suffix))
    return [service, *(instance_name(service, n) for n in sorted(numbered))]


def wait_ready(url: str, timeout: float = 60, *, proc: ManagedProcess | None = None) -> None:
    """Poll `<url>/readyz` until 200; StackError with the log tail when it dies or times out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2) as client:
        while True:
            if proc is not None and not proc.alive:
                raise StackError(_with_tail(f"{proc.name} exited (code {proc.returncode}) "
                                            f"before {url}/readyz answered", proc))
            try:
                resp = client.get(f"{url}/readyz")
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                msg = f"{url}/readyz not 200 after {timeout:.0f}s (last: {last})"
                raise StackError(_with_tail(msg, proc) if proc else msg)
            time.sleep(0.25)


def _with_tail(msg: str, proc: ManagedProcess) -> str:
    return f"{msg}\n--- last lines of {proc.log_path} ---\n{proc.log_tail()}"


def _running(lay: Layout, name: str) -> tuple[ManagedProcess | None, str | None]:
    proc, url = lay.recorded(name)
    if proc is not None and proc.alive and url:
        return proc, url
    if proc is not None:
        lay.forget(name)  # stale pid file of a process that died
    return None, None


# name -> (external-server variable, port variable, default port, start, wait, address)
_INFRA: dict[str, tuple[str, str, int, Callable[..., ManagedProcess], Callable[..., None],
                        Callable[[int], str]]] = {
    "mongo": ("MONGODB_URI", "MONGODB_PORT", stores.DEFAULT_PORT, start_secantus,
              wait_for_mongo, embedded_mongo_uri),
    "kafka": ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_PORT", 9092, start_noida, wait_for_kafka,
              lambda port: f"127.0.0.1:{port}"),
}


def _ensure_server(
    lay: Layout, name: str, port: int, variables: tuple[str, str],
    start: Callable[..., ManagedProcess], wait: Callable[..., None], url: str, timeout: float,
    echo: Echo,
) -> str:
    """Start one server unless it runs already, and wait until it answers; its address."""
    external_var, port_var = variables
    proc, running_url = _running(lay, name)
    if proc is not None:
        echo(f"{name:<14} already running (pid {proc.pid})")
        url = running_url or url
    else:
        try:
            proc = start(lay.data / name, port, lay.log(name))
        except RuntimeError as exc:
            raise StackError(f"{exc}; set {port_var} to another port, or {external_var} "
                             "to use the server already there") from exc
        lay.record(proc, url)
        echo(f"{name:<14} started (pid {proc.pid}, log {proc.log_path})")
    try:
        wait(url, timeout, proc=proc)
    except (TimeoutError, RuntimeError) as exc:
        raise StackError(str(exc)) from exc
    return url


def _ensure_infra(
    lay: Layout, env: Mapping[str, str], timeout: float, echo: Echo
) -> dict[str, str]:
    """Start SecantusDB / noida-db unless an external server is configured; name -> address."""
    urls = {}
    for name, (var, port_var, default_port, start, wait, address) in _INFRA.items():
        if env.get(var):
            urls[name] = env[var]
            echo(f"{name:<14} external {env[var]}")
            continue
        port = int(env.get(port_var, default_port))
        urls[name] = _ensure_server(lay, name, port, (var, port_var), start, wait,
                                    address(port), timeout, echo)
    return urls


def _ensure_stores(
    lay: Layout, env: Mapping[str, str], chosen: Mapping[str, str] | None, shared_uri: str,
    timeout: float, echo: Echo,
) -> dict[str, str]:
    """Service -> the URI of its store: the shared one for all without a layout (an external
    MONGODB_URI), else the embedded stores of this data dir's layout (`ops.stores`)."""
    if chosen is None:
        return {service: shared_uri for service in SERVICES}
    uris = {stores.SHARED: shared_uri}
    for name in stores.extra_stores(chosen):
        service = name.removeprefix(f"{stores.SHARED}-")
        port = stores.store_port(env, name)
        uris[name] = _ensure_server(
            lay, name, port, ("MONGODB_URI", f"{service.upper()}_MONGODB_PORT"),
            functools.partial(start_secantus, name=name), wait_for_mongo,
            embedded_mongo_uri(port), timeout, echo)
    return {service: uris[chosen.get(service, stores.SHARED)] for service in SERVICES}


def _ensure_mail(lay: Layout, env: Mapping[str, str], timeout: float, echo: Echo) -> str:
    """A local mail catcher on SMTP_PORT keeping messages in <data>/mail (a Maildir), unless
    SMTP_HOST names another machine or something already listens on the port; host:port."""
    host = env.get("SMTP_HOST", "")
    port = int(env.get("SMTP_PORT") or DEFAULT_SMTP_PORT)
    if host not in LOCAL_HOSTS:
        echo(f"{'mail':<14} external {host}:{port}")
        return f"{host}:{port}"
    address = f"127.0.0.1:{port}"
    proc, url = _running(lay, "mail")
    if proc is not None:
        echo(f"{'mail':<14} already running (pid {proc.pid})")
        address = url
    elif port_in_use(port):
        echo(f"{'mail':<14} using the SMTP server already on port {port} (set SMTP_PORT "
             "for a mail catcher of this platform's own)")
    else:
        proc = start_mail_catcher(lay.data / "mail", port, lay.log("mail"))
        lay.record(proc, address)
        echo(f"{'mail':<14} started (pid {proc.pid}, messages in {lay.data / 'mail'})")
    try:
        wait_for_smtp(address, timeout, proc=proc)
    except (TimeoutError, RuntimeError) as exc:
        raise StackError(str(exc)) from exc
    return address


def up(
    environ: Mapping[str, str] | None = None,
    *,
    modules: Mapping[str, str] | None = None,
    echo: Echo = print,
    replicas: int | None = None,
) -> dict[str, str]:
    """Start whatever is not running yet, wait until every /readyz is 200; instance -> URL.

    `replicas` (default: the REPLICAS variable, else 1) instances of each service run side by
    side on their own ports (`instance_port`), each with its own consumer-group member id; they
    share the service's database, and its outbox lease lets one of them publish at a time.
    `modules` replaces `services.<name>` (tests run stand-in services with it).
    """
    env = dict(os.environ if environ is None else environ)
    lay = Layout.from_env(env)
    timeout = float(env.get("MENTORSHIP_START_TIMEOUT", "120"))
    count = replica_count(env, replicas)
    with lay.locked():
        ensure_local_keypair(lay.data)
        # Decided before the shared store first creates its files (see ops.stores).
        chosen = None if env.get("MONGODB_URI") else stores.layout(lay.data)
        infra = _ensure_infra(lay, env, timeout, echo)
        mongo_uri, kafka = infra["mongo"], infra["kafka"]
        store_of = _ensure_stores(lay, env, chosen, mongo_uri, timeout, echo)
        smtp_host, _, smtp_port = _ensure_mail(lay, env, timeout, echo).rpartition(":")
        service_env = {**env, "KAFKA_BOOTSTRAP_SERVERS": kafka,
                       "DATA_DIR": str(lay.data), "SMTP_HOST": smtp_host, "SMTP_PORT": smtp_port,
                       "LOCAL_SIGN_IN": env.get("LOCAL_SIGN_IN", "true")}
        started: dict[str, tuple[ManagedProcess, str]] = {}
        for service in SERVICES:
            for number in range(1, count + 1):
                name = instance_name(service, number)
                proc, url = _running(lay, name)
                if proc is not None:
                    echo(f"{name:<14} already running (pid {proc.pid})")
                else:
                    port = instance_port(env, service, number)
                    if port_in_use(port):
                        var = f"{service.upper()}_PORT" if number == 1 else (
                            f"{service.upper()}_{number}_PORT")
                        raise StackError(f"cannot start {name}: port {port} is already in use "
                                         f"(set {var} to another port)")
                    url = f"http://127.0.0.1:{port}"
                    # Static membership: each instance is its own member of the group.
                    instance_env = {**service_env, "MONGODB_URI": store_of[service],
                                    "KAFKA_GROUP_INSTANCE_ID": f"{service}-{number}"}
                    proc = start_service(name, port, instance_env, lay.log(name),
                                         module=(modules or {}).get(service, f"services.{service}"))
                    lay.record(proc, url)
                    echo(f"{name:<14} started (pid {proc.pid}, log {proc.log_path})")
                started[name] = (proc, url)
        for proc, url in started.values():
            wait_ready(url, timeout, proc=proc)
    urls = {name: url for name, (_, url) in started.items()}
    echo("ready:")
    for name, url in urls.items():
        echo(f"  {name:<14} {url}")
    echo(f"  {'kafka':<14} {kafka}")
    for uri in dict.fromkeys(store_of.values()):
        users = ", ".join(s for s in SERVICES if store_of[s] == uri)
        echo(f"  {'mongodb':<14} {uri} ({users})")
    echo(f"  {'mail (SMTP)':<14} {smtp_host}:{smtp_port}")
    return urls


def _store_names(lay: Layout) -> list[str]:
    """The shared store, then every other store this data dir has run (pid files included)."""
    others = {p.stem for p in lay.run.glob(f"{stores.SHARED}-*.pid")}
    if (lay.data / stores.LAYOUT_FILE).exists():
        others.update(stores.extra_stores(stores.layout(lay.data)))
    return [stores.SHARED, *sorted(others)]


def down(environ: Mapping[str, str] | None = None, *, echo: Echo = print,
         timeout: float = 10) -> None:
    """Stop services first (in parallel), then broker and database; data stays."""
    lay = Layout.from_env(environ)
    with lay.locked():
        instances = tuple(name for service in SERVICES for name in _instances(lay, service))
        for group in (instances, ("kafka", *_store_names(lay), "mail")):
            procs = []
            for name in group:
                proc, _ = lay.recorded(name)
                if proc is not None and proc.alive:
                    echo(f"stopping {name} (pid {proc.pid})")
                    procs.append(proc)
                elif proc is not None:
                    lay.forget(name)
            with ThreadPoolExecutor(max_workers=len(group)) as pool:
                list(pool.map(lambda p: p.stop(timeout), procs))
            for proc in procs:
                lay.forget(proc.name)
    echo(f"stopped; data kept in {lay.data}")


@dataclass
class ComponentStatus:
    name: str
    pid: int | None
    alive: bool
    url: str | None
    note: str = ""


def status(environ: Mapping[str, str] | None = None) -> list[ComponentStatus]:
    """One row per component, from the pid files; a dead or reused pid counts as not running."""
    env = os.environ if environ is None else environ
    lay = Layout.from_env(env)
    rows = []
    instances = [name for service in SERVICES for name in _instances(lay, service)]
    for name in ("mongo", *_store_names(lay)[1:], "kafka", "mail", *instances):
        proc, url = lay.recorded(name)
        if proc is not None:
            note = "" if proc.alive else "stale pid file"
            rows.append(ComponentStatus(name, proc.pid, proc.alive, url, note))
            continue
        var = {"mongo": "MONGODB_URI", "kafka": "KAFKA_BOOTSTRAP_SERVERS",
               "mail": "SMTP_HOST"}.get(name)
        if var and env.get(var):
            rows.append(ComponentStatus(name, None, False, env[var], "external"))
        else:
            rows.append(ComponentStatus(name, None, False, None, "not started"))
    return rows
