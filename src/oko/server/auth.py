"""Credentials: edge-node API keys, dashboard users, sessions, CSRF tokens.

- **Node keys** are 256-bit random tokens (``oko_<43 chars>``) shown once. Only their
  SHA-256 is stored: for a secret of that entropy a fast hash is as safe as a slow one
  and keeps per-request checks cheap; lookups go through a unique index on the hash.
- **Passwords** are hashed with argon2id (argon2-cffi defaults); a stored hash whose
  parameters are outdated is re-hashed at the next successful login.
- **Sessions** are random tokens in an HttpOnly, SameSite=Strict cookie (or sent as
  ``Authorization: Bearer`` by scripts); only their SHA-256 is stored, with an expiry
  and a per-session CSRF token that every state-changing dashboard form carries.
- **Throttling**: after :data:`MAX_FAILURES` failed logins for one user name or one client
  address within :data:`FAILURE_WINDOW_S`, further attempts are refused for the rest of
  the window (per process).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from oko.core.errors import ConfigError, OkoError
from oko.server.db import Database
from oko.server.models import nodes, sessions, users
from oko.server.settings import NAME_PATTERN

Role = Literal["viewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "admin")
KEY_PREFIX = "oko_"
MIN_PASSWORD = 8
MAX_FAILURES = 10
FAILURE_WINDOW_S = 300.0
_NAME = re.compile(NAME_PATTERN)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{kind} {name!r} is not a valid name",
                          "1-64 characters: letters, digits, '_', '.', '-', starting with "
                          "a letter or digit")
    return name


# ---------------------------------------------------------------------------- node keys
@dataclass(frozen=True, slots=True)
class NodeIdentity:
    id: str
    disabled: bool


class NodeKeys:
    """Node API keys: create, rotate, authenticate (with a short positive cache)."""

    def __init__(self, db: Database, cache_s: float = 5.0) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[str, tuple[NodeIdentity, float]] = {}
        self._lock = threading.Lock()

    def create(self, node_id: str) -> str:
        """Register a node; returns its key (shown once)."""
        check_name("node id", node_id)
        key = KEY_PREFIX + new_token()
        with self.db.write() as conn:
            if conn.execute(sa.select(nodes.c.id).where(nodes.c.id == node_id)).first():
                raise ConfigError(f"node {node_id!r} already exists",
                                  "rotate its key with `oko server rotate-key` instead")
            conn.execute(nodes.insert().values(id=node_id, key_hash=sha256(key),
                                               key_prefix=key[:10], created_at=time.time()))
        return key

    def rotate(self, node_id: str) -> str:
        """A new key for a node; the old one stops working (within the cache time)."""
        key = KEY_PREFIX + new_token()
        with self.db.write() as conn:
            done = conn.execute(nodes.update().where(nodes.c.id == node_id).values(
                key_hash=sha256(key), key_prefix=key[:10])).rowcount
        if not done:
            raise ConfigError(f"no node {node_id!r}")
        self.forget()
        return key

    def set_disabled(self, node_id: str, disabled: bool) -> None:
        with self.db.write() as conn:
            done = conn.execute(nodes.update().where(nodes.c.id == node_id)
                                .values(disabled=disabled)).rowcount
        if not done:
            raise ConfigError(f"no node {node_id!r}")
        self.forget()

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def authenticate(self, key: str | None) -> NodeIdentity | None:
        """The node a key belongs to (None for a missing, unknown or disabled key)."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = sha256(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            identity = hit[0]
        else:
            with self.db.engine.connect() as conn:
                row = conn.execute(sa.select(nodes.c.id, nodes.c.disabled, nodes.c.key_hash)
                                   .where(nodes.c.key_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                return None
            identity = NodeIdentity(row.id, bool(row.disabled))
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (identity, now + self.cache_s)
        return None if identity.disabled else identity


# ---------------------------------------------------------------------------- users
@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str
    token: str | None = None  # only right after login


class LoginRefused(OkoError):
    """Wrong credentials, or too many failures (``throttled``)."""

    def __init__(self, message: str, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


class Users:
    """Dashboard and API users: argon2id password hashes, roles, sessions."""

    def __init__(self, db: Database, session_s: float = 12 * 3600) -> None:
        from argon2 import PasswordHasher

        self.db = db
        self.session_s = session_s
        self.hasher = PasswordHasher()
        self._dummy_hash = self.hasher.hash(new_token())
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    # --------------------------------------------------------------- accounts
    def create(self, username: str, password: str, role: str = "viewer") -> User:
        check_name("user name", username)
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD or len(password) > 1024:
            raise ConfigError(f"the password must have {MIN_PASSWORD} to 1024 characters")
        digest = self.hasher.hash(password)
        with self.db.write() as conn:
            if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
                raise ConfigError(f"user {username!r} already exists")
            result = conn.execute(users.insert().values(
                username=username, password_hash=digest, role=role, created_at=time.time()))
            user_id = int(result.inserted_primary_key[0])
        return User(user_id, username, role)  # type: ignore[arg-type]

    def set_password(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD or len(password) > 1024:
            raise ConfigError(f"the password must have {MIN_PASSWORD} to 1024 characters")
        with self.db.write() as conn:
            row = conn.execute(sa.select(users.c.id).where(users.c.username == username)).first()
            if row is None:
                raise ConfigError(f"no user {username!r}")
            conn.execute(users.update().where(users.c.id == row.id)
                         .values(password_hash=self.hasher.hash(password)))
            conn.execute(sessions.delete().where(sessions.c.user_id == row.id))

    def list_users(self) -> list[dict]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(users.c.username, users.c.role, users.c.created_at,
                                          users.c.disabled).order_by(users.c.username)).all()
        return [dict(r._mapping) for r in rows]

    # --------------------------------------------------------------- login
    def _throttled(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                q = self._failures[key]
                while q and q[0] < now - FAILURE_WINDOW_S:
                    q.popleft()
                if len(q) >= MAX_FAILURES:
                    return True
        return False

    def _fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 50_000:  # many made-up names: forget the stale ones
                for key in [k for k, q in self._failures.items()
                            if not q or q[-1] < now - FAILURE_WINDOW_S]:
                    del self._failures[key]
            for key in keys:
                self._failures[key].append(now)

    def login(self, username: str, password: str, client: str = "") -> Session:
        """Check credentials and open a session; raises :class:`LoginRefused`."""
        keys = (f"user:{username.casefold()}", f"ip:{client}")
        if self._throttled(*keys):
            raise LoginRefused("too many failed logins; try again later", throttled=True)
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).first()
        from argon2.exceptions import InvalidHashError, VerifyMismatchError

        try:
            # a missing user costs a hash too, so timing does not reveal user names
            self.hasher.verify(row.password_hash if row else self._dummy_hash, password)
            ok = row is not None and not row.disabled
        except (VerifyMismatchError, InvalidHashError):
            ok = False
        if not ok:
            self._fail(*keys)
            raise LoginRefused("wrong user name or password")
        token, csrf = new_token(), new_token()
        now = time.time()
        with self.db.write() as conn:
            if self.hasher.check_needs_rehash(row.password_hash):
                conn.execute(users.update().where(users.c.id == row.id)
                             .values(password_hash=self.hasher.hash(password)))
            conn.execute(sessions.insert().values(token_hash=sha256(token), user_id=row.id,
                                                  csrf=csrf, created_at=now,
                                                  expires_at=now + self.session_s))
        return Session(User(row.id, row.username, row.role), csrf, token)

    def session(self, token: str | None) -> Session | None:
        """The live session of a token, or None."""
        if not token or len(token) > 200:
            return None
        with self.db.engine.connect() as conn:
            row = conn.execute(
                sa.select(users.c.id, users.c.username, users.c.role, users.c.disabled,
                          sessions.c.csrf, sessions.c.expires_at)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == sha256(token))).first()
        if row is None or row.disabled or row.expires_at < time.time():
            return None
        return Session(User(row.id, row.username, row.role), row.csrf)

    def logout(self, token: str | None) -> None:
        if token:
            with self.db.write() as conn:
                conn.execute(sessions.delete().where(sessions.c.token_hash == sha256(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
