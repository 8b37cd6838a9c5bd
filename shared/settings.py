"""Settings every service reads from its environment (pydantic-settings).

The same code runs on the embedded servers of a developer machine and on a real Kafka and
MongoDB cluster: only these variables change.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORTS = {
    "profiles": 8001, "matching": 8002, "notifications": 8003, "analytics": 8004, "web": 8000,
}


def embedded_mongo_uri(port: int = 27017) -> str:
    """URI of the embedded SecantusDB.

    retryWrites=false: its retryable-write bookkeeping is O(n) per write (~60 writes/s after
    10,000 writes). No `journal=true`: the server is started with every commit written to the
    OS before it is acknowledged (`ops.infra.CRASH_SAFE_COMMITS`), so a killed server loses no
    acknowledged write; `journal=true` would add an fsync per commit (~5 ms a write here, no
    group commit). Real MongoDB keeps its defaults (retryable writes, its own journaling).
    """
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


EMBEDDED_MONGODB_URI = embedded_mongo_uri()


class ServiceSettings(BaseSettings):
    """Endpoints, identity and tuning of one service process."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    service_name: str = Field(default="service", description="Set by each service's app.py")
    # "development" (make up, the tests) generates missing secrets into <data_dir>/secrets and
    # allows local conveniences; any other value (compose sets "production") requires every
    # secret to be configured and turns those conveniences off.
    environment: str = "development"
    http_host: str = "127.0.0.1"
    http_port: int = 0  # 0 means the service's default port
    # Processes serving the API (see shared.service.serve); services that consume stay at 1.
    http_workers: int = Field(default=1, ge=1, le=16)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Tansu has no idempotent producer (InitProducerId fails): turn this off there.
    kafka_idempotent_producer: bool = True
    # Static membership (group.instance.id) gives a killed consumer its partitions back at once;
    # noida-db never reassigns a dead dynamic member's partitions.
    kafka_static_membership: bool = True
    kafka_group_instance_id: str = ""  # default: "<service>-1"
    kafka_topic_partitions: int = 6
    # Copies of each topic the services create, and how many must have a record before an
    # acks=all write is acknowledged: 1/1 on one broker, 3/2 on a three-broker cluster.
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1
    kafka_session_timeout_ms: int = 10_000
    # PLAINTEXT on the embedded default; SASL_SSL in production: a SCRAM user per service
    # (default: the service's name) whose password is the secret KAFKA_SASL_PASSWORD(_FILE),
    # and the CA that signed the brokers' certificates (shared/connections.py).
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_ssl_cafile: Path | None = None

    mongodb_uri: str = EMBEDDED_MONGODB_URI
    mongodb_database: str = ""  # default: "mentorship_<service>"
    # A MongoDB user of the service's own (production); its password is the secret
    # MONGODB_PASSWORD(_FILE), never part of the URI. Authenticated against its own database.
    mongodb_username: str = ""
    mongodb_auth_source: str = ""  # default: the service's database

    data_dir: Path = Path(".data")
    jwt_public_key_file: Path | None = None  # default: <data_dir>/jwt/public.pem
    # Profiles signs the platform's access tokens with this key (the pair of the public key);
    # required outside development, where the local pair under <data_dir>/jwt is used.
    jwt_private_key_file: Path | None = None
    # An external issuer (integrations): its JWKS and its `iss`. Its tokens are accepted
    # besides the platform's own; its `iss` defaults to jwt_issuer.
    jwt_jwks_url: str | None = None
    jwt_external_issuer: str | None = None
    jwt_issuer: str = "mentorship-local"
    jwt_audience: str = "mentorship"

    # Abuse limits (shared/ratelimit.py): on outside development unless set; budgets in the
    # `limits` notation ("120/minute"), empty for the defaults; counters in this process
    # (memory://) or a shared store (redis://...) for several replicas.
    rate_limits_enabled: bool | None = None
    rate_limit_storage_uri: str = "memory://"
    rate_limit_write: str = ""
    rate_limit_write_per_ip: str = ""
    rate_limit_sign_in: str = ""
    rate_limit_sign_in_per_ip: str = ""
    rate_limit_unsubscribe: str = ""
    rate_limit_unsubscribe_per_ip: str = ""

    log_level: str = "INFO"
    log_json: bool = True

    outbox_poll_interval_ms: int = 50
    outbox_linger_ms: int = 5
    outbox_batch_size: int = 500
    # Events stay in the outbox this long after publication so a lost broker log can be replayed.
    outbox_retention_hours: float = 24 * 14
    # How long a published event must still be readable at its offset before it counts as durable.
    outbox_verify_settle_seconds: float = 5.0
    outbox_verify_interval_seconds: float = 1.0
    # Only the relay holding the lease publishes; a standby takes over within about a second
    # of a clean shutdown, and within this long (plus that second) of a crash.
    outbox_lease_seconds: float = 10.0
    # While idle the relay polls less and less often, up to this (writes in the process wake
    # it at once; the poll serves other replicas' writes).
    outbox_idle_poll_ms: int = 3000
    # Two writers' staging marks can commit out of order: each sweep reads this much again.
    outbox_sweep_grace_ms: int = 100
    # A write slower than the grace to commit is found by a second look this far behind.
    outbox_late_check_seconds: float = 2.0
    # Swept events are removed from their documents this long after staging, when idle.
    outbox_unstage_after_seconds: float = 10.0
    outbox_clean_interval_seconds: float = 5.0
    # A log sequence number reserved but never written is skipped after this long.
    outbox_gap_grace_seconds: float = 5.0
    inbox_retention_hours: float = 24 * 30

    # Idempotency-Key (shared/idempotency.py): answers are kept this long; a first try holds its
    # key this long before a retry may run it again; write conflicts are retried this long.
    idempotency_retention_hours: float = 24.0
    idempotency_claim_seconds: float = 10.0
    idempotency_retry_seconds: float = 10.0

    # /readyz: dependencies are probed every interval (each probe may take up to timeout) and
    # the service says "not ready" once a dependency has failed every probe for the grace.
    readiness_probe_interval_seconds: float = 5.0
    readiness_probe_timeout_seconds: float = 5.0
    readiness_grace_seconds: float = 15.0

    consumer_idle_poll_ms: int = 25
    # An idle consumer polls less and less often, up to this: the first event after a quiet
    # spell waits at most this long (a steady stream, even a slow one, keeps the short pause).
    # Each poll of an idle consumer costs a burst of fetches (noida-db answers an empty fetch
    # at once): at 250 ms the four consumers took ~6 % of a core between them doing nothing.
    consumer_idle_poll_max_ms: int = 1000
    consumer_lag_interval_seconds: float = 10.0
    consumer_max_attempts: int = 4
    consumer_retry_backoff_ms: int = 100

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def port(self) -> int:
        return self.http_port or DEFAULT_PORTS.get(self.service_name, 8000)

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"mentorship_{self.service_name}"

    @property
    def group_instance_id(self) -> str | None:
        if not self.kafka_static_membership:
            return None
        return self.kafka_group_instance_id or f"{self.service_name}-1"

    @property
    def public_key_path(self) -> Path:
        return self.jwt_public_key_file or self.data_dir / "jwt" / "public.pem"
