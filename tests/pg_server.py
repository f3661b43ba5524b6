"""A throw-away PostgreSQL server for the server tests and the server benchmark.

Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``) initialise a cluster
in a fresh temporary directory and serve it on a free loopback port (and a Unix socket
in that directory). ``initdb`` and ``postgres`` refuse to run as root, so as root the
directory is handed to the ``postgres`` user (``nobody`` if there is none) and the
programs run as that user. :meth:`PostgresServer.create_database` gives each test its
own database. Everything is removed on :meth:`stop`.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "oko"


def postgres_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL bin directory with initdb and postgres, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    for candidate in reversed(found):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    for name in ("initdb", "postgres"):
        if shutil.which(name) is None:
            return None
    return Path(shutil.which("initdb")).parent  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; ``url(db)`` for SQLAlchemy."""

    def __init__(self, durable: bool = False) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = bin_dir
        self.durable = durable  # False: fsync off (tests); True: the defaults (benchmarks)
        self.dir = Path(tempfile.mkdtemp(prefix="oko-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._databases = 0

    def _run_as(self) -> dict:
        if self._user is None:
            return {}
        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self, timeout_s: float = 30.0) -> PostgresServer:
        log = self.dir / "postgres.log"
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                       check=True, capture_output=True, cwd=self.dir, **self._run_as())
        settings = ["-c", "listen_addresses=" + HOST, "-p", str(self.port),
                    "-c", f"unix_socket_directories={self.dir}", "-c", "max_connections=200",
                    "-c", "shared_buffers=256MB"]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                         "-c", "full_page_writes=off"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([str(self.bin / "postgres"), "-D", str(self.data),
                                          *settings], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir,
                                         start_new_session=True, **self._run_as())
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{log.read_text()[-2000:]}")
            if self._ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"postgres not ready after {timeout_s} s")

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname="postgres",
                                 connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        self._databases += 1
        name = name or f"oko_test_{self._databases}"
        with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (closing its connections) to keep the cluster small."""
        import psycopg

        with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # "immediate" shutdown: the data is thrown away, so no checkpoint is needed
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
