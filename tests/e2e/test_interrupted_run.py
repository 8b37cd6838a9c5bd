"""An interrupted test run leaves no service running.

The tests' services used to be started without die_with_parent: a `make test` stopped by
SIGTERM or SIGKILL left the four services of the session platform running, bound to their
ports, until someone killed them by hand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ops.infra import group_alive

_CHILD = """
import json, sys, time
from pathlib import Path
from types import SimpleNamespace
from tests.e2e.conftest import Platform
servers = SimpleNamespace(kafka_bootstrap=sys.argv[1], mongodb_uri=sys.argv[2])
keys = SimpleNamespace(public_path=Path(sys.argv[3]), private_path=Path(sys.argv[5]))
platform = Platform(servers, keys, Path(sys.argv[4]), database_prefix="interrupted")
platform.start("analytics")
print(json.dumps({n: p.pid for n, p in platform.procs.items()}), flush=True)
time.sleep(300)
"""


def test_a_killed_test_run_takes_its_services_along(infra, jwt_keys, tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, infra.kafka_bootstrap, infra.mongodb_uri,
         str(jwt_keys.public_path), str(tmp_path / "platform"), str(jwt_keys.private_path)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        line = child.stdout.readline()
        assert line, "the child platform did not start"
        pids = json.loads(line)
        assert all(group_alive(pid) for pid in pids.values())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    deadline = time.monotonic() + 10
    while any(group_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [name for name, pid in pids.items() if group_alive(pid)]
    for name in survivors:
        os.killpg(pids[name], signal.SIGKILL)
    assert not survivors, f"services outlived the killed test run: {survivors}"
