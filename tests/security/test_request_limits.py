"""Requests too large, errors that echo them, and control characters in names.

The attacks: a 10 MB list item was accepted for parsing and its 422 echoed all 10 MB back; a
NUL in `display_name` was stored. Now every service refuses a body over its route's limit with
413 before reading it, errors quote at most a few dozen characters of what was sent, every
request model bounds its strings and lists, and names lose control characters.
"""

from __future__ import annotations

import importlib

import pytest

from shared.limits import DEFAULT_MAX_BODY_BYTES
from shared.service import create_app
from tests.security.attack_support import Network

TEN_MB = "x" * (10 * 1024 * 1024)
ALMOST_A_MEGABYTE = "y" * (DEFAULT_MAX_BODY_BYTES - 10_000)
SERVICES = ("profiles", "matching", "notifications", "analytics")


async def test_a_10_mb_body_is_413_on_every_service_and_nothing_is_echoed(api, network_id):
    network = Network(api, network_id)
    # Analytics has no route that takes a body.
    targets = [
        ("profiles", "POST", f"/networks/{network_id}/mentees"),
        ("matching", "PUT", f"/networks/{network_id}/programs/p1/preferences/x"),
        ("notifications", "POST", f"/networks/{network_id}/webhooks"),
        ("notifications", "PUT", "/me/preferences"),
    ]
    for service, method, path in targets:
        url = api.platform.url(service) + path
        declared = await api.http.request(method, url, json={"kinds": [TEN_MB]},
                                          headers=network.admin())
        assert declared.status_code == 413, (service, declared.status_code, declared.text[:200])
        assert declared.json()["detail"] == (
            "The request body is larger than this endpoint accepts (1 MB); send less at once."
        )
        assert len(declared.content) < 500

    async def chunks():  # no Content-Length: the streamed body is counted as it arrives
        for _ in range(10):
            yield b"[" + b"z" * (1024 * 1024) + b"]"

    streamed = await api.http.post(
        f"{network.profiles}/mentees", content=chunks(),
        headers=network.admin() | {"content-type": "application/json"},
    )
    assert streamed.status_code == 413 and len(streamed.content) < 500


async def test_a_large_value_under_the_limit_gets_a_short_422(api, network_id):
    network = Network(api, network_id)
    await network.institution("inst-a")
    cases = [
        ("profiles", f"/networks/{network_id}/mentees",
         {"institution_id": "inst-a", "display_name": "Ada", "email": "ada@example.org",
          "career_stage": "M2", "specialty_interests": [ALMOST_A_MEGABYTE]}),
        ("profiles", f"/networks/{network_id}/programs",  # an unknown field's name is echoed
         {"name": "P", "type": "peer", "cohort_start": "2027-01-01", "cohort_end": "2027-06-01",
          "enrolment_opens": "2026-12-01", "enrolment_closes": "2027-01-01",
          ALMOST_A_MEGABYTE: 1}),
        ("notifications", f"/networks/{network_id}/webhooks",
         {"url": "https://example.org/hook", "kinds": [ALMOST_A_MEGABYTE]}),
    ]
    for service, path, body in cases:
        r = await api.http.post(api.platform.url(service) + path, json=body,
                                headers=network.admin())
        assert r.status_code == 422, (service, r.status_code)
        assert len(r.content) < 2000, (service, len(r.content), r.text[:300])


async def test_the_roster_import_has_its_own_larger_limit(api, network_id):
    network = Network(api, network_id)
    csv = ("email,first_name,last_name,institution_id,role,career_stage,notes\n"
           f"a@example.org,Ada,Lovelace,inst-a,mentee,M2,{'n' * (2 * DEFAULT_MAX_BODY_BYTES)}\n")
    r = await api.http.post(f"{network.profiles}/imports", params={"dry_run": "true"},
                            content=csv, headers=network.admin() | {"content-type": "text/csv"})
    assert r.status_code != 413, r.text[:300]


async def test_control_characters_never_reach_a_stored_name(api, network_id):
    network = Network(api, network_id)
    await network.institution("inst-a")
    person = await network.register("mentee", "inst-a", display_name="Ada\x00 Love\u202elace\x1b[31m")
    assert person["display_name"] == "Ada Lovelace[31m"
    url = f"{network.profiles}/people/{person['id']}"
    edit = await api.http.patch(f"{url}/profile", json={"display_name": "Grace\x00\x07 Hopper"},
                                headers=network.admin() | {"If-Match": '"1"'})
    assert edit.status_code == 200, edit.text
    stored = (await api.http.get(url, headers=network.admin())).json()
    assert stored["display_name"] == "Grace Hopper"
    only_controls = await api.http.patch(f"{url}/profile", json={"display_name": "\x00\x01"},
                                         headers=network.admin() | {"If-Match": '"2"'})
    assert only_controls.status_code == 422


def _unbounded(schema: dict, defs: dict, where: str, seen: frozenset = frozenset()) -> list[str]:
    """Strings without maxLength (or enum/format), arrays without maxItems, maps without
    maxProperties, anywhere in a request schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [] if name in seen else _unbounded(defs[name], defs, where, seen | {name})
    found = [p for key in ("anyOf", "oneOf", "allOf") for s in schema.get(key, [])
             for p in _unbounded(s, defs, where, seen)]
    kind = schema.get("type")
    if kind == "string" and not {"maxLength", "enum", "const"} & set(schema) and (
        schema.get("format") not in ("date", "date-time", "email", "binary", "time")
    ):
        found.append(where)
    if kind == "array":
        found += [] if "maxItems" in schema else [where]
        found += _unbounded(schema.get("items", {}), defs, where + "[]", seen)
    for name, sub in schema.get("properties", {}).items():
        found += _unbounded(sub, defs, f"{where}.{name}", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        found += [] if "maxProperties" in schema else [where]
        found += _unbounded(extra, defs, where + "{}", seen)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_request_body_and_query_bounds_its_strings_and_lists(service):
    spec = create_app(importlib.import_module(f"services.{service}.app").DEFINITION).openapi()
    defs = spec.get("components", {}).get("schemas", {})
    unbounded = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            for content in op.get("requestBody", {}).get("content", {}).values():
                unbounded += _unbounded(content.get("schema", {}), defs, f"{where} body")
            for param in op.get("parameters", []):
                if param["in"] == "query" and param["name"] != "cursor":
                    unbounded += _unbounded(param.get("schema", {}), defs,
                                            f"{where} ?{param['name']}")
    assert unbounded == []
