"""Database connections: one SQLAlchemy engine per process, chosen by URL.

SQLite (``sqlite:///FILE``): WAL mode, ``synchronous=NORMAL``, a busy timeout, foreign
keys on; writes inside one process are serialised by :attr:`Database.write_lock` so that
threads queue in Python instead of spinning on SQLite's lock. PostgreSQL
(``postgresql://...``, psycopg 3): a connection pool per process; several processes and
hosts write concurrently.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from oko.core.errors import ConfigError

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3; SQLite URLs stay as they are."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (a malformed URL is reported elsewhere)
        return "<database url>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Database:
    """The engine plus what differs between dialects."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except Exception as exc:
            raise ConfigError(f"database url {redact(url)!r} is not valid ({exc})") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"unsupported database {self.dialect!r}",
                              "use sqlite:///FILE or postgresql://user:password@host/db")
        self.write_lock: contextlib.AbstractContextManager[Any]
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise ConfigError("an in-memory SQLite database cannot be shared",
                                  "give a file: sqlite:///oko-server.db")
            self.engine: Engine = sa.create_engine(self.url, pool_size=pool_size,
                                                   max_overflow=pool_size)
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self.write_lock = threading.Lock()
        else:
            try:
                self.engine = sa.create_engine(self.url, pool_size=pool_size,
                                               max_overflow=pool_size, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                raise ConfigError("PostgreSQL needs psycopg 3",
                                  "pip install 'oko[postgres]'") from exc
            self.write_lock = contextlib.nullcontext()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT (with ``on_conflict_do_nothing`` / ``do_update``)."""
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (committed on success, rolled back on error)."""
        with self.write_lock, self.engine.begin() as conn:
            yield conn

    def check(self) -> None:
        """Fail with a ConfigError naming the database if it cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            raise ConfigError(f"cannot connect to {redact(self.url)}: "
                              f"{str(exc.orig).strip().splitlines()[0]}") from exc

    def dispose(self) -> None:
        self.engine.dispose()
