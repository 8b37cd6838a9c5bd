"""Sign-in on the running platform: networks created by the operator, OpenID Connect against a
real mock IdP (every check on the ID token), email links, local sign-in, sessions with rotating
refresh tokens, sign-out, and grants that reach the next token and leave it when revoked."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.identity_flows import Identity
from tests.e2e.test_programs import _program
from tests.identity_support import authorization_code_flow, profiles_event


@pytest.fixture
def identity(api) -> Identity:
    return Identity(api)


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.org"


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_the_operator_creates_a_network_whose_first_admin_signs_in(identity, api, platform):
    network_id = f"net-{uuid.uuid4().hex[:8]}"
    admin_email = _email("admin")
    created = await identity.create_network(network_id, admin_email)
    assert created["network_id"] == network_id and created["admin_person_id"]
    again = await api.http.post(f"{identity.profiles}/networks", headers=identity.operator(),
                                json={"network_id": network_id, "name": "Again",
                                      "admin_email": admin_email})
    assert again.status_code == 409
    as_admin = await api.http.post(f"{identity.profiles}/networks", headers=api.auth(network_id),
                                   json={"network_id": "x-" + network_id, "name": "X",
                                         "admin_email": admin_email})
    assert as_admin.status_code == 403 and "operator" in as_admin.json()["detail"]
    # The operator reaches no network's people.
    people = await api.http.get(f"{identity.profiles}/networks/{network_id}/people",
                                headers=identity.operator())
    assert people.status_code == 403 and "operators" in people.json()["detail"]
    listed = await api.http.get(f"{identity.profiles}/networks", headers=identity.operator())
    assert network_id in [n["network_id"] for n in listed.json()["items"]]

    options = await api.http.get(f"{identity.profiles}/networks/{network_id}/sign-in-options")
    assert options.json() == {"oidc": False, "email_link": True, "local": True}
    tokens = await identity.local(network_id, created["admin_person_id"])
    claims = _claims(tokens["access_token"])
    assert claims["grants"] == [{"role": "network_admin"}] and claims["kind"] == "person"
    assert claims["person_id"] == created["admin_person_id"] and claims["sid"]
    assert tokens["expires_in"] == claims["exp"] - claims["iat"] == 300
    me = (await identity.me(tokens)).json()
    assert me["person"]["email"] == admin_email and me["person"]["staff"] is True
    assert me["grants"] == [{"role": "network_admin"}] and me["enrolments"] == []
    await identity.institution(network_id, "inst-a", identity.bearer(tokens))
    mine = await api.http.get(f"{identity.profiles}/networks", headers=identity.bearer(tokens))
    assert [n["network_id"] for n in mine.json()["items"]] == [network_id]

    bootstrap = platform.servers.kafka_bootstrap
    await profiles_event(bootstrap, "NetworkCreated", lambda d: d["network_id"] == network_id)
    added = await profiles_event(bootstrap, "GrantAdded", lambda d: d["network_id"] == network_id)
    assert added["data"]["role"] == "network_admin" and added["data"]["email"] == admin_email
    audit = await api.http.get(f"{identity.profiles}/networks/{network_id}/audit",
                               headers=identity.bearer(tokens))
    actions = [(e["action"], e["actor_role"]) for e in audit.json()["items"]]
    assert ("network.created", "operator") in actions and ("grant.added", "operator") in actions


async def test_a_network_an_institution_made_first_is_named_by_the_operator(identity, api):
    """An institution added before the network was created leaves a nameless network record;
    creating the network then names it (it answered 503 after ten seconds of retries: the
    duplicate insert had ended the transaction)."""
    network_id = f"net-{uuid.uuid4().hex[:8]}"
    await identity.institution(network_id, "inst-a", api.auth(network_id))
    created = await identity.create_network(network_id)
    assert created["network_id"] == network_id and created["admin_person_id"]
    shown = await api.http.get(f"{identity.profiles}/networks/{network_id}",
                               headers=identity.operator())
    assert shown.json()["name"] == f"Network {network_id}"
    again = await api.http.post(f"{identity.profiles}/networks", headers=identity.operator(),
                                json={"network_id": network_id, "name": "Again",
                                      "admin_email": _email("admin")})
    assert again.status_code == 409, again.text


@pytest.fixture
async def oidc_network(identity, identity_providers) -> dict:
    """Network `a` of the mock IdP, made once per session, with one institution."""
    network_id = identity_providers.networks["a"]
    admin_person_id = await identity.identity_provider_network(identity_providers)
    # A fresh session each time: access tokens last 5 minutes, the session's tests longer.
    admin = await identity.local(network_id, admin_person_id)
    return {"network_id": network_id, "admin": identity.bearer(admin)}


async def test_oidc_sign_in_checks_everything_in_the_id_token(identity, api, identity_providers,
                                                              oidc_network):
    network_id, admin = oidc_network["network_id"], oidc_network["admin"]
    idp, client = identity_providers.issuer("a"), identity_providers.clients["a"]
    email = _email("resident")
    person_id = await identity.register(network_id, admin, "mentee", "Rita Resident", email)
    options = await api.http.get(f"{identity.profiles}/networks/{network_id}/sign-in-options")
    assert options.json()["oidc"] is True

    id_token, nonce = await authorization_code_flow(api.http, idp, client, email.upper())
    signed_in = await identity.oidc(network_id, id_token, nonce)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert tokens["person_id"] == person_id and tokens["token_type"] == "Bearer"
    assert (await identity.me(tokens)).json()["person"]["id"] == person_id
    replayed = await identity.oidc(network_id, id_token, nonce)
    assert replayed.status_code == 401 and "already used" in replayed.json()["detail"]

    id_token, nonce = await authorization_code_flow(api.http, idp, client, email)
    wrong_nonce = await identity.oidc(network_id, id_token, nonce + "x")
    assert wrong_nonce.status_code == 401 and "nonce" in wrong_nonce.json()["detail"]

    unknown, nonce = await authorization_code_flow(api.http, idp, client, _email("stranger"))
    refused = await identity.oidc(network_id, unknown, nonce)
    assert refused.status_code == 403 and refused.json()["reason"] == "unknown_person"

    # Network b trusts the same IdP (its own client id): our resident is not one of its people.
    other = identity_providers.networks["b"]
    id_token, nonce = await authorization_code_flow(api.http, idp, identity_providers.clients["b"],
                                                    email)
    elsewhere = await identity.oidc(other, id_token, nonce)
    assert elsewhere.status_code == 403 and elsewhere.json()["reason"] == "wrong_network"
    # A's ID token presented at b is for another application (audience) .
    id_token, nonce = await authorization_code_flow(api.http, idp, client, email)
    crossed = await identity.oidc(other, id_token, nonce)
    assert crossed.status_code == 401 and "another application" in crossed.json()["detail"]

    stale_network = identity_providers.networks["stale"]
    id_token, nonce = await authorization_code_flow(
        api.http, identity_providers.issuer("stale"), identity_providers.clients["stale"], email)
    expired = await identity.oidc(stale_network, id_token, nonce)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    unverified, nonce = await authorization_code_flow(api.http, idp, client, email,
                                                      email_verified=False)
    refused = await identity.oidc(network_id, unverified, nonce)
    assert refused.status_code == 401 and "not verified" in refused.json()["detail"]

    id_token, nonce = await authorization_code_flow(api.http, idp, client, email)
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["email"] = _email("victim")
    tampered = ".".join([header, base64.urlsafe_b64encode(json.dumps(claims).encode())
                        .rstrip(b"=").decode(), signature])
    refused = await identity.oidc(network_id, tampered, nonce)
    assert refused.status_code == 401 and "signature" in refused.json()["detail"]
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(id_token).get("kid")
    forged = jwt.encode({**claims, "email": email, "exp": int(time.time()) + 300}, own_key,
                        algorithm="RS256", headers={"kid": kid} if kid else None)
    refused = await identity.oidc(network_id, forged, nonce)
    assert refused.status_code == 401 and "signature" in refused.json()["detail"]

    no_idp = await identity.oidc(f"net-{uuid.uuid4().hex[:6]}", id_token, nonce)
    assert no_idp.status_code == 404


async def test_an_email_link_is_one_time_and_the_answer_is_the_same_for_unknown_emails(
    identity, api, platform, network_id,
):
    created = await identity.create_network(network_id)
    admin = identity.bearer(await identity.local(network_id, created["admin_person_id"]))
    await identity.institution(network_id, "inst-a", admin)
    email = _email("mentee")
    person_id = await identity.register(network_id, admin, "mentee", "Mia Mentee", email)
    ip = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250}"}
    url = f"{identity.profiles}/auth/email-link"
    known = await api.http.post(url, json={"network_id": network_id, "email": email}, headers=ip)
    unknown = await api.http.post(url, json={"network_id": network_id, "email": _email("nobody")},
                                  headers=ip)
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    event = await profiles_event(platform.servers.kafka_bootstrap, "SignInLinkRequested",
                                 lambda d: d["person_id"] == person_id)
    assert event["data"]["email"] == email
    link = urlparse(event["data"]["link_url"])
    assert link.path == "/sign-in/email"
    token = parse_qs(link.query)["token"][0]
    spend = f"{identity.profiles}/auth/email-link/session"
    first = await api.http.post(spend, json={"token": token})
    assert first.status_code == 200 and first.json()["person_id"] == person_id
    again = await api.http.post(spend, json={"token": token})
    assert again.status_code == 401 and "used already" in again.json()["detail"]
    forged = await api.http.post(spend, json={"token": token[:-4] + "abcd"})
    assert forged.status_code == 401


async def test_email_links_are_rate_limited_per_email_and_per_address(identity, api, network_id):
    url = f"{identity.profiles}/auth/email-link"
    email = _email("someone")  # unknown or not: the same limits, the same answers
    answers = [await api.http.post(url, json={"network_id": network_id, "email": email},
                                   headers={"X-Forwarded-For": f"203.0.113.{n}"})
               for n in range(6)]
    assert [a.status_code for a in answers] == [202] * 5 + [429]
    assert int(answers[-1].headers["Retry-After"]) > 0
    address = {"X-Forwarded-For": f"192.0.2.{uuid.uuid4().int % 250}"}
    answers = [await api.http.post(url, json={"network_id": network_id, "email": _email(f"e{n}")},
                                   headers=address) for n in range(31)]
    assert [a.status_code for a in answers] == [202] * 30 + [429]


async def test_refresh_rotates_reuse_ends_the_session_and_sign_out_revokes(identity, network_id):
    created = await identity.create_network(network_id)
    tokens = await identity.local(network_id, created["admin_person_id"])
    rotated = await identity.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert _claims(fresh["access_token"])["sid"] == _claims(tokens["access_token"])["sid"]
    reused = await identity.refresh(tokens["refresh_token"])
    assert reused.status_code == 401 and "already used" in reused.json()["detail"]
    assert (await identity.refresh(fresh["refresh_token"])).status_code == 401  # session ended

    other = await identity.local(network_id, created["admin_person_id"])
    signed_out = await identity.http.post(f"{identity.profiles}/auth/sign-out",
                                          json={"refresh_token": other["refresh_token"]})
    assert signed_out.status_code == 204
    ended = await identity.refresh(other["refresh_token"])
    assert ended.status_code == 401 and "sign in again" in ended.json()["detail"]


async def test_a_grant_reaches_the_next_token_and_a_revoked_one_leaves_it(
    identity, api, platform, network_id,
):
    created = await identity.create_network(network_id)
    admin = identity.bearer(await identity.local(network_id, created["admin_person_id"]))
    for institution in ("inst-a", "inst-b"):
        await identity.institution(network_id, institution, admin)
    programs = {}
    for key, institution in (("a", "inst-a"), ("b", "inst-b")):
        response = await api.http.post(f"{identity.profiles}/networks/{network_id}/programs",
                                       json=_program(institution, name=f"P {key}"), headers=admin)
        programs[key] = response.json()["id"]
    coordinator = await identity.register(network_id, admin, "mentor", "Cora Coordinator",
                                          _email("cora"), stage="faculty-professor")
    granted = await identity.grant(network_id, admin, person_id=coordinator,
                                   role="institution_coordinator", institution_id="inst-a")
    assert granted.status_code == 201, granted.text
    session = await identity.local(network_id, coordinator)
    cora = identity.bearer(session)
    assert _claims(session["access_token"])["grants"] == [
        {"role": "institution_coordinator", "institution_id": "inst-a"}]
    # Within her institution she appoints a program coordinator, outside it nobody.
    staff_email = _email("pat")
    own = await identity.grant(network_id, cora, email=staff_email, display_name="Pat",
                               role="program_coordinator", program_id=programs["a"])
    assert own.status_code == 201, own.text
    assert (await identity.grant(network_id, cora, email=staff_email, role="program_coordinator",
                                 program_id=programs["a"])).status_code == 200  # held already
    for body in ({"role": "program_coordinator", "program_id": programs["b"]},
                 {"role": "institution_coordinator", "institution_id": "inst-b"},
                 {"role": "network_admin"}):
        refused = await identity.grant(network_id, cora, email=staff_email, **body)
        assert refused.status_code == 403, body
    pat = identity.bearer(await identity.local(network_id, own.json()["person_id"]))
    assert (await identity.grant(network_id, pat, email=_email("x"), role="program_coordinator",
                                 program_id=programs["a"])).status_code == 403
    listed = await api.http.get(f"{identity.profiles}/networks/{network_id}/grants", headers=cora)
    assert {g["role"] for g in listed.json()["items"]} == {"institution_coordinator",
                                                           "program_coordinator"}

    edit = f"{identity.profiles}/networks/{network_id}/programs/{programs['a']}"
    assert (await api.http.patch(edit, json={"name": "Renamed"},
                                 headers=cora | {"If-Match": '"1"'})).status_code == 200
    revoked = await api.http.delete(
        f"{identity.profiles}/networks/{network_id}/grants/{granted.json()['id']}", headers=admin)
    assert revoked.status_code == 204
    # The access token in hand keeps the grant until it expires (at most 5 minutes); the next
    # refresh drops it.
    refreshed = (await identity.refresh(session["refresh_token"])).json()
    assert _claims(refreshed["access_token"])["grants"] == []
    after = await api.http.patch(edit, json={"name": "Again"},
                                 headers=identity.bearer(refreshed) | {"If-Match": '"2"'})
    assert after.status_code == 403
    event = await profiles_event(platform.servers.kafka_bootstrap, "GrantRevoked",
                                 lambda d: d["grant_id"] == granted.json()["id"])
    assert event["data"]["person_id"] == coordinator
    last_admin = await api.http.delete(
        f"{identity.profiles}/networks/{network_id}/grants/{created['admin_grant_id']}",
        headers=admin)
    assert last_admin.status_code == 409 and "last network admin" in last_admin.json()["detail"]


async def test_local_sign_in_lists_who_one_may_act_as(identity, api, network_id):
    created = await identity.create_network(network_id, admin_email="dual@example.org")
    admin = identity.bearer(await identity.local(network_id, created["admin_person_id"]))
    await identity.institution(network_id, "inst-a", admin)
    # The admin also takes part as a mentee (one human, two records): both list the grant.
    participant = await identity.register(network_id, admin, "mentee", "Dual Role",
                                          "dual@example.org")
    plain = await identity.register(network_id, admin, "mentee", "Plain", "plain@example.org")
    listed = await api.http.get(f"{identity.profiles}/auth/local/people",
                                params={"network_id": network_id})
    assert listed.status_code == 200
    first = listed.json()[0]
    assert first["person_id"] == created["admin_person_id"]
    assert first["grants"] == [{"role": "network_admin"}]
    by_id = {p["person_id"]: p["grants"] for p in listed.json()}
    assert by_id[participant] == [{"role": "network_admin"}] and by_id[plain] == []
    missing = await api.http.post(f"{identity.profiles}/auth/local/session",
                                  json={"network_id": network_id, "person_id": "nobody"})
    assert missing.status_code == 404


async def test_the_cli_creates_the_first_network_as_the_operator(identity, api, network_id):
    """`mentorship network create` signs an operator token with the local key (here: the
    session's, which the platform trusts) and appoints the admin."""
    from typer.testing import CliRunner

    from ops.cli import app

    data_dir = api.platform.jwt_keys.public_path.parent.parent
    run = await asyncio.to_thread(
        CliRunner().invoke, app,
        ["network", "create", f"Northern {network_id}", "--id", network_id, "--admin-email",
         "first.admin@example.org", "--profiles-url", identity.profiles],
        env={"MENTORSHIP_DATA_DIR": str(data_dir)})
    assert run.exit_code == 0, run.output
    assert f"network {network_id} (Northern {network_id}) created" in run.output
    again = await asyncio.to_thread(
        CliRunner().invoke, app,
        ["network", "create", "x", "--id", network_id, "--admin-email", "a@example.org",
         "--profiles-url", identity.profiles], env={"MENTORSHIP_DATA_DIR": str(data_dir)})
    assert again.exit_code == 1 and "already a network" in again.output
    people = await api.http.get(f"{identity.profiles}/auth/local/people",
                                params={"network_id": network_id})
    assert [p["email"] for p in people.json()] == ["first.admin@example.org"]
