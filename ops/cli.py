"""`mentorship`: run the whole platform locally and get tokens to call it.

Thin typer layer over ops.stack; the logic (and its tests) lives there.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping
from typing import Annotated

import httpx
import typer

from ops import stack
from ops.infra import tail
from shared.auth import Grant, Kind, Role, ensure_local_keypair, issue_token
from shared.settings import DEFAULT_PORTS

app = typer.Typer(help="Run the mentorship platform locally.", no_args_is_help=True,
                  add_completion=False)


def service_urls(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each service listens, decided as `mentorship up` decides it: `<NAME>_PORT` when
    set, else the URL the running platform recorded, else the default port."""
    env = os.environ if environ is None else environ
    lay = stack.Layout.from_env(env)
    urls = {}
    for name, default in DEFAULT_PORTS.items():
        port = env.get(f"{name.upper()}_PORT")
        if port:
            urls[name] = f"http://127.0.0.1:{int(port)}"
            continue
        proc, url = lay.recorded(name)
        urls[name] = url if proc is not None and proc.alive and url else (
            f"http://127.0.0.1:{default}")
    return urls


@app.command()
def up(
    replicas: Annotated[int | None, typer.Option(
        envvar="REPLICAS", help="Instances of each service (`make up REPLICAS=2`).")] = None,
) -> None:
    """Start database, broker and the four services; wait until all are ready."""
    try:
        stack.up(echo=typer.echo, replicas=replicas)
    except stack.StackError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        typer.echo("Whatever started keeps running: `mentorship status`, `mentorship down`.",
                   err=True)
        raise typer.Exit(1) from exc


@app.command()
def down() -> None:
    """Stop the services, then the broker and the database. Data stays in the data dir."""
    stack.down(echo=typer.echo)


@app.command()
def status() -> None:
    """Show each component, its pid, whether it runs, and where."""
    typer.echo(f"{'COMPONENT':<20} {'PID':>8}  {'STATE':<8} URL")
    for row in stack.status():
        state = "running" if row.alive else "stopped"
        note = f"  ({row.note})" if row.note else ""
        typer.echo(f"{row.name:<20} {row.pid or '-':>8}  {state:<8} {row.url or '-'}{note}")


