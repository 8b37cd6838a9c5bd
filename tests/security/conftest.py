"""The attack tests run against the same real services as tests/e2e (their fixtures)."""

from tests.e2e.conftest import api, mailbox, network_id, platform  # noqa: F401
