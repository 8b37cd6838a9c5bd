"""The dependency audit's verdict (ops/dependency_audit.py): a known vulnerability fails the
build unless accepted with a reason; an unreachable PyPI fails at once, clearly."""

from __future__ import annotations

import pytest

from ops import dependency_audit as audit

REPORT = {"dependencies": [
    {"name": "jinja2", "version": "2.10", "vulns": [
        {"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "aliases": ["CVE-2019-10906"]}]},
    {"name": "fastapi", "version": "0.165.0", "vulns": []},
    {"name": "mirror-only", "skip_reason": "Dependency not found on PyPI"},
]}


def test_a_known_vulnerability_fails_the_build():
    verdict = audit.judge(REPORT, {})
    assert verdict.vulnerable == ["jinja2 2.10: PYSEC-2019-217 (fixed in 2.10.1)"]
    assert verdict.failed(strict=False)
    assert (verdict.audited, verdict.not_audited) == (2, ["mirror-only"])


def test_an_advisory_accepted_with_a_reason_does_not():
    ignores = audit.read_ignores(["# comment", "CVE-2019-10906  sandbox not used for user input"])
    verdict = audit.judge(REPORT, ignores)
    assert verdict.vulnerable == [] and not verdict.failed(strict=False)
    assert "sandbox not used" in verdict.ignored[0]
    assert verdict.failed(strict=True)  # strict: what could not be audited fails too


def test_an_allow_list_entry_needs_a_reason():
    with pytest.raises(audit.AuditError, match="has no reason"):
        audit.read_ignores(["PYSEC-2019-217"])


def test_an_unreachable_pypi_fails_at_once_with_a_message(monkeypatch, capsys):
    monkeypatch.setattr(audit, "PYPI", "http://127.0.0.1:9/simple/pip/")
    assert audit.main() == 2
    assert "PyPI is not reachable" in capsys.readouterr().err
