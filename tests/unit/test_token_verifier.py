"""Token verification keeps recently verified tokens, never past their expiry."""

from __future__ import annotations

import time

import pytest

from shared import auth
from shared.auth import TokenRejected, TokenVerifier, ensure_local_keypair, issue_token


@pytest.fixture
def keys(tmp_path):
    private, public = ensure_local_keypair(tmp_path)
    return private.read_bytes(), TokenVerifier(
        public_key_pem=public.read_bytes(), issuer="mentorship-local", audience="mentorship")


def test_a_verified_token_is_served_again_but_not_after_it_expired(keys, monkeypatch):
    private, verifier = keys
    token = issue_token(private, role="mentor", network_id="n1", person_id="p1", ttl_seconds=30)
    first = verifier.verify(token)
    assert (first.person_id, first.grants) == ("p1", ())
    calls = []
    real = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: calls.append(t) or real(t))
    assert verifier.verify(token) == first and calls == []  # from the cache
    later = time.time() + 31
    monkeypatch.setattr(auth.time, "time", lambda: later)
    verifier.verify(token)  # past its expiry the cache does not answer: verified again
    assert calls == [token]


def test_a_refused_token_is_refused_every_time(keys, tmp_path):
    _, verifier = keys
    other_private, _ = ensure_local_keypair(tmp_path / "other")
    forged = issue_token(other_private.read_bytes(), role="network_admin", network_id="n1")
    for _ in range(2):
        with pytest.raises(TokenRejected, match="not signed by a key this platform trusts"):
            verifier.verify(forged)
