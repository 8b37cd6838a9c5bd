"""Which writes run outside the request transaction is decided before routing. Routers
included with options (every service's: a body limit and the write budget) are nested routes
whose match names no endpoint, so the roster import's mark went unseen: the import ran in the
request's transaction and its background job then used a handle bound to the committed one."""

from __future__ import annotations

from services.profiles.app import DEFINITION
from shared.idempotency import _outside_transaction
from shared.service import create_app
from shared.settings import ServiceSettings


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [],
            "query_string": b""}


def test_the_roster_import_runs_outside_the_request_transaction_and_a_registration_inside():
    app = create_app(DEFINITION, ServiceSettings(service_name="profiles"))
    assert _outside_transaction(app, _scope("POST", "/networks/n1/imports"))
    assert not _outside_transaction(app, _scope("GET", "/networks/n1/imports"))
    assert not _outside_transaction(app, _scope("POST", "/networks/n1/mentees"))
    assert not _outside_transaction(app, _scope("POST", "/networks/n1/imports/extra"))
