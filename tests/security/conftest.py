"""The attack tests run against the real services, like the end-to-end tests, and share the
session's platform fixtures (imported here: pytest shows a conftest's fixtures only to its own
directory)."""

from tests.e2e.conftest import (  # noqa: F401
    api,
    mailbox,
    network_id,
    platform,
    private_api,
    private_platform,
)
