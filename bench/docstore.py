"""Document-store write cost: one insert, one update, concurrent updates, on the embedded
SecantusDB as the platform ran it before (plain server, `journal=true` in the URI: an fsync
per commit) and as it runs it now (`ops.infra.start_secantus`: each commit written to the OS,
no fsync; the URI without `journal=true`).

Each mode gets a fresh server on a free port; each measure runs `--runs` times (min / median /
max of the mean milliseconds per operation), with the load average printed, since the machine
is shared. Run: `.venv/bin/python bench/docstore.py [--ops 500] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ops.infra import (
    ManagedProcess,
    embedded_mongo_uri,
    free_port,
    start_secantus,
    wait_for_mongo,
)
from shared.db import create_client

CONCURRENCY = 16


def start_plain(root: Path, port: int) -> ManagedProcess:
    """SecantusDB as it starts on its own: WiredTiger's default commit setting."""
    env = {k: v for k, v in os.environ.items() if k != "WIREDTIGER_CONFIG"}
    cmd = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
           "--storage-path", str(root)]
    root.mkdir(parents=True, exist_ok=True)
    return ManagedProcess.spawn("mongo", cmd, root / "mongo.log", env=env, cwd=root,
                                die_with_parent=True)


async def measure(uri: str, ops: int, run: int) -> dict[str, float]:
    client = create_client(uri)
    docs = client.bench[f"docs{run}"]
    try:
        started = time.perf_counter()
        for n in range(ops):
            await docs.insert_one({"_id": n, "name": f"person {n}", "stage": "M2", "n": 0})
        insert = (time.perf_counter() - started) / ops
        started = time.perf_counter()
        for n in range(ops):
            await docs.update_one({"_id": n}, {"$inc": {"n": 1}, "$set": {"stage": "M3"}})
        update = (time.perf_counter() - started) / ops

        async def updater(first: int) -> None:
            for n in range(first, ops, CONCURRENCY):
                await docs.update_one({"_id": n}, {"$inc": {"n": 1}})

        started = time.perf_counter()
        await asyncio.gather(*(updater(k) for k in range(CONCURRENCY)))
        concurrent = (time.perf_counter() - started) / ops
    finally:
        await client.close()
    return {"insert": insert * 1000, "update": update * 1000, "concurrent update": concurrent * 1000}


def summary(values: list[float]) -> str:
    return f"{min(values):6.2f} / {statistics.median(values):6.2f} / {max(values):6.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    modes = {
        "before: plain server, journal=true": (start_plain, "&journal=true"),
        "now: crash-safe commits, no journal=true": (
            lambda root, port: start_secantus(root, port, root / "mongo.log",
                                              die_with_parent=True), ""),
    }
    print(f"{os.cpu_count()} cores; {args.ops} operations per measure, "
          f"{CONCURRENCY} concurrent updaters; ms per operation, min / median / max of "
          f"{args.runs} runs")
    for label, (start, extra) in modes.items():
        root = Path(tempfile.mkdtemp(prefix="bench-docstore-"))
        port = free_port()
        proc = start(root / "mongo", port)
        uri = embedded_mongo_uri(port) + extra
        try:
            wait_for_mongo(uri, 60, proc=proc)
            results: dict[str, list[float]] = {}
            loads = []
            for run in range(args.runs):
                loads.append(os.getloadavg()[0])
                for name, value in (await measure(uri, args.ops, run)).items():
                    results.setdefault(name, []).append(value)
            print(f"{label} (load average {min(loads):.1f}-{max(loads):.1f})")
            for name, values in results.items():
                print(f"  {name:<18} {summary(values)} ms")
        finally:
            proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
