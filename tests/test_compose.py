"""docker-compose.yml, Dockerfile and .dockerignore agree with the code.

Docker cannot run here, so the production-shaped stack is checked statically: the expectations
come from the code (DEFAULT_PORTS, ServiceSettings, the AsyncAPI servers) wherever they can, and
each service's environment is fed to ServiceSettings to see what the process would really use.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ipaddress

import pytest
import yaml

from ops import compose_setup
from shared.events import asyncapi
from services.web.config import WebSettings
from shared.secrets import SECRETS
from shared.settings import DEFAULT_PORTS, ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SETTINGS_VARS = {name.upper() for name in ServiceSettings.model_fields}
# The web app reads the services' endpoints and its identity providers too.
SETTINGS_VARS |= {name.upper() for name in WebSettings.model_fields}
SECRET_FILE_VARS = {f"{name}_FILE" for name in SECRETS}
# Read by uvicorn itself: whose X-Forwarded-For it believes.
UVICORN_VARS = {"FORWARDED_ALLOW_IPS"}
# Fields the code sets itself: an environment value would be silently ignored.
IGNORED_VARS = {"SERVICE_NAME"}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE.is_file(), "docker-compose.yml is missing"
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document.get("services"), dict), "docker-compose.yml has no services"
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _interpolate(value: Any) -> str:
    """A compose value as the container sees it when no override is set (`${X:-d}` -> d)."""
    return INTERPOLATION.sub(lambda m: m["default"] or "", str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): _interpolate(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    ports: dict[int, int] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                ports[int(entry["target"])] = int(entry["published"])
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) >= 2:
            ports[int(parts[-1])] = int(parts[-2])
    return ports


def _healthcheck(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source (named volume or host path)."""
    mounts = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts[entry["target"]] = entry.get("source", "")
        else:
            source, target = str(entry).split(":")[:2]
            mounts[target] = source
    return mounts


def _platform_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every compose service that runs one of the platform's services."""
    return {
        name: svc
        for name, svc in services.items()
        if any(arg.startswith("services.") for arg in _command(svc))
    }


def _settings(monkeypatch: pytest.MonkeyPatch, name: str, env: dict[str, str]) -> ServiceSettings:
    """What ServiceSettings reads inside the container (nothing leaks from this machine)."""
    for var in SETTINGS_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    return ServiceSettings(service_name=name)