@app.command()
def token(
    network: Annotated[str | None, typer.Option(help="Network id the token reaches.")] = None,
    role: Annotated[Role | None, typer.Option(
        help="One role in the older sense (mapped to grants; mentor/mentee: no grant).")] = None,
    grant: Annotated[list[str] | None, typer.Option(
        help="A grant: network_admin, institution_coordinator:<id> or "
             "program_coordinator:<id> (repeatable).")] = None,
    kind: Annotated[Kind, typer.Option(help="person, service or operator.")] = Kind.PERSON,
    institution: Annotated[str | None, typer.Option(help="Institution id (with --role).")] = None,
    program: Annotated[list[str] | None, typer.Option(help="Program id (with --role; "
                                                            "repeatable).")] = None,
    person: Annotated[str | None, typer.Option(help="Person id (the subject).")] = None,
    service: Annotated[str | None, typer.Option(help="Calling service (with --kind service).")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print a bearer token signed with the local key (<data dir>/jwt/private.pem), for
    scripts and tests; people sign in through the web app instead."""
    try:
        grants = [Grant.parse(g) for g in grant or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grant") from exc
    if kind != Kind.OPERATOR and not network:
        raise typer.BadParameter("a person's or a service's token names its network",
                                 param_hint="--network")
    private_path, _ = ensure_local_keypair(stack.Layout.from_env().data)
    typer.echo(issue_token(
        private_path.read_bytes(),
        role=role,
        kind=kind,
        grants=grants,
        network_id=network,
        institution_id=institution,
        program_ids=program or [],
        person_id=person,
        service=service,
        ttl_seconds=ttl,
        issuer=os.environ.get("JWT_ISSUER", "mentorship-local"),
        audience=os.environ.get("JWT_AUDIENCE", "mentorship"),
    ))


network_app = typer.Typer(help="Networks: create the first one (platform operator).",
                          no_args_is_help=True)
app.add_typer(network_app, name="network")


@network_app.command("create")
def network_create(
    name: Annotated[str, typer.Argument(help="The network's name; its id is made from it "
                                             "unless --id says otherwise.")],
    admin_email: Annotated[str, typer.Option(help="Email of its first network admin.")],
    network_id: Annotated[str | None, typer.Option("--id", help="Network id.")] = None,
    admin_name: Annotated[str | None, typer.Option(help="The admin's name.")] = None,
    profiles_url: Annotated[str | None, typer.Option(help="Profiles API base URL.")] = None,
) -> None:
    """Create a network and appoint its first network admin, as the platform operator
    (a token signed with the local key)."""
    from shared.settings import DEFAULT_PORTS

    private_path, _ = ensure_local_keypair(stack.Layout.from_env().data)
    operator = issue_token(private_path.read_bytes(), kind=Kind.OPERATOR, network_id=None,
                           subject="operator-cli", ttl_seconds=120,
                           issuer=os.environ.get("JWT_ISSUER", "mentorship-local"),
                           audience=os.environ.get("JWT_AUDIENCE", "mentorship"))
    url = profiles_url or f"http://127.0.0.1:{DEFAULT_PORTS['profiles']}"
    body = {"network_id": network_id or slug(name), "name": name, "admin_email": admin_email,
            **({"admin_name": admin_name} if admin_name else {})}
    try:
        response = httpx.post(f"{url.rstrip('/')}/networks", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {operator}"})
    except httpx.HTTPError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        typer.echo("Is the platform running? `mentorship up`, then `mentorship status`.", err=True)
        raise typer.Exit(1) from exc
    if response.status_code != 201:
        detail = response.json().get("detail") if response.headers.get(
            "content-type", "").startswith("application/json") else response.text
        typer.secho(f"error: {response.status_code} {detail}", err=True, fg="red")
        raise typer.Exit(1)
    created = response.json()
    typer.echo(f"network {created['network_id']} ({created['name']}) created; network admin "
               f"{admin_email} is person {created['admin_person_id']}")
    typer.echo(f"  act as them: mentorship token --network {created['network_id']} "
               f"--person {created['admin_person_id']} --grant network_admin")


def slug(name: str) -> str:
    """A network id from a name: lower case, runs of other characters become one dash."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64]
    if not text:
        raise typer.BadParameter("the name has no letters or digits to make an id of; "
                                 "give --id", param_hint="NAME")
    return text


@app.command()
def seed(
    network: Annotated[str, typer.Option(help="Network id to create or complete.")] = "demo",
    size: Annotated[int, typer.Option(help="How many people.")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same people.")] = 7,
    profiles_url: Annotated[str | None, typer.Option(
        help="Profiles API base URL (default: PROFILES_PORT, else the running platform's).")] = None,
) -> None:
    """Create a realistic demo network through the profiles API (re-running is harmless)."""
    from ops.seed import SeedError
    from ops.seed import seed as run_seed

    private_path, _ = ensure_local_keypair(stack.Layout.from_env().data)
    url = profiles_url or service_urls()["profiles"]
    try:
        result = run_seed(
            url,
            private_key_pem=private_path.read_bytes(),
            network_id=network,
            size=size,
            seed=seed,
            issuer=os.environ.get("JWT_ISSUER", "mentorship-local"),
            audience=os.environ.get("JWT_AUDIENCE", "mentorship"),
            echo=typer.echo,
        )
    except (SeedError, OSError, httpx.HTTPError) as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        typer.echo("Is the platform running? `mentorship up`, then `mentorship status`.", err=True)
        raise typer.Exit(1) from exc
    typer.echo(result.summary())


@app.command()
def demo(
    network: Annotated[str, typer.Option(help="Network id to create and play.")] = "demo",
    months: Annotated[int, typer.Option(min=1, max=12, help="Months of mentoring to play.")] = 6,
    size: Annotated[int, typer.Option(help="How many people the seed creates.")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same story.")] = 7,
) -> None:
    """Seed a network and play months of its programs through the real APIs and events.

    Reaches the services where `mentorship up` started them (`<NAME>_PORT`, else the running
    platform's recorded URLs)."""
    from ops.demo import DemoError, demo_async
    from ops.seed import SeedError

    private_path, _ = ensure_local_keypair(stack.Layout.from_env().data)
    urls = service_urls()
    try:
        result = asyncio.run(demo_async(
            urls, private_key_pem=private_path.read_bytes(), network_id=network, months=months,
            size=size, seed=seed, issuer=os.environ.get("JWT_ISSUER", "mentorship-local"),
            audience=os.environ.get("JWT_AUDIENCE", "mentorship"), echo=typer.echo))
    except (DemoError, SeedError, OSError, httpx.HTTPError) as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        typer.echo("Is the platform running? `mentorship up`, then `mentorship status`.", err=True)
        raise typer.Exit(1) from exc
    typer.echo(result.summary())
    typer.echo(f"Dashboard: {urls['analytics']}/dashboard  (token: `mentorship token "
               f"--network {network} --grant network_admin`)")


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="mongo, kafka, or a service name.")],
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Print the end of a component's log (and keep following it with -f)."""
    path = stack.Layout.from_env().log(name)
    if not path.exists():
        typer.secho(f"no log at {path}", err=True, fg="red")
        raise typer.Exit(1)
    typer.echo(tail(path, lines))
    if follow:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            try:
                while True:
                    chunk = fh.read()
                    if chunk:
                        typer.echo(chunk.decode("utf-8", "replace"), nl=False)
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                pass


@app.command("rebuild-analytics")
def rebuild_analytics() -> None:
    """Replay every event from the start of the topics into fresh analytics projections.

    Stop the analytics service first (`mentorship down` or kill it); it loads the rebuilt
    projections when it starts again.
    """
    import asyncio

    from services.analytics.rebuild import RebuildRefused, rebuild_from_environment

    try:
        done = asyncio.run(rebuild_from_environment(stack.Layout.from_env(), os.environ))
    except RebuildRefused as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(1) from exc
    typer.echo(f"replayed {done['events']} events from {done['partitions']} partitions into "
               f"{done['facts']} facts ({done['rejected']} undecodable skipped)")


if __name__ == "__main__":
    app()
