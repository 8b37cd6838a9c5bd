"""shared.auth: the token's claims, the older one-role shape mapped to grants, the caller
kinds, and 401 messages a caller can act on (never a library's internals)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import HTTPException

from shared.auth import (
    Grant,
    GrantRole,
    Kind,
    Principal,
    TokenIssuer,
    TokenRejected,
    TokenVerifier,
    ensure_local_keypair,
    issue_token,
    principal_from_claims,
    require_network,
    require_service,
)

ADMIN = Grant(role=GrantRole.NETWORK_ADMIN)
INST = Grant(role=GrantRole.INSTITUTION_COORDINATOR, institution_id="i1")
PROG = Grant(role=GrantRole.PROGRAM_COORDINATOR, program_id="p7")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[bytes, bytes]:
    private, public = ensure_local_keypair(tmp_path_factory.mktemp("keys"))
    return private.read_bytes(), public.read_bytes()


def verifier(keys, **kwargs) -> TokenVerifier:
    return TokenVerifier(public_key_pem=keys[1], issuer="mentorship-local", audience="mentorship",
                         **kwargs)


def test_the_platform_token_has_the_contract_claims_and_round_trips(keys):
    token = TokenIssuer(keys[0], issuer="mentorship-local", audience="mentorship",
                        ttl_seconds=300).issue(network_id="demo", person_id="p1",
                                               grants=[ADMIN, INST, PROG], session_id="ses-1")
    claims = jwt.decode(token, keys[1], algorithms=["RS256"], audience="mentorship")
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti", "ver", "kind", "network_id",
                           "person_id", "sid", "grants"}
    assert claims["exp"] - claims["iat"] == 300 and claims["ver"] == 2
    assert claims["grants"] == [{"role": "network_admin"},
                                {"role": "institution_coordinator", "institution_id": "i1"},
                                {"role": "program_coordinator", "program_id": "p7"}]
    assert jwt.get_unverified_header(token)["kid"] == "mentorship-platform"
    principal = verifier(keys).verify(token)
    assert (principal.kind, principal.person_id, principal.session_id) == (Kind.PERSON, "p1", "ses-1")
    assert principal.is_network_admin and principal.institution_ids == ("i1",)
    assert principal.program_ids == ("p7",) and principal.role_label == (
        "network_admin,institution_coordinator,program_coordinator")


@pytest.mark.parametrize(("claims", "kind", "grants"), [
    ({"role": "network_admin"}, Kind.PERSON, [ADMIN]),
    ({"role": "institution_coordinator", "institution_id": "i1", "program_ids": ["p7"]},
     Kind.PERSON, [INST, PROG]),
    ({"role": "program_coordinator", "institution_id": "i1", "program_ids": ["p7", "p7"]},
     Kind.PERSON, [PROG]),
    ({"role": "mentee", "person_id": "p1"}, Kind.PERSON, []),
    ({"role": "service"}, Kind.SERVICE, []),
])
def test_the_older_one_role_shape_maps_to_grants(claims, kind, grants):
    principal = principal_from_claims({"sub": "s", "network_id": "demo", **claims})
    assert principal.kind == kind and list(principal.grants) == grants


def test_a_union_of_grants_is_what_each_allows():
    both = Principal(subject="p", network_id="n", person_id="p", grants=(INST, PROG))
    assert both.coordinates_institution("i1") and both.coordinates_program("p7")
    assert not both.coordinates_institution("i2") and not both.is_network_admin
    assert not Principal(subject="s", kind=Kind.SERVICE, network_id="n").is_network_admin


@pytest.mark.parametrize(("claims", "message"), [
    ({"sub": "x", "kind": "person", "ver": 2, "grants": [{"role": "network_admin"}]},
     "lacks the 'network_id' claim"),
    ({"sub": "x", "network_id": "n", "kind": "robot"}, "'kind' claim must be person"),
    ({"sub": "x", "network_id": "n", "kind": "person", "grants": [{"role": "program_coordinator"}]},
     "a grant must be network_admin"),
    ({"sub": "x", "network_id": "n", "role": "dean"}, "'role' claim is not one"),
    ({"sub": "x", "network_id": "n", "kind": "service", "grants": [{"role": "network_admin"}]},
     "only a person's token carries grants"),
    ({"sub": "x", "network_id": ["n"], "role": "mentee"}, "'network_id' claim is not a short text"),
])
def test_bad_claims_are_refused_in_words_not_validation_dumps(claims, message):
    with pytest.raises(TokenRejected) as refused:
        principal_from_claims(claims)
    text = str(refused.value)
    assert message in text and "validation error" not in text and "pydantic" not in text


def test_verification_failures_say_what_to_do(keys):
    check = verifier(keys)
    expired = issue_token(keys[0], role="network_admin", network_id="n", ttl_seconds=-10)
    with pytest.raises(TokenRejected, match="has expired; sign in again"):
        check.verify(expired)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"sub": "x", "role": "network_admin", "network_id": "n", "exp": 2**33,
                         "iss": "mentorship-local", "aud": "mentorship"}, other, algorithm="RS256")
    with pytest.raises(TokenRejected, match="not signed by a key this platform trusts"):
        check.verify(forged)
    wrong_audience = issue_token(keys[0], role="mentee", network_id="n", audience="elsewhere")
    with pytest.raises(TokenRejected, match="another audience"):
        check.verify(wrong_audience)
    with pytest.raises(TokenRejected, match="not a well-formed signed JWT"):
        check.verify("not-a-token")
    unsigned = jwt.encode({"sub": "x", "role": "network_admin", "network_id": "n", "exp": 2**33,
                           "iss": "mentorship-local", "aud": "mentorship"}, None, algorithm="none")
    with pytest.raises(TokenRejected):
        check.verify(unsigned)


def test_only_people_of_the_network_pass_require_network():
    person = Principal(subject="p", network_id="demo", person_id="p")
    require_network(person, "demo")
    for caller, message in (
        (Principal(subject="p", network_id="other", person_id="p"), "this network"),
        (Principal(subject="s", kind=Kind.SERVICE, network_id="demo", service="notifications"),
         "Service tokens are not accepted"),
        (Principal(subject="o", kind=Kind.OPERATOR), "operators create networks"),
    ):
        with pytest.raises(HTTPException) as refused:
            require_network(caller, "demo")
        assert refused.value.status_code == 403 and message in refused.value.detail
    service = Principal(subject="s", kind=Kind.SERVICE, network_id="demo", service="notifications")
    require_service(service, "demo", "notifications")
    with pytest.raises(HTTPException):
        require_service(service, "other", "notifications")
    with pytest.raises(HTTPException):
        require_service(person, "demo", "notifications")


class _Jwks(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_an_external_issuer_is_accepted_beside_the_platform_key(keys):
    """Integrations: tokens of an issuer whose keys its JWKS URL publishes, next to the
    platform's own tokens, each checked against its own issuer."""
    external = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(external.public_key()))
    _Jwks.body = json.dumps({"keys": [{**jwk, "kid": "idp-1", "use": "sig", "alg": "RS256"}]}).encode()
    server = HTTPServer(("127.0.0.1", 0), _Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check = verifier(keys, jwks_url=f"http://127.0.0.1:{server.server_port}/jwks",
                         external_issuer="https://idp.example.org")
        claims = {"sub": "integration", "role": "program_coordinator", "program_ids": ["p7"],
                  "network_id": "demo", "iss": "https://idp.example.org", "aud": "mentorship",
                  "exp": int(time.time()) + 60}
        token = jwt.encode(claims, external, algorithm="RS256", headers={"kid": "idp-1"})
        assert check.verify(token).program_ids == ("p7",)
        own = issue_token(keys[0], role="network_admin", network_id="demo")
        assert check.verify(own).is_network_admin
        posing = jwt.encode({**claims, "iss": "mentorship-local"}, external, algorithm="RS256",
                            headers={"kid": "idp-1"})
        with pytest.raises(TokenRejected, match="issuer is not trusted"):
            check.verify(posing)
    finally:
        server.shutdown()
        thread.join(2)


def test_grants_parse_from_the_cli_shape():
    assert Grant.parse("network_admin") == ADMIN
    assert Grant.parse("institution_coordinator:i1") == INST
    assert Grant.parse("program_coordinator:p7") == PROG
    for bad in ("program_coordinator", "network_admin:x", "dean:i1"):
        with pytest.raises(ValueError):
            Grant.parse(bad)


def test_local_keypair_is_reused(tmp_path: Path):
    first = ensure_local_keypair(tmp_path)
    assert ensure_local_keypair(tmp_path) == first


def test_signing_needs_a_configured_key_outside_development(tmp_path: Path, keys):
    from shared.auth import MissingKey, signing_key
    from shared.settings import ServiceSettings

    production = ServiceSettings(environment="production", data_dir=tmp_path)
    with pytest.raises(MissingKey, match="JWT_PRIVATE_KEY_FILE is not set"):
        signing_key(production)
    assert not (tmp_path / "jwt").exists()  # nothing generated outside development
    (tmp_path / "public.pem").write_bytes(keys[1])  # another pair than the local one
    half = ServiceSettings(data_dir=tmp_path, jwt_public_key_file=tmp_path / "public.pem")
    with pytest.raises(MissingKey, match="pair"):
        signing_key(half)
    _, local_public = ensure_local_keypair(tmp_path / "same")
    same = ServiceSettings(data_dir=tmp_path / "same", jwt_public_key_file=local_public)
    assert signing_key(same).startswith(b"-----BEGIN")  # the local pair itself
    (tmp_path / "private.pem").write_bytes(keys[0])
    configured = production.model_copy(update={"jwt_private_key_file": tmp_path / "private.pem"})
    assert signing_key(configured) == keys[0]
    assert signing_key(ServiceSettings(data_dir=tmp_path / "dev")).startswith(b"-----BEGIN")


def test_local_sign_in_is_refused_outside_development(monkeypatch, tmp_path: Path, keys):
    from services.profiles.app import UnsafeSetting, check_identity_settings
    from services.profiles.identity_settings import identity_settings

    (tmp_path / "private.pem").write_bytes(keys[0])
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(tmp_path / "private.pem"))
    monkeypatch.setenv("LOCAL_SIGN_IN", "true")
    identity_settings.cache_clear()
    try:
        with pytest.raises(UnsafeSetting, match="LOCAL_SIGN_IN"):
            check_identity_settings()
        monkeypatch.setenv("LOCAL_SIGN_IN", "false")
        identity_settings.cache_clear()
        check_identity_settings()
    finally:
        identity_settings.cache_clear()
