"""MongoDB access with PyMongo's asyncio API (AsyncMongoClient; Motor is deprecated).

Each service owns one database and never reads another's. Datetimes come back
timezone-aware (UTC).
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient


def create_client(uri: str, **credentials: Any) -> AsyncMongoClient:
    """`credentials`: username, password, authSource... (shared/connections.py)."""
    return AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000, appname="mentorship",
                            **credentials)
