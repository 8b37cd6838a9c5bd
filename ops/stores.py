"""Which embedded store each service uses: one SecantusDB process per service that keeps data.

SecantusDB serves all its connections from one Python process, so a single store for the whole
platform does everyone's database work on one core, one statement at a time, however many
cores the machine has. Services never read each other's databases, so each can have a server
of its own, and the operating system spreads them over the cores. A 3,000-row roster import,
from the request to every service having applied it, took 46-47 s on one store (which used
47 CPU s, a whole core) and 29 s with one store per service (36 CPU s in all: less time
lost switching between the store's threads). Profiles' reads no longer wait behind the
notifications service's writes either. A real MongoDB (docker-compose) serves every service
from one server: it uses all cores by itself.

The store names are `mongo` (profiles, and the web app, which keeps no data) and
`mongo-<service>`; each keeps its files in `<data>/<name>` and listens on `MONGODB_PORT`
(27017) or `<SERVICE>_MONGODB_PORT` (default: the next ports up, 27018-27020). A data dir
first started with one store for all keeps that layout (its databases are there; this does not
move them), recorded in `<data>/stores.json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

SHARED = "mongo"
SHARED_SERVICES = ("profiles", "web")
OWN_STORE = ("matching", "notifications", "analytics")
LAYOUT_FILE = "stores.json"
DEFAULT_PORT = 27017


def store_name(service: str) -> str:
    return f"{SHARED}-{service}" if service in OWN_STORE else SHARED


def store_port(env: Mapping[str, str], name: str) -> int:
    """The port of a store: MONGODB_PORT for the shared one, else <SERVICE>_MONGODB_PORT
    (default: MONGODB_PORT plus the service's place in OWN_STORE)."""
    base = int(env.get("MONGODB_PORT", DEFAULT_PORT))
    if name == SHARED:
        return base
    service = name.removeprefix(f"{SHARED}-")
    own = env.get(f"{service.upper()}_MONGODB_PORT")
    return int(own) if own else base + 1 + OWN_STORE.index(service)


def _recorded(data: Path) -> dict[str, str] | None:
    """The layout this data dir recorded, if it has one."""
    try:
        recorded = json.loads((data / LAYOUT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    return {service: str(recorded.get(service, SHARED))
            for service in SHARED_SERVICES + OWN_STORE}


def layout(data: Path) -> dict[str, str]:
    """Service -> store name for this data dir, decided the first time and then kept: a store
    per service for a new data dir, one for all where a single store already holds data."""
    recorded = _recorded(data)
    if recorded is not None:
        return recorded
    split = not (data / SHARED).exists()
    chosen = {service: store_name(service) if split else SHARED
              for service in SHARED_SERVICES + OWN_STORE}
    data.mkdir(parents=True, exist_ok=True)
    (data / LAYOUT_FILE).write_text(json.dumps(chosen, indent=2) + "\n")
    return chosen


def store_of(data: Path, service: str) -> str:
    """The store a service of this data dir uses, without deciding a layout for a new one."""
    return (_recorded(data) or {}).get(service, SHARED)


def extra_stores(chosen: Mapping[str, str]) -> list[str]:
    """The stores besides the shared one that this layout runs, in a stable order."""
    return sorted({name for name in chosen.values() if name != SHARED})
