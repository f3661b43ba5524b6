"""Fixtures and helpers shared by the central-server tests (tests/test_server_*.py).

- ``db_url``: every test that takes it runs twice, on SQLite (always) and on a real
  PostgreSQL started once per session in a temporary directory (skipped when Debian's
  postgresql is not installed; ``make test`` installs it), each test in a fresh database.
- ``server``: an in-process app with an admin, a viewer and a registered node, and a
  TestClient; ``ServerProcess``: ``oko server run`` as a real subprocess on a free port.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pg_server import PostgresServer, postgres_bin_dir

ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-1"
# the smallest valid JPEG header plus filler: the server checks the magic, not the image
TINY_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) + b"\xff\xd9"

needs_postgres = pytest.mark.skipif(postgres_bin_dir() is None,
                                    reason="PostgreSQL is not installed")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    pg = request.getfixturevalue("pg_server")
    url = pg.create_database()
    yield url
    pg.drop_database(url.rsplit("/", 1)[1])


def event(i: int | str, type: str = "line_crossing", channel: str = "cam1",  # noqa: A002
          wall_time: float | None = None, snapshot: bytes | None = None,
          **data: Any) -> dict[str, Any]:
    """An event as the edge sends it (Event.to_dict)."""
    out = {"id": i if isinstance(i, str) else f"{i:032x}", "type": type, "channel_id": channel,
           "timestamp": 1.5, "frame_index": 7,
           "wall_time": time.time() if wall_time is None else wall_time, "data": data}
    if snapshot is not None:
        out["snapshot_jpeg"] = base64.b64encode(snapshot).decode("ascii")
    return out


def crossing(i: int, line: str = "door", direction: str = "in", label: str = "person",
             **kw: Any) -> dict[str, Any]:
    return event(i, "line_crossing", line=line, direction=direction, label=label,
                 track_id=i, **kw)


@dataclass
class Server:
    """An in-process server with credentials ready to use."""

    app: Any
    client: Any
    settings: Any
    node_key: str
    admin: dict[str, str]  # Authorization headers
    viewer: dict[str, str]

    @property
    def state(self) -> Any:
        return self.app.state.oko

    def node_headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.node_key}"}

    def ingest(self, events: list[dict[str, Any]], key: str | None = None,
               node: str | None = None) -> Any:
        body: dict[str, Any] = {"events": events}
        if node is not None:
            body["node"] = node
        return self.client.post("/api/v1/ingest/events", json=body,
                                headers=self.node_headers(key))

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()


def make_server(db_url: str, data_dir: Path, **settings: Any) -> Server:
    import warnings

    with warnings.catch_warnings():  # starlette would like httpx2, which is not needed here
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from oko.server.app import create_app
    from oko.server.settings import ServerSettings

    cfg = ServerSettings(db_url=db_url, data_dir=data_dir, background=False, **settings)
    app = create_app(cfg)
    state = app.state.oko
    key = state.keys.create("gate-1")
    state.users.create("admin", ADMIN_PASSWORD, "admin")
    state.users.create("viewer", VIEWER_PASSWORD, "viewer")
    client = TestClient(app)

    def bearer(user: str, password: str) -> dict[str, str]:
        r = client.post("/api/v1/auth/token", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    return Server(app, client, cfg, key, bearer("admin", ADMIN_PASSWORD),
                  bearer("viewer", VIEWER_PASSWORD))


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = make_server(db_url, tmp_path / "data")
    yield srv
    srv.client.close()
    srv.state.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def oko_cli(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "oko.cli", "server", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env=env)


class ServerProcess:
    """``oko server run`` in a subprocess (its own process group) on a fixed free port."""

    def __init__(self, db_url: str, data_dir: Path, workers: int = 1,
                 extra: list[str] | None = None) -> None:
        self.db_url = db_url
        self.data_dir = data_dir
        self.workers = workers
        self.extra = extra or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"server-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oko.cli", "server", "run", "--db", self.db_url,
                 "--data-dir", str(self.data_dir), "--port", str(self.port),
                 "--workers", str(self.workers), *self.extra],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"oko server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"oko server not ready:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server and its workers (a crash, not a clean stop)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True
