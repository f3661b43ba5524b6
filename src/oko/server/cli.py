"""`oko server ...`: the central server that edge nodes send their events to.

Every command takes ``--db`` (or ``OKO_SERVER_DB``) and migrates the schema first, so
``oko server add-user admin --role admin`` works on a fresh database.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from oko.server.db import Database
    from oko.server.settings import ServerSettings

app = typer.Typer(no_args_is_help=True, help="Central server: run it, manage nodes and users.")

DbOption = Annotated[str, typer.Option(
    "--db", envvar="OKO_SERVER_DB",
    help="sqlite:///FILE (default oko-server.db here) or postgresql://user:pass@host/db.")]
DataOption = Annotated[Path, typer.Option(
    "--data-dir", envvar="OKO_SERVER_DATA", help="Where snapshots are stored.")]
DEFAULT_DB = "sqlite:///oko-server.db"
DEFAULT_DATA = Path("oko-server-data")


def _settings(db: str, data_dir: Path, **extra: object) -> ServerSettings:
    from pydantic import ValidationError

    from oko.core.errors import ConfigError
    from oko.server.settings import ServerSettings

    try:
        return ServerSettings(db_url=db, data_dir=data_dir, **extra)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from exc


def _open(db_url: str) -> Database:
    from oko.server import migrate
    from oko.server.db import Database

    db = Database(db_url)
    db.check()
    migrate.upgrade(db)
    return db


@app.command()
def run(
    db: DbOption = DEFAULT_DB,
    data_dir: DataOption = DEFAULT_DATA,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(
        help="uvicorn worker processes (use PostgreSQL for more than one).", min=1)] = 1,
    retention_days: Annotated[float | None, typer.Option(
        help="Delete events older than this (default 30; 0 keeps them forever).", min=0)] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="Also ingest from this MQTT broker.")] = None,
    mqtt_port: Annotated[int, typer.Option(help="MQTT broker port.")] = 1883,
    mqtt_topic: Annotated[str, typer.Option(help="MQTT subscription.")] = "oko/+/+/+",
    mqtt_username: Annotated[str | None, typer.Option(envvar="OKO_MQTT_USERNAME")] = None,
    mqtt_password: Annotated[str | None, typer.Option(envvar="OKO_MQTT_PASSWORD")] = None,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, MiB.", min=0.01)] = 16,
    secure_cookies: Annotated[bool, typer.Option(
        help="Mark cookies Secure (when served over HTTPS, e.g. behind a TLS proxy).")] = False,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="Trust X-Forwarded-* from these proxy addresses (comma-separated).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the API and dashboard (migrating the database first)."""
    import logging

    import uvicorn

    from oko.server.app import ServerState, create_app
    from oko.server.settings import SETTINGS_ENV, MqttIngestConfig

    extra: dict = {"max_body_bytes": int(max_body_mb * 2**20), "secure_cookies": secure_cookies}
    if retention_days is not None:
        extra["retention_days"] = retention_days or None
    if mqtt_host:
        extra["mqtt"] = MqttIngestConfig(host=mqtt_host, port=mqtt_port, topic=mqtt_topic,
                                         username=mqtt_username, password=mqtt_password)
    settings = _settings(db, data_dir, **extra)
    state = ServerState.open(settings)  # checks the database and migrates, once
    log = logging.getLogger("oko.server")
    options = {"host": host, "port": port, "log_level": "info", "access_log": access_log,
               "proxy_headers": forwarded_allow_ips is not None,
               "forwarded_allow_ips": forwarded_allow_ips, "timeout_keep_alive": 30}
    print(f"oko server on http://{host}:{port} ({workers} worker(s), database "
          f"{state.db.dialect})", file=sys.stderr)
    if workers == 1:
        uvicorn.run(create_app(state=state), **options)
        return
    if state.db.is_sqlite:
        log.warning("several workers on SQLite share one writer; use PostgreSQL to scale out")
    # the parent runs retention and MQTT ingest once; workers only serve requests
    state.start_background()
    os.environ[SETTINGS_ENV] = settings.model_copy(update={"background": False}).to_env()
    try:
        uvicorn.run("oko.server.app:app_from_env", factory=True, workers=workers, **options)
    finally:
        state.close()


