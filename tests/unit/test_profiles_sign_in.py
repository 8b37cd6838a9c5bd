"""Which address a sign-in request counts against: the peer, unless the peer is a trusted
proxy (the web app), whose X-Forwarded-For then names the client. A client cannot choose its
own address by sending the header itself."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import HTTPException

from services.profiles.auth_api import _local_only, client_address
from services.profiles.identity_settings import IdentitySettings

TRUSTED = ["127.0.0.1", "10.0.0.5"]


def _request(peer: str, forwarded: str | None = None):
    headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    return SimpleNamespace(client=SimpleNamespace(host=peer), headers=headers)


@pytest.mark.parametrize(("peer", "forwarded", "counted"), [
    ("203.0.113.9", None, "203.0.113.9"),
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a proxy: its header is ignored
    ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
    ("10.0.0.5", "192.0.2.7, 198.51.100.1", "198.51.100.1"),  # the nearest hop the proxy saw
    ("10.0.0.5", "198.51.100.1, 127.0.0.1", "198.51.100.1"),  # trusted hops are skipped
    ("10.0.0.5", "not-an-address", "10.0.0.5"),
    ("10.0.0.5", None, "10.0.0.5"),
])
def test_the_client_address_comes_from_a_trusted_proxy_only(peer, forwarded, counted):
    assert client_address(_request(peer, forwarded), TRUSTED) == counted


def test_local_sign_in_is_not_found_unless_turned_on():
    with pytest.raises(HTTPException) as off:
        _local_only(IdentitySettings(local_sign_in=False))
    assert off.value.status_code == 404
    _local_only(IdentitySettings(local_sign_in=True))