def _kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return _environment(services["kafka"])


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` -> {NAME: (host, port)}."""
    result = {}
    for item in filter(None, (v.strip() for v in value.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


# ---------------------------------------------------------------- the four services


@pytest.mark.parametrize("name", sorted(DEFAULT_PORTS))
def test_service_runs_its_module_from_the_dockerfile(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert name in services, f"docker-compose.yml has no {name} service"
    svc = services[name]
    command = _command(svc)
    assert command[:3] == ["python", "-m", f"services.{name}"], command
    build = svc.get("build")
    assert isinstance(build, dict), f"{name} is not built from the repository"
    assert (ROOT / build.get("context", ".")).resolve() == ROOT
    assert build.get("dockerfile", "Dockerfile") == DOCKERFILE.name
    assert svc.get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", sorted(DEFAULT_PORTS))
def test_service_environment_points_at_the_stack(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = _environment(services[name])
    # The web app neither consumes nor publishes events: no consumer group instance.
    kafka = ("KAFKA_GROUP_INSTANCE_ID",) if name in compose_setup.SERVICES else ()
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "HTTP_PORT", "HTTP_HOST", *kafka):
        assert env.get(var), f"{name}: {var} is not set (the embedded default would be used)"
    assert env["HTTP_PORT"] == str(DEFAULT_PORTS[name])
    assert env["HTTP_HOST"] == "0.0.0.0", f"{name} must listen on all interfaces in a container"
    assert env.get("JWT_PUBLIC_KEY_FILE") or env.get("JWT_JWKS_URL"), (
        f"{name}: without JWT_PUBLIC_KEY_FILE / JWT_JWKS_URL it would generate its own key pair"
    )


def test_environment_names_are_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    platform = _platform_services(services)
    assert set(DEFAULT_PORTS) <= set(platform)
    for name, svc in platform.items():
        unknown = set(_environment(svc)) - SETTINGS_VARS - SECRET_FILE_VARS - UVICORN_VARS
        assert not unknown, f"{name}: {sorted(unknown)} are not ServiceSettings fields (typo?)"
        ignored = set(_environment(svc)) & IGNORED_VARS
        assert not ignored, f"{name}: {sorted(ignored)} are set by the code, not the environment"


@pytest.mark.parametrize("name", sorted(DEFAULT_PORTS))
def test_settings_the_service_would_read(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(monkeypatch, name, _environment(services[name]))
    assert settings.port == DEFAULT_PORTS[name]
    assert settings.kafka_idempotent_producer, "Apache Kafka supports the idempotent producer"
    assert settings.group_instance_id, "static membership needs a group instance id"
    uri = urlsplit(settings.mongodb_uri)
    query = {k.lower(): v for k, v in parse_qs(uri.query).items()}
    assert query.get("replicaset"), "transactions need the replica set"
    assert query.get("retrywrites", ["true"]) != ["false"], "retryable writes stay on"
    assert query.get("directconnection", ["false"]) != ["true"]
    if not settings.jwt_jwks_url:
        key = settings.public_key_path
        mounts = _volume_mounts(services[name])
        assert any(key.is_relative_to(target) for target in mounts), (
            f"{name}: {key} is not on a mounted volume"
        )


def test_group_instance_ids_are_unique(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids: dict[str, str] = {}
    for name, svc in _platform_services(services).items():
        service = _command(svc)[2].removeprefix("services.")
        gid = _settings(monkeypatch, service, _environment(svc)).group_instance_id
        assert gid not in ids, f"{name} and {ids.get(gid)} share group.instance.id {gid}"
        ids[gid] = name


@pytest.mark.parametrize("name", sorted(DEFAULT_PORTS))
def test_port_is_published_and_health_checked(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    svc = services[name]
    port = DEFAULT_PORTS[name]
    assert _published(svc).get(port) == port, f"{name}: container port {port} is not published"
    check = _healthcheck(svc)
    assert re.search(rf"//(127\.0\.0\.1|localhost):{port}/readyz\b", check), check
    assert "CMD" in check, "exec form: no shell needed in the slim image"
    # The slim image has no curl or wget: the check must use what it has.
    assert "curl" not in check and "wget" not in check


@pytest.mark.parametrize("name", sorted(DEFAULT_PORTS))
def test_service_waits_for_healthy_infrastructure(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    deps = _depends_on(services[name])
    assert deps.get("kafka") == "service_healthy"
    assert deps.get("mongo") == "service_healthy"
    for dep, condition in deps.items():
        assert dep in services, f"{name} depends on unknown service {dep}"
        if condition == "service_healthy":
            assert services[dep].get("healthcheck"), f"{dep} has no health check"


def test_host_ports_do_not_collide(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[int, str] = {}
    for name, svc in services.items():
        for host_port in _published(svc).values():
            assert host_port not in seen, f"{name} and {seen[host_port]} publish {host_port}"
            seen[host_port] = name


# ---------------------------------------------------------------- Kafka


def test_kafka_is_kraft_from_the_official_image(services: dict[str, dict[str, Any]]) -> None:
    assert not [n for n, s in services.items() if "zookeeper" in (n + str(s.get("image"))).lower()]
    kafka = services["kafka"]
    image = str(kafka.get("image"))
    match = re.fullmatch(r"apache/kafka:(\d+)\.(\d+)\.(\d+)", image)
    assert match and match[1] in ("3", "4"), f"pin an apache/kafka 3.x/4.x release, not {image}"
    env = _kafka_env(services)
    assert not [k for k in env if "ZOOKEEPER" in k]
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert roles == {"broker", "controller"}
    assert env.get("CLUSTER_ID"), "KRaft formats the storage with CLUSTER_ID"
    assert env.get("KAFKA_NODE_ID")
    controllers = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    listeners = _listeners(env["KAFKA_LISTENERS"])
    assert set(controllers) <= set(listeners)
    node, _, voter = voters.partition("@")
    assert node == env["KAFKA_NODE_ID"]
    assert voter.rpartition(":")[2] == str(listeners[controllers[0]][1])
    protocol_map = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocol_map)


def test_services_reach_kafka_on_an_advertised_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    env = _kafka_env(services)
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    controllers = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    assert not controllers & set(advertised), "the controller listener is not advertised"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    by_address = {f"{host}:{port}": name for name, (host, port) in advertised.items()}
    for name in DEFAULT_PORTS:
        bootstrap = _environment(services[name])["KAFKA_BOOTSTRAP_SERVERS"]
        for server in bootstrap.split(","):
            host = server.rpartition(":")[0]
            assert host in services or host == services["kafka"].get("hostname"), server
            # The broker hands out its advertised address: it must be the one services can use.
            assert server in by_address, f"{name}: {server} is not an advertised listener"
            assert listeners[by_address[server]][1] == int(server.rpartition(":")[2])


def test_kafka_health_check_and_storage(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    check = _healthcheck(kafka)
    assert "/opt/kafka/bin/kafka-topics.sh" in check and "--bootstrap-server" in check
    log_dirs = _kafka_env(compose["services"])["KAFKA_LOG_DIRS"]
    mounts = _volume_mounts(kafka)
    assert log_dirs in mounts, "the log directory must be on a volume"
    assert mounts[log_dirs] in (compose.get("volumes") or {}), "use a named volume"


def test_asyncapi_production_server_is_the_compose_kafka(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in DEFAULT_PORTS:
        assert _environment(services[name])["KAFKA_BOOTSTRAP_SERVERS"] == (
            asyncapi.PRODUCTION_BOOTSTRAP
        )


# ---------------------------------------------------------------- MongoDB


def test_mongo_is_a_replica_set_that_initiates_itself(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mongo = services["mongo"]
    image = str(mongo.get("image"))
    assert re.fullmatch(r"mongo:\d+\.\d+(\.\d+)?", image), f"pin the official mongo image: {image}"
    command = _command(mongo)
    assert "--replSet" in command
    repl_set = command[command.index("--replSet") + 1]
    check = _healthcheck(mongo)
    assert "mongosh" in check
    assert "rs.initiate" in check and f"'{repl_set}'" in check
    assert "isWritablePrimary" in check or "PRIMARY" in check
    member = re.search(r"host:\s*'([^']+)'", check)
    assert member, "the replica set member needs an address the services can resolve"
    mounts = _volume_mounts(mongo)
    assert mounts.get("/data/db") in (compose.get("volumes") or {}), "data on a named volume"
    for name in DEFAULT_PORTS:
        uri = urlsplit(_environment(services[name])["MONGODB_URI"])
        assert parse_qs(uri.query)["replicaSet"] == [repl_set]
        # The driver connects to the members the replica set config names.
        assert uri.netloc == member[1], f"{name} uses {uri.netloc}, the member is {member[1]}"


# ---------------------------------------------------------------- JWT keys and volumes


def test_jwt_keys_come_from_the_keygen_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in DEFAULT_PORTS:
        env = _environment(services[name])
        if not env.get("JWT_PUBLIC_KEY_FILE"):
            continue
        key = Path(env["JWT_PUBLIC_KEY_FILE"])
        mounts = _volume_mounts(services[name])
        target = next(t for t in mounts if key.is_relative_to(t))
        volume = mounts[target]
        writers = [
            other for other, svc in services.items()
            if other != name and volume in _volume_mounts(svc).values()
            and not any(str(v).endswith(":ro") for v in svc.get("volumes") or [])
        ]
        assert writers, f"nothing writes the {volume} volume {name} reads its key from"
        assert _depends_on(services[name]).get(writers[0]) == "service_completed_successfully"


def test_profiles_alone_signs_tokens_with_the_pair_of_the_verifying_key(
    compose: dict[str, Any],
) -> None:
    """Outside development profiles refuses to start without JWT_PRIVATE_KEY_FILE; the key it
    signs with is the pair of the public key every service verifies with."""
    services = compose["services"]
    signers = [n for n in DEFAULT_PORTS if _environment(services[n]).get("JWT_PRIVATE_KEY_FILE")]
    assert signers == ["profiles"]
    env = _environment(services["profiles"])
    private, public = Path(env["JWT_PRIVATE_KEY_FILE"]), Path(env["JWT_PUBLIC_KEY_FILE"])
    assert private.parent == public.parent and private.name == "private.pem"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for source in _volume_mounts(svc).values():
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


# ---------------------------------------------------------------- Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _copy_sources() -> list[str]:
    sources = []
    for keyword, rest in _dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        if any(a.startswith("--from") for a in shlex.split(rest)):
            continue
        sources.extend(args[:-1])
    return sources


def test_dockerfile_builds_the_services(services: dict[str, dict[str, Any]]) -> None:
    assert DOCKERFILE.is_file()
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install (-r|--requirement) requirements\.lock", runs)
    assert "pip install --no-deps ." in runs
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "run as a non-root user"
    sources = _copy_sources()
    assert "requirements.lock" in sources and "pyproject.toml" in sources
    # setuptools packages every top-level package the services import.
    for package in ("shared", "services", "ops"):
        assert package in sources, f"the image lacks {package}/"


def test_copy_sources_exist_and_reach_the_build_context() -> None:
    patterns = [
        p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    for source in _copy_sources():
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repo"
        excluded = [p for p in patterns if fnmatch.fnmatch(source, p.rstrip("/"))]
        assert not excluded, f".dockerignore {excluded} removes {source} from the context"


def test_dockerignore_keeps_secrets_and_bulk_out() -> None:
    patterns = {p.strip().rstrip("/") for p in DOCKERIGNORE.read_text().splitlines()}
    for needed in (".venv", ".data", ".git"):
        assert needed in patterns, f".dockerignore must exclude {needed}"


# ---------------------------------------------------------------- security


def _secrets_mount(service: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The platform-secrets mount (long syntax) that holds `path`, if any."""
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict) and entry.get("source") == "platform-secrets" and Path(
            path
        ).is_relative_to(entry["target"]):
            return entry
    return None


@pytest.mark.parametrize("name", sorted(DEFAULT_PORTS))
def test_services_run_in_production_with_every_secret_from_its_own_files(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = _environment(services[name])
    assert env.get("ENVIRONMENT") == "production", f"{name}: secrets are generated in development"
    assert not set(env) & set(SECRETS), f"{name}: a secret's value is in the environment"
    files = {var: path for var, path in env.items() if var in SECRET_FILE_VARS}
    needed = ({"MONGODB_PASSWORD_FILE", "KAFKA_SASL_PASSWORD_FILE"} if name in compose_setup.SERVICES
              else {"MONGODB_PASSWORD_FILE", "WEB_SESSION_SECRET_FILE"})
    assert needed <= set(files)
    for var, path in files.items():
        mount = _secrets_mount(services[name], path)
        assert mount, f"{name}: {var}={path} is on no platform-secrets mount"
        assert mount.get("read_only") is True
        # Only its own directory: a service never sees another's passwords.
        assert (mount.get("volume") or {}).get("subpath") == name
    secret_dirs = set(compose_setup.DATABASE_USERS)
    assert set(DEFAULT_PORTS) == secret_dirs, "secrets-init makes a directory per service"
    deps = _depends_on(services[name])
    assert deps.get("secrets-init") == deps.get("kafka-setup") == "service_completed_successfully"


def test_mongo_requires_authentication_and_each_service_has_its_own_user(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    mongo = services["mongo"]
    command = _command(mongo)
    assert "--keyFile" in command, "a replica set with auth authenticates its members"
    key_file = command[command.index("--keyFile") + 1]
    env = _environment(mongo)
    assert env.get("MONGO_INITDB_ROOT_USERNAME") and env.get("MONGO_INITDB_ROOT_PASSWORD_FILE")
    assert "MONGO_INITDB_ROOT_PASSWORD" not in env
    for path in (key_file, env["MONGO_INITDB_ROOT_PASSWORD_FILE"]):
        assert (_secrets_mount(mongo, path) or {}).get("volume", {}).get("subpath") == "mongo"
    init = [e for e in mongo.get("volumes") or [] if isinstance(e, str)
            and ":/docker-entrypoint-initdb.d/" in e]
    assert init, "an init script creates the services' users"
    script = (ROOT / init[0].split(":")[0]).read_text()
    assert 'db.getSiblingDB(database).createUser' in script
    assert 'roles: [{ role: "readWrite", db: database }]' in script  # its own database only
    assert '"mentorship_" + service' in script
    assert "root_password" in _healthcheck(mongo), "the health check authenticates"
    for name in DEFAULT_PORTS:
        env = _environment(services[name])
        assert env.get("MONGODB_USERNAME") == name
        assert "@" not in env["MONGODB_URI"], "no credentials in the URI"
        settings = _settings(monkeypatch, name, env)
        assert settings.database_name == f"mentorship_{name}", "the database its user may use"


def test_kafka_takes_only_sasl_scram_over_tls_from_other_containers(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _kafka_env(services)
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener, (host, _) in _listeners(env["KAFKA_LISTENERS"]).items():
        if protocols[listener] != "SASL_SSL":
            assert host == "127.0.0.1", f"{listener} is {protocols[listener]} beyond loopback"
        else:
            jaas = f"KAFKA_LISTENER_NAME_{listener}_SCRAM___SHA___512_SASL_JAAS_CONFIG"
            assert "ScramLoginModule" in env.get(jaas, ""), f"{listener} has no SCRAM login"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_SSL_KEYSTORE_TYPE"] == env["KAFKA_SSL_TRUSTSTORE_TYPE"] == "PEM"
    for var in ("KAFKA_SSL_KEYSTORE_LOCATION", "KAFKA_SSL_TRUSTSTORE_LOCATION"):
        assert (_secrets_mount(services["kafka"], env[var]) or {}).get("volume", {}).get(
            "subpath") == "kafka"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:ANONYMOUS"  # the loopback listeners only
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    by_address = {f"{host}:{port}": name for name, (host, port) in advertised.items()}
    for name in DEFAULT_PORTS:
        service_env = _environment(services[name])
        settings = _settings(monkeypatch, name, service_env)
        assert protocols[by_address[settings.kafka_bootstrap_servers]] == "SASL_SSL"
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_mechanism == env["KAFKA_SASL_ENABLED_MECHANISMS"]
        assert settings.kafka_ssl_cafile and _secrets_mount(
            services[name], str(settings.kafka_ssl_cafile))


def test_kafka_acls_let_each_service_use_its_own_topics_and_group_only(
    services: dict[str, dict[str, Any]],
) -> None:
    setup = services["kafka-setup"]
    assert setup.get("network_mode") == "service:kafka", "it reaches the loopback listener"
    script = _command(setup)[-1]
    assert (_secrets_mount(setup, script) or {}).get("volume", {}).get("subpath") == "kafka"
    owned = {"profiles": "mentorship.profiles.v1", "matching": "mentorship.matching.v1",
             "notifications": "mentorship.notifications.v1"}
    assert set(compose_setup.SERVICES) == set(DEFAULT_PORTS) - {"web"}, "the web app has no Kafka user"
    for name in compose_setup.SERVICES:
        rules = compose_setup.acls(name)
        writes = {n for op, kind, n in rules if op == "Write"}
        assert writes == {*(
            [owned[name]] if name in owned else []), f"mentorship.audit.{name}.v1",
            f"mentorship.deadletter.{name}"}
        reads = {n for op, kind, n in rules if op == "Read" and kind == "topic"}
        assert reads == {*compose_setup.consumes(name), *writes} - {f"mentorship.deadletter.{name}"}
        assert {n for op, kind, n in rules if kind == "group"} == {name}
    script_text = compose_setup.setup_script({s: "pw" for s in compose_setup.SERVICES})
    assert script_text.count("--entity-type users") == len(compose_setup.SERVICES)
    assert "--allow-principal User:profiles --operation Write --topic mentorship.profiles.v1" in (
        script_text)


def test_only_profiles_mounts_the_token_signing_key(services: dict[str, dict[str, Any]]) -> None:
    """Whoever holds the private key can mint any token: the others get the public half only."""
    def volumes_of(name: str) -> list[str]:
        return [v.split(":")[0] for v in services[name].get("volumes") or [] if isinstance(v, str)]

    for name in DEFAULT_PORTS:
        has_private = "jwt-keys" in volumes_of(name)
        assert has_private == (name == "profiles"), f"{name} mounts jwt-keys: {volumes_of(name)}"
        if name != "profiles":
            assert "jwt-public" in volumes_of(name)


def test_services_believe_forwarded_addresses_from_the_web_app_only(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Per-address limits need the browser's address, which the web app forwards; nobody
    else may name an address (a published port arrives through Docker's gateway)."""
    web_address = services["web"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(web_address) in ipaddress.ip_network(subnet)
    for name in DEFAULT_PORTS:
        if name != "web":
            assert _environment(services[name])["FORWARDED_ALLOW_IPS"] == web_address


# ---------------------------------------------------------------- high availability

COMPOSE_HA = ROOT / "docker-compose.ha.yml"


@pytest.fixture(scope="module")
def ha() -> dict[str, Any]:
    assert COMPOSE_HA.is_file(), "docker-compose.ha.yml is missing"
    return yaml.safe_load(COMPOSE_HA.read_text())


def _ha_kafka(ha: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: _environment(svc) for name, svc in ha["services"].items()
            if str(svc.get("image", "")).startswith("apache/kafka:")}


def _ha_mongo(ha: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in ha["services"].items()
            if str(svc.get("image", "")).startswith("mongo:")}


def test_ha_runs_two_instances_of_each_service_each_its_own_member(
    ha: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = _platform_services(ha["services"])
    by_service: dict[str, list[str]] = {}
    for name, svc in platform.items():
        by_service.setdefault(_command(svc)[2].removeprefix("services."), []).append(name)
    assert {s: len(n) for s, n in by_service.items()} == {s: 2 for s in DEFAULT_PORTS}
    ids, published = set(), []
    for name, svc in platform.items():
        env = _environment(svc)
        assert not set(env) - SETTINGS_VARS, f"{name}: {sorted(set(env) - SETTINGS_VARS)}"
        service = _command(svc)[2].removeprefix("services.")
        settings = _settings(monkeypatch, service, env)
        assert settings.port == DEFAULT_PORTS[service]
        assert settings.group_instance_id not in ids, f"{name} reuses a group member id"
        ids.add(settings.group_instance_id)
        assert _published(svc), f"{name} publishes no port"
        published += list(_published(svc).values())
        assert re.search(rf"//127\.0\.0\.1:{settings.port}/readyz\b", _healthcheck(svc))
    assert len(published) == len(set(published)), "two instances publish the same host port"


def test_ha_topics_are_replicated_across_the_brokers_the_settings_name(
    ha: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    brokers = _ha_kafka(ha)
    assert len(brokers) == 3, "three brokers: one can fail with min.insync.replicas 2"
    assert len({env["CLUSTER_ID"] for env in brokers.values()}) == 1
    node_ids = {env["KAFKA_NODE_ID"] for env in brokers.values()}
    assert len(node_ids) == 3
    advertised = set()
    for name, env in brokers.items():
        assert {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")} == {"broker", "controller"}
        voters = dict(v.split("@") for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        listeners = _listeners(env["KAFKA_LISTENERS"])
        controller_port = listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]][1]
        assert voters == {env2["KAFKA_NODE_ID"]: f"{other}:{controller_port}"
                          for other, env2 in brokers.items()}, name
        plain = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        assert plain[0] == ha["services"][name]["hostname"] == name
        advertised.add(f"{plain[0]}:{plain[1]}")
        host = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])["HOST"]
        assert _published(ha["services"][name]).get(listeners["HOST"][1]) == host[1]
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name, svc in _platform_services(ha["services"]).items():
        service = _command(svc)[2].removeprefix("services.")
        settings = _settings(monkeypatch, service, _environment(svc))
        assert set(settings.kafka_bootstrap_servers.split(",")) == advertised, name
        assert settings.kafka_replication_factor == len(brokers), name
        assert 2 <= settings.kafka_min_insync_replicas < settings.kafka_replication_factor, name
        assert settings.kafka_topic_partitions >= 2, "room for both instances' consumers"
        for env in brokers.values():
            assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == settings.kafka_replication_factor
            assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == settings.kafka_min_insync_replicas
            assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == len(brokers)
            assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == settings.kafka_min_insync_replicas


def test_ha_mongodb_is_a_three_member_replica_set_the_services_know_whole(
    ha: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    members = _ha_mongo(ha)
    assert len(members) == 3
    sets = set()
    for svc in members.values():
        command = _command(svc)
        sets.add(command[command.index("--replSet") + 1])
        assert _volume_mounts(svc).get("/data/db") in (ha.get("volumes") or {})
    [repl_set] = sets
    assert len({_volume_mounts(s)["/data/db"] for s in members.values()}) == 3
    initiators = [name for name, svc in members.items() if "rs.initiate" in _healthcheck(svc)]
    assert len(initiators) == 1
    [initiator] = initiators
    hosts = set(re.findall(r"host:\s*'([^']+)'", _healthcheck(members[initiator])))
    assert hosts == {f"{svc['hostname']}:27017" for svc in members.values()}
    for name, svc in _platform_services(ha["services"]).items():
        service = _command(svc)[2].removeprefix("services.")
        uri = urlsplit(_settings(monkeypatch, service, _environment(svc)).mongodb_uri)
        query = {k.lower(): v for k, v in parse_qs(uri.query).items()}
        assert set(uri.netloc.split(",")) == hosts, f"{name} does not list every member"
        assert query["replicaset"] == [repl_set]
        assert query.get("w") == ["majority"], "an acknowledged write survives a lost member"
        assert query.get("retrywrites", ["true"]) != ["false"]
        # The initiating member is healthy once the set has a primary.
        assert _depends_on(svc).get(initiator) == "service_healthy", name


def test_ha_volumes_are_declared_and_the_keys_come_from_keygen(ha: dict[str, Any]) -> None:
    declared = set(ha.get("volumes") or {})
    for name, svc in ha["services"].items():
        for source in _volume_mounts(svc).values():
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    for name, svc in _platform_services(ha["services"]).items():
        assert _depends_on(svc).get("keygen") == "service_completed_successfully", name
        for broker in _ha_kafka(ha):
            assert _depends_on(svc).get(broker) == "service_healthy", name


def test_ha_web_reaches_every_running_instance_and_profiles_alone_signs(
    ha: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web app calls each service by a name both its instances answer to, so losing one
    instance does not cut the web app off; only profiles' instances hold the signing key."""
    platform = _platform_services(ha["services"])
    aliases: dict[str, set[str]] = {}
    for name, svc in platform.items():
        for alias in ((svc.get("networks") or {}).get("default") or {}).get("aliases", []):
            aliases.setdefault(alias, set()).add(name)
    webs = [name for name, svc in platform.items() if _command(svc)[2] == "services.web"]
    assert len(webs) == 2
    for web in webs:
        env = _environment(platform[web])
        for service in (s for s in DEFAULT_PORTS if s != "web"):
            url = urlsplit(env[f"{service.upper()}_URL"])
            assert url.port == DEFAULT_PORTS[service], (web, service)
            assert {_command(platform[n])[2] for n in aliases.get(url.hostname, ())} == {
                f"services.{service}"}, f"{web}: {url.hostname} is not {service}'s alias"
            assert len(aliases[url.hostname]) == 2, f"{web}: {url.hostname} names one instance"
    signers = {name for name, svc in platform.items() if _environment(svc).get("JWT_PRIVATE_KEY_FILE")}
    assert signers == {n for n, svc in platform.items() if _command(svc)[2] == "services.profiles"}


def test_links_in_messages_and_sign_in_links_point_at_the_web_app(
    services: dict[str, dict[str, Any]],
) -> None:
    """Notifications writes the links in emails and profiles the sign-in links: both need the
    address people open, or every link points at the embedded default."""
    web = _environment(services["web"])["APP_URL"]
    for name in ("profiles", "notifications"):
        assert _environment(services[name]).get("APP_URL") == web, name