@app.command()
def migrate(db: DbOption = DEFAULT_DB) -> None:
    """Create or upgrade the database schema."""
    from oko.server import migrate as migrations

    database = _open(db)
    print(f"schema at revision {migrations.current_revision(database)}")


@app.command("add-node")
def add_node(name: Annotated[str, typer.Argument(help="Node id (letters, digits, _.-).")],
             db: DbOption = DEFAULT_DB) -> None:
    """Register an edge node and print its API key (shown only this once)."""
    from oko.server.auth import NodeKeys

    key = NodeKeys(_open(db)).create(name)
    print(key)
    print(f"node {name} registered; give the key above to its server sink "
          "(sinks: [{kind: server, url: ..., api_key: ...}])", file=sys.stderr)


@app.command("rotate-key")
def rotate_key(name: str, db: DbOption = DEFAULT_DB) -> None:
    """Give a node a new key (printed once); its old key stops working."""
    from oko.server.auth import NodeKeys

    print(NodeKeys(_open(db)).rotate(name))


@app.command("disable-node")
def disable_node(name: str, enable: Annotated[bool, typer.Option(
        "--enable", help="Enable it again instead.")] = False, db: DbOption = DEFAULT_DB) -> None:
    """Refuse a node's events (its key stops working) or, with --enable, accept them again."""
    from oko.server.auth import NodeKeys

    NodeKeys(_open(db)).set_disabled(name, not enable)
    print(f"node {name} {'enabled' if enable else 'disabled'}", file=sys.stderr)


@app.command("nodes")
def list_nodes(db: DbOption = DEFAULT_DB) -> None:
    """Nodes with health, last contact and channels."""
    from rich.console import Console
    from rich.table import Table

    from oko.server.status import node_status

    table = Table(title="oko nodes")
    for col in ("node", "health", "last seen", "events", "channels"):
        table.add_column(col)
    from oko.server.dashboard import _ago

    for n in node_status(_open(db), 60.0):
        chans = ", ".join(f"{c['id']} ({c['state'] or '?'})" for c in n["channels"])
        table.add_row(n["id"], n["health"], _ago(n["last_seen"]), str(n["events_total"]), chans)
    Console().print(table)


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@app.command("add-user")
def add_user(name: str, role: Annotated[str, typer.Option(help="viewer or admin.")] = "viewer",
             password_stdin: Annotated[bool, typer.Option(
                 "--password-stdin", help="Read the password from standard input.")] = False,
             db: DbOption = DEFAULT_DB) -> None:
    """Create a dashboard/API user (the password is prompted for, or read from stdin)."""
    from oko.core.errors import ConfigError
    from oko.server.auth import ROLES, Users

    if role not in ROLES:
        raise ConfigError(f"--role {role!r}: choose one of {', '.join(ROLES)}")
    database = _open(db)
    Users(database).create(name, _password(password_stdin), role)
    print(f"user {name} ({role}) created", file=sys.stderr)


@app.command("set-password")
def set_password(name: str, password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
                 db: DbOption = DEFAULT_DB) -> None:
    """Change a user's password (and sign out their sessions)."""
    from oko.server.auth import Users

    Users(_open(db)).set_password(name, _password(password_stdin))
    print(f"password of {name} changed", file=sys.stderr)


@app.command()
def retention(db: DbOption = DEFAULT_DB, data_dir: DataOption = DEFAULT_DATA,
              days: Annotated[float, typer.Option(help="Delete events older than this.",
                                                  min=0.001)] = 30.0,
              counts_days: Annotated[float, typer.Option(
                  help="Delete hourly counts older than this.", min=0.001)] = 400.0) -> None:
    """Delete old events, their snapshots and old counts now (e.g. from cron)."""
    import json

    from oko.server.retention import purge

    settings = _settings(db, data_dir, retention_days=days, counts_retention_days=counts_days)
    print(json.dumps(purge(_open(db), settings)))
