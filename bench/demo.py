"""Demo timing: `mentorship demo` (300 people, six months) from the first request to the last,
on the platform as `mentorship up` runs it (started here on free ports, see `running.py`).

Each run plays a network of its own (`demo-1`, `demo-2`, ...) on the same platform and prints
the seed's time, every program's and the total, with the load average; then min / median /
max over the runs. `PYTHONPATH=<checkout of before>` times that checkout's demo and services.
Run: `.venv/bin/python bench/demo.py [--runs 3] [--size 300] [--months 6]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time

from running import cpu_seconds, cpu_spent, describe, start_platform

from ops.demo import demo_async


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE for the services (repeatable)")
    args = parser.parse_args()
    env_extra = dict(item.split("=", 1) for item in args.env)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {describe(env_extra)}")
    plat = start_platform(env_extra)
    totals = []
    try:
        for run in range(1, args.runs + 1):
            load = os.getloadavg()[0]
            cpu = cpu_seconds(plat)
            started = time.perf_counter()

            def echo(line: str, started: float = started) -> None:
                print(f"  [{time.perf_counter() - started:6.1f} s] {line}", flush=True)

            result = await demo_async(plat.urls, private_key_pem=plat.private_key,
                                      network_id=f"demo-{run}", months=args.months,
                                      size=args.size, echo=echo)
            total = time.perf_counter() - started
            totals.append(total)
            print(f"run {run}: {total:.1f} s (load average {load:.1f} at the start, "
                  f"{os.getloadavg()[0]:.1f} at the end); the platform used "
                  f"{cpu_spent(cpu, cpu_seconds(plat))}")
            print("  " + result.summary().replace("\n", "\n  "))
    finally:
        plat.stop()
    print(f"\ndemo ({args.size} people, {args.months} months), min / median / max over "
          f"{args.runs} runs: {min(totals):.1f} / {statistics.median(totals):.1f} / "
          f"{max(totals):.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
