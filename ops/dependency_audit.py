"""`make test`'s dependency audit: pip-audit over both lock files.

A dependency with a known vulnerability fails the build, unless `.pip-audit-ignore` lists the
advisory with the reason it does not apply (one `ID  reason` per line; `#` starts a comment;
an entry without a reason is itself an error, so nobody silences an advisory in passing).

pip-audit asks PyPI's JSON API for each pinned version's advisories. When PyPI cannot be
reached at all the audit fails at once with a message saying so, rather than hanging or
passing unaudited; every call is bounded in time. A dependency PyPI holds no advisory data for
(a mirror that serves packages but not their JSON pages) is listed as not audited, and fails
the build only with `PIP_AUDIT_STRICT=1`.

    python -m ops.dependency_audit
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LOCK_FILES = ("requirements.lock", "requirements-test.lock")
IGNORE_FILE = Path(".pip-audit-ignore")
PYPI = "https://pypi.org/simple/pip/"
REACH_TIMEOUT = 10
AUDIT_TIMEOUT = 600


class AuditError(Exception):
    """The audit could not be run or read; the message says why."""


def read_ignores(lines: Iterable[str]) -> dict[str, str]:
    """Advisory id -> the reason it is accepted."""
    ignores: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        advisory, _, reason = line.partition(" ")
        if not reason.strip():
            raise AuditError(
                f"{IGNORE_FILE}:{number}: {advisory} has no reason; write why this advisory "
                "does not apply to the platform after its id."
            )
        ignores[advisory] = reason.strip()
    return ignores


@dataclass
class Verdict:
    vulnerable: list[str] = field(default_factory=list)  # "name version: ID (fix: ...)"
    ignored: list[str] = field(default_factory=list)
    not_audited: list[str] = field(default_factory=list)
    audited: int = 0

    def failed(self, strict: bool) -> bool:
        return bool(self.vulnerable) or (strict and bool(self.not_audited))


def judge(report: dict, ignores: dict[str, str]) -> Verdict:
    """What pip-audit's JSON report means for the build."""
    verdict = Verdict()
    for dep in report.get("dependencies", []):
        name = f"{dep.get('name')} {dep.get('version', '')}".strip()
        if "skip_reason" in dep:
            verdict.not_audited.append(name)
            continue
        verdict.audited += 1
        for vuln in dep.get("vulns", []):
            ids = [vuln.get("id", "?"), *vuln.get("aliases", [])]
            accepted = next((i for i in ids if i in ignores), None)
            line = f"{name}: {vuln.get('id')} (fixed in {', '.join(vuln.get('fix_versions') or []) or 'no release yet'})"
            if accepted:
                verdict.ignored.append(f"{line}, accepted: {ignores[accepted]}")
            else:
                verdict.vulnerable.append(line)
    return verdict


def _reachable() -> None:
    try:
        urllib.request.urlopen(PYPI, timeout=REACH_TIMEOUT).close()
    except (urllib.error.URLError, OSError) as exc:
        raise AuditError(
            f"PyPI is not reachable ({exc}); the dependency audit needs PyPI's advisory data. "
            "Connect to the network (or a PyPI mirror) and run `make test` again."
        ) from exc


def run(root: Path = Path(".")) -> dict:
    _reachable()
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes",
               "--progress-spinner", "off", "--timeout", "15", "-f", "json"]
    for lock in LOCK_FILES:
        command += ["-r", str(root / lock)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=AUDIT_TIMEOUT,
                              cwd=root)
    except subprocess.TimeoutExpired as exc:
        raise AuditError(f"pip-audit did not finish within {AUDIT_TIMEOUT} s.") from exc
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AuditError(f"pip-audit failed: {done.stderr.strip()[-2000:]}") from exc


def main() -> int:
    strict = os.environ.get("PIP_AUDIT_STRICT") == "1"
    try:
        ignores = read_ignores(IGNORE_FILE.read_text().splitlines() if IGNORE_FILE.exists() else [])
        verdict = judge(run(), ignores)
    except AuditError as exc:
        print(f"dependency audit FAILED: {exc}", file=sys.stderr)
        return 2
    for line in verdict.ignored:
        print(f"dependency audit: accepted {line}")
    if verdict.not_audited:
        print(f"dependency audit: {len(verdict.not_audited)} dependencies could not be audited "
              "(PyPI has no advisory data for their versions here): "
              + ", ".join(verdict.not_audited[:10]) + ("..." if len(verdict.not_audited) > 10 else ""))
    if verdict.vulnerable:
        print("dependency audit FAILED: known vulnerabilities (upgrade, or list the advisory "
              f"with a reason in {IGNORE_FILE}):", file=sys.stderr)
        for line in verdict.vulnerable:
            print(f"  {line}", file=sys.stderr)
    if verdict.failed(strict):
        return 1
    print(f"dependency audit: {verdict.audited} dependencies audited, no known vulnerability.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
