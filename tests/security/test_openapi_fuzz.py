"""Every operation of every service's OpenAPI, fed generated requests (schemathesis): never a
server error.

A few examples per operation keep it bounded (and deterministic, so a failure reproduces);
the path's network is the token's own, so requests get past tenancy into the handlers instead
of stopping at 403. Runs on the session's platform, in a network of its own.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.e2e.conftest import BACKENDS as SERVICES  # the web app: tests/e2e/web

NETWORK = f"fuzz-{uuid.uuid4().hex[:8]}"
EXAMPLES = 3


@pytest.mark.parametrize("service", SERVICES)
def test_no_operation_answers_a_server_error(platform, service):
    schema = schemathesis.openapi.from_url(f"{platform.url(service)}/openapi.json")
    token = platform.jwt_keys.token("network_admin", NETWORK)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema lists no operation"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            if case.path_parameters and "network_id" in case.path_parameters:
                case.path_parameters["network_id"] = NETWORK
            case.call_and_validate(base_url=platform.url(service), timeout=60,
                                   headers={"Authorization": f"Bearer {token}"},
                                   checks=[not_a_server_error])

        try:
            fuzz()
        except Exception as exc:  # every operation is tried; all failures are reported
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:800]}")
    assert failures == []
