"""Request-level protection: who is calling, body size limit, security headers.

Three kinds of callers:

- edge nodes: ``Authorization: Bearer oko_...`` or ``X-Api-Key: oko_...`` (node key);
  they may only ingest, as themselves;
- people in a browser: the ``oko_session`` cookie (HttpOnly, SameSite=Strict). A
  state-changing request authenticated by the cookie must also carry the session's CSRF
  token (form field ``csrf`` or header ``X-CSRF-Token``);
- scripts: ``Authorization: Bearer <token>`` from ``POST /api/v1/auth/token`` (not sent
  automatically by browsers, so no CSRF token is needed).

Every route except the login page, the static files and ``/healthz`` requires one of
them; ``tests/test_server_security.py`` walks all routes to check it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oko.server.auth import KEY_PREFIX, NodeIdentity, Session, User, csrf_ok

SESSION_COOKIE = "oko_session"
LOGIN_CSRF_COOKIE = "oko_login_csrf"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
       "object-src 'none'")
_DOCS = ("/docs", "/docs/oauth2-redirect")


@dataclass(frozen=True, slots=True)
class Caller:
    session: Session
    via_cookie: bool
    token: str

    @property
    def user(self) -> User:
        return self.session.user


class LoginRequired(Exception):
    """A dashboard page was asked for without a session: redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def node_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key") or _bearer(request)
    return key if key and key.startswith(KEY_PREFIX) else None


def caller(request: Request) -> Caller | None:
    """The signed-in user of a request (cookie or bearer token), or None."""
    users = request.app.state.oko.users
    token = _bearer(request)
    if token is not None and not token.startswith(KEY_PREFIX):
        session = users.session(token)
        return Caller(session, False, token) if session else None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session = users.session(token)
        if session is not None:
            return Caller(session, True, token)
    return None


def check_csrf(request: Request, who: Caller, form_value: str | None = None) -> None:
    if not who.via_cookie:
        return
    given = form_value if form_value is not None else request.headers.get("x-csrf-token")
    if not csrf_ok(who.session.csrf, given):
        raise HTTPException(403, "missing or wrong CSRF token")


def require_user(request: Request) -> Caller:
    """Dependency of every JSON API route that reads or changes data."""
    who = caller(request)
    if who is None:
        raise HTTPException(401, "sign in: POST /api/v1/auth/token, then send "
                                 "'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        check_csrf(request, who)
    return who


def require_admin(request: Request) -> Caller:
    who = require_user(request)
    if not who.user.is_admin:
        raise HTTPException(403, "admin role required")
    return who


def require_page_user(request: Request) -> Caller:
    """Dependency of dashboard pages: redirects to /login instead of answering 401."""
    who = caller(request)
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return who


def require_page_admin(request: Request) -> Caller:
    who = require_page_user(request)
    if not who.user.is_admin:
        raise HTTPException(403, "admin role required")
    return who


def require_node(request: Request) -> NodeIdentity:
    """Dependency of the ingest routes: the node whose key the request carries."""
    node = request.app.state.oko.keys.authenticate(node_key(request))
    if node is None:
        raise HTTPException(401, "missing, unknown or disabled node key",
                            headers={"WWW-Authenticate": "Bearer"})
    return node


def safe_next(path: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, schemes) is '/'."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    if any(ch in path for ch in "\r\n\\") or len(path) > 2000:
        return "/"
    return path


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(safe_next(next_path), safe="")


# ---------------------------------------------------------------------------- ASGI middleware
class BodyLimit:
    """Answers 413 to request bodies larger than ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await _too_large(send, self.limit)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.limit)


class _BodyTooLarge(HTTPException):
    """Raised while the app reads the body; an HTTPException so every layer renders 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes",
                         headers={"Connection": "close"})


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """nosniff, no framing, no referrer leaks, and a strict CSP (except on /docs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path") in _DOCS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"same-origin")]
                if not docs:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
