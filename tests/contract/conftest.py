"""Broker parametrisation for the contract suites.

Every test that takes the ``broker`` fixture runs once per Kafka-protocol broker: ``noida``
(noida-db, the default embedded broker, from the root ``infra`` fixture) and ``tansu`` (started
lazily by the root ``tansu_bootstrap`` fixture, so runs that deselect it never start it).

A behaviour a broker is known not to have stays in the suite: mark the test with
``@pytest.mark.broker_gap("tansu", reason="...", raises=SomeError)`` and that broker's
parameter becomes ``xfail(strict=True)``, so the day the broker gains the behaviour the suite
says so. Tests may record measured numbers with ``record_property("measured_<what>_s", value)``;
they are listed at the end of the run (docs/broker-contract.md quotes them).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

BROKERS = ("noida", "tansu")


@dataclass(frozen=True)
class Broker:
    name: str
    bootstrap: str


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "broker_gap(broker, reason, raises=None): known gap of one broker; its parameter of the "
        "test becomes xfail(strict=True)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker" not in metafunc.fixturenames:
        return
    gaps: dict[str, pytest.MarkDecorator] = {}
    for mark in metafunc.definition.iter_markers("broker_gap"):
        (name,) = mark.args
        if name not in BROKERS:
            raise pytest.UsageError(f"broker_gap names unknown broker {name!r}")
        gaps[name] = pytest.mark.xfail(
            strict=True,
            reason=f"known gap on {name}: {mark.kwargs['reason']}",
            raises=mark.kwargs.get("raises"),
        )
    metafunc.parametrize(
        "broker",
        [
            pytest.param(name, id=name, marks=[gaps[name]] if name in gaps else [])
            for name in BROKERS
        ],
        indirect=True,
    )


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Broker:
    if request.param == "noida":
        return Broker("noida", request.getfixturevalue("infra").kafka_bootstrap)
    return Broker("tansu", request.getfixturevalue("tansu_bootstrap"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    lines = []
    for outcome in ("passed", "xfailed", "failed", "xpassed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call":
                continue
            for key, value in getattr(report, "user_properties", []):
                if key.startswith("measured_"):
                    lines.append(f"{report.nodeid} [{outcome}] {key[len('measured_') :]} = {value}")
    if lines:
        terminalreporter.section("contract measurements")
        for line in lines:
            terminalreporter.write_line(line)
