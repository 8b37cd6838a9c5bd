"""One-shot setup of the production-shaped stack's secrets (docker-compose.yml, `secrets-init`).

Run once by compose before anything else, as root, into the `platform-secrets` volume; later
runs keep what exists, so passwords and certificates survive restarts. Every consumer gets a
directory of its own, owned by its user and readable by nobody else, and mounts only that
directory (compose's volume `subpath`):

* `<service>/` (uid 10001) for each platform service: its MongoDB password, its Kafka SCRAM
  password, the CA certificate that signed the broker's, and the secrets only that service
  uses (the unsubscribe secret for notifications);
* `web/` (uid 10001): the web app's MongoDB password and the secret its sessions and CSRF
  tokens are signed with (it has no Kafka user: it only calls the services' APIs);
* `mongo/` (uid 999): the root password, the replica set's key file, and `users.json`, the
  password of each service's user, which the init script creates in the service's own
  database only;
* `kafka/` (uid 1000): the broker's key and certificate (PEM), the CA, and `setup.sh`, run by
  `kafka-setup`, which creates each service's SCRAM user, the topics, and ACLs that let each
  service write its own topic, the audit topic and its dead-letter topic, read what it
  consumes, and use its own consumer group: nothing else.

    python -m ops.compose_setup /var/lib/mentorship-secrets

Replace these with your secret manager's files in production (docs/deployment.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import shlex
import sys
from pathlib import Path

from shared.events.topics import AUDIT_TOPICS, dead_letter_topic

SERVICES = ("profiles", "matching", "notifications", "analytics")
# Each has a MongoDB user of its own; the web app publishes and consumes no events, so it has
# no Kafka user.
DATABASE_USERS = (*SERVICES, "web")
# Domain topics each service publishes (its own, by name; each also has its audit topic) and
# consumes (its subscriptions).
PUBLISHES = {
    "profiles": ("mentorship.profiles.v1",),
    "matching": ("mentorship.matching.v1",),
    "notifications": ("mentorship.notifications.v1",),
    "analytics": (),
}
OWN_SECRETS = {"notifications": ("unsubscribe_secret",), "web": ("web_session_secret",)}
UIDS = {"mongo": 999, "kafka": 1000, **{s: 10001 for s in DATABASE_USERS}}
PARTITIONS = 6


def consumes(service: str) -> tuple[str, ...]:
    """The topics a service subscribes to, from its own definition."""
    from importlib import import_module

    return tuple(import_module(f"services.{service}.app").DEFINITION.subscriptions)


def acls(service: str) -> list[tuple[str, str, str]]:
    """(operation, resource type, name) the service's Kafka user is allowed."""
    rules = [("Describe", "topic", "mentorship.")]  # list and describe topics (prefixed)
    rules += [("Write", "topic", t)
              for t in (*PUBLISHES[service], AUDIT_TOPICS[service], dead_letter_topic(service))]
    # What it consumes, and what it publishes: the outbox verifier reads its records back.
    rules += [("Read", "topic", t)
              for t in (*consumes(service), *PUBLISHES[service], AUDIT_TOPICS[service])]
    rules += [("Read", "group", service), ("IdempotentWrite", "cluster", "kafka-cluster")]
    return list(dict.fromkeys(rules))


def all_topics() -> list[str]:
    from shared.events.topics import ALL_TOPICS

    return [*ALL_TOPICS, *(dead_letter_topic(s) for s in SERVICES)]


def setup_script(passwords: dict[str, str]) -> str:
    """The commands `kafka-setup` runs against the broker's local listener."""
    bin_, server = "/opt/kafka/bin", "--bootstrap-server 127.0.0.1:9094"
    lines = ["#!/bin/bash", "set -euo pipefail"]
    for service in SERVICES:
        config = shlex.quote(f"SCRAM-SHA-512=[password={passwords[service]}]")
        lines.append(f"{bin_}/kafka-configs.sh {server} --alter --entity-type users "
                     f"--entity-name {service} --add-config {config}")
    for topic in all_topics():
        lines.append(f"{bin_}/kafka-topics.sh {server} --create --if-not-exists --topic {topic} "
                     f"--partitions {PARTITIONS} --replication-factor 1")
    for service in SERVICES:
        for operation, kind, name in acls(service):
            where = {"topic": f"--topic {name}" + (" --resource-pattern-type prefixed"
                                                   if name.endswith(".") else ""),
                     "group": f"--group {name}", "cluster": "--cluster"}[kind]
            lines.append(f"{bin_}/kafka-acls.sh {server} --add --allow-principal User:{service} "
                         f"--operation {operation} {where}")
    lines.append('echo "Kafka users, topics and ACLs are in place."')
    return "\n".join(lines) + "\n"


def _write(path: Path, content: str | bytes, owner: str, *, overwrite: bool = False) -> None:
    if path.exists() and not overwrite:
        return
    if path.exists():
        path.chmod(0o600)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(data)
    path.chmod(0o400)
    if os.geteuid() == 0:
        os.chown(path, UIDS[owner], UIDS[owner])
        os.chown(path.parent, UIDS[owner], UIDS[owner])
        path.parent.chmod(0o500)


def _read_or_new(path: Path) -> str:
    return path.read_text().strip() if path.exists() else secrets.token_urlsafe(32)


def _certificates(root: Path) -> tuple[bytes, bytes]:
    """A CA and the broker's certificate (names kafka and localhost), as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mentorship platform CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafka")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("kafka"), x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    server = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()) + cert.public_bytes(pem)
    return ca.public_bytes(pem), server


def main(root: Path) -> None:
    mongo_users = {s: _read_or_new(root / s / "mongodb_password") for s in DATABASE_USERS}
    kafka_users = {s: _read_or_new(root / s / "kafka_sasl_password") for s in SERVICES}
    if (root / "kafka" / "ca.pem").exists():
        ca = (root / "kafka" / "ca.pem").read_bytes()
        server = b""
    else:
        ca, server = _certificates(root)
    for service in SERVICES:
        _write(root / service / "mongodb_password", mongo_users[service], service)
        _write(root / service / "kafka_sasl_password", kafka_users[service], service)
        _write(root / service / "ca.pem", ca, service)
    for service in DATABASE_USERS:
        if service not in SERVICES:
            _write(root / service / "mongodb_password", mongo_users[service], service)
        for name in OWN_SECRETS.get(service, ()):
            _write(root / service / name, secrets.token_urlsafe(48), service)
    _write(root / "mongo" / "root_password", secrets.token_urlsafe(32), "mongo")
    # mongod wants 6-1024 characters of the base64 alphabet.
    _write(root / "mongo" / "keyfile", base64.b64encode(secrets.token_bytes(96)).decode(), "mongo")
    _write(root / "mongo" / "users.json", json.dumps(mongo_users), "mongo")
    _write(root / "kafka" / "ca.pem", ca, "kafka")
    if server:
        _write(root / "kafka" / "server.pem", server, "kafka")
    # Derived from the code (users, topics, ACLs): written again on every run.
    _write(root / "kafka" / "setup.sh", setup_script(kafka_users), "kafka", overwrite=True)
    print(f"platform secrets ready in {root}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/lib/mentorship-secrets"))
