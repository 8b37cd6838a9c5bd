"""Secrets every service reads the same way: never a default baked into the code.

A secret comes from the environment (`NAME`) or a file named there (`NAME_FILE`, the way
Docker and Kubernetes mount secrets). In development (`ENVIRONMENT=development`, the default of
`make up` and the tests) a missing secret is generated once into `<data dir>/secrets/<name>`
with mode 0600, like the local JWT key pair, so every process of one platform shares it and a
restart keeps it. Anywhere else a missing secret stops the service at start with a message that
says which variable to set: a platform that silently signs links with a public string is worse
than one that does not start.
"""

from __future__ import annotations

import os
import secrets as _random
from collections.abc import Mapping
from pathlib import Path

DEVELOPMENT = "development"

# Every secret a service reads, and what it is for: production gives each as a file
# (`<NAME>_FILE`; docker-compose.yml, checked by tests/test_compose.py), never as a value in
# the environment or a URI.
SECRETS: dict[str, str] = {
    "MONGODB_PASSWORD": "the password of the service's own MongoDB user (shared/connections.py)",
    "KAFKA_SASL_PASSWORD": "the password of the service's own Kafka SCRAM user",
    "UNSUBSCRIBE_SECRET": "signs the one-click unsubscribe links of emails (notifications)",
    "WEB_SESSION_SECRET": "signs the web app's CSRF tokens before sign-in (web)",
}


class MissingSecret(RuntimeError):
    """A required secret is not configured outside development."""


def read_secret(
    name: str,
    *,
    environment: str,
    data_dir: Path,
    environ: Mapping[str, str] | None = None,
    min_length: int = 32,
) -> str:
    """The value of secret `name` (e.g. "UNSUBSCRIBE_SECRET"); see the module docstring."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if not value and file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise MissingSecret(f"{name}_FILE={file_name} cannot be read: {exc.strerror}") from exc
    if value:
        if len(value) < min_length:
            raise MissingSecret(f"{name} must be at least {min_length} characters long.")
        return value
    if environment != DEVELOPMENT:
        raise MissingSecret(
            f"{name} is not set. Outside development (ENVIRONMENT={environment}) every secret "
            f"must be given: set {name}, or {name}_FILE to a file that holds it."
        )
    return _generated(data_dir / "secrets" / name.lower())


def _generated(path: Path) -> str:
    """Create the development secret once (atomically, so racing processes agree)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = _random.token_urlsafe(48)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
