"""How a service proves who it is to Kafka and MongoDB, from its settings and secrets.

On the embedded default both listen on 127.0.0.1 without authentication and nothing here
applies. In production (docker-compose.yml, docs/deployment.md) each service has its own
MongoDB user, allowed only its own database, and its own Kafka user (SASL/SCRAM over TLS,
allowed only its topics by ACLs); the passwords are secrets (`MONGODB_PASSWORD`,
`KAFKA_SASL_PASSWORD`, or the `_FILE` variables naming files that hold them, see
shared/secrets.py), never part of a URI or a log line.
"""

from __future__ import annotations

import ssl
from typing import Any

from shared.secrets import read_secret
from shared.settings import ServiceSettings


def mongo_credentials(settings: ServiceSettings) -> dict[str, Any]:
    """Keyword arguments for the MongoDB client: the service's user and password, if any."""
    if not settings.mongodb_username:
        return {}
    return {
        "username": settings.mongodb_username,
        "password": read_secret("MONGODB_PASSWORD", environment=settings.environment,
                                data_dir=settings.data_dir, min_length=16),
        "authSource": settings.mongodb_auth_source or settings.database_name,
        "authMechanism": "SCRAM-SHA-256",
    }


def kafka_options(settings: ServiceSettings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client (producer, consumers, admin): TLS with the
    cluster's CA and a SCRAM user when the security protocol asks for them."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        options["ssl_context"] = context
    if protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username or settings.service_name,
            sasl_plain_password=read_secret("KAFKA_SASL_PASSWORD",
                                            environment=settings.environment,
                                            data_dir=settings.data_dir, min_length=16),
        )
    return options
