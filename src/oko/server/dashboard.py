"""The web dashboard: server-rendered pages (Jinja2) with a little JavaScript.

Pages: sign-in; overview (node and channel health, live line/zone counters, a chart of
counts per hour); event feed with filters, snapshots and live updates; plate and face
search; admin (nodes and their keys, users). Live parts poll small HTML fragments or the
JSON API every few seconds. Templates escape everything; the CSP allows no inline
script; every form that changes something carries the session's CSRF token, and the
sign-in form a double-submit cookie.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from oko.core.errors import OkoError
from oko.server import query as q
from oko.server.api import event_filter
from oko.server.auth import LoginRefused, csrf_ok, new_token
from oko.server.security import (LOGIN_CSRF_COOKIE, SESSION_COOKIE, Caller, check_csrf,
                                 require_page_admin, require_page_user, safe_next)
from oko.server.status import node_status

router = APIRouter(include_in_schema=False)


def _fmt_time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _ago(value: float | None) -> str:
    if value is None:
        return "never"
    s = max(0.0, time.time() - value)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} days ago"


def _templates() -> Jinja2Templates:
    from oko.server.app import PACKAGE

    t = Jinja2Templates(directory=PACKAGE / "templates")
    t.env.filters["utc"] = _fmt_time
    t.env.filters["iso"] = _iso
    t.env.filters["ago"] = _ago
    t.env.filters["compact_json"] = lambda d: json.dumps(d, ensure_ascii=False,
                                                         separators=(", ", ": "))[:300]
    return t


templates = _templates()


def render(request: Request, name: str, who: Caller | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    ctx = {"who": who, "csrf": who.session.csrf if who else "",
           "path": request.url.path} | context
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    from oko.server.security import caller

    return render(request, "error.html", caller(request), status_code=status, status=status,
                  message=message)


def _state(request: Request) -> Any:
    return request.app.state.oko


# ---------------------------------------------------------------------------- sign-in
@router.get("/login")
def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
    token = new_token()
    response = render(request, "login.html", None, login_csrf=token, next=safe_next(next),
                      error=None)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 600)
    return response


@router.post("/login")
def login_submit(request: Request, username: str = Form(max_length=64),
                 password: str = Form(max_length=1024), csrf: str = Form(max_length=100),
                 next: str = Form("/", max_length=2000)) -> Response:  # noqa: A002
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf):
        raise HTTPException(403, "the sign-in form expired; reload the page")
    users = _state(request).users
    try:
        session = users.login(username, password,
                              request.client.host if request.client else "")
    except LoginRefused as exc:
        token = new_token()
        response = render(request, "login.html", None, status_code=429 if exc.throttled else 401,
                          login_csrf=token, next=safe_next(next), error=exc.message)
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 600)
        return response
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, session.token or "", int(users.session_s))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("", max_length=100),
           who: Caller = Depends(require_page_user)) -> Response:
    check_csrf(request, who, csrf)
    _state(request).users.logout(who.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int
                ) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=_state(request).settings.secure_cookies)


# ---------------------------------------------------------------------------- overview
@router.get("/")
def overview(request: Request, who: Caller = Depends(require_page_user)) -> HTMLResponse:
    state = _state(request)
    return render(request, "overview.html", who,
                  nodes=node_status(state.db, state.settings.node_offline_s))


@router.get("/fragments/nodes")
def nodes_fragment(request: Request, who: Caller = Depends(require_page_user)) -> HTMLResponse:
    state = _state(request)
    return render(request, "_nodes.html", who,
                  nodes=node_status(state.db, state.settings.node_offline_s))


# ---------------------------------------------------------------------------- events
EVENT_TYPES = ["line_crossing", "zone_enter", "zone_exit", "plate_read", "face_recognized",
               "face_unknown", "detections", "channel_state", "channel_error"]


@router.get("/events")
def events_page(request: Request, flt: q.EventFilter = Depends(event_filter),
                before: str | None = None,
                who: Caller = Depends(require_page_user)) -> HTMLResponse:
    state = _state(request)
    try:
        with state.db.engine.connect() as conn:
            rows, cursor = q.find_events(conn, flt, 50, before)
    except q.QueryError as exc:
        raise HTTPException(422, str(exc)) from None
    params = {k: v for k, v in request.query_params.items() if k != "before" and v}
    live = before is None and flt.until is None
    return render(request, "events.html", who, rows=[q.event_dict(r) for r in rows],
                  next=cursor, params=params, live=live, types=EVENT_TYPES,
                  nodes=[n["id"] for n in node_status(state.db, state.settings.node_offline_s)],
                  now=time.time())


@router.get("/fragments/events")
def events_fragment(request: Request, flt: q.EventFilter = Depends(event_filter),
                    received_since: float = 0.0,
                    who: Caller = Depends(require_page_user)) -> HTMLResponse:
    """Rows received since a time (newest first), for the live feed."""
    flt.received_since = received_since
    with _state(request).db.engine.connect() as conn:
        rows, _ = q.find_events(conn, flt, 100)
    return render(request, "_event_rows.html", who, rows=[q.event_dict(r) for r in rows],
                  now=time.time())


# ---------------------------------------------------------------------------- search
@router.get("/search")
def search_page(request: Request, plate: str = "", plate_mode: str = "fuzzy",
                person: str = "", who: Caller = Depends(require_page_user)) -> HTMLResponse:
    plate, person = plate[:64], person[:128]
    if plate_mode not in ("exact", "prefix", "fuzzy"):
        plate_mode = "fuzzy"
    plates, persons, rows = [], [], []
    with _state(request).db.engine.connect() as conn:
        if plate:
            plates = q.search_plates(conn, plate, plate_mode, 50)  # type: ignore[arg-type]
            if plates:
                found, _ = q.find_events(conn, q.EventFilter(
                    plate=plate, plate_mode=plate_mode), 24)  # type: ignore[arg-type]
                rows = [q.event_dict(r) for r in found]
        elif person:
            persons = q.search_persons(conn, person, 50)
            if persons:
                found, _ = q.find_events(conn, q.EventFilter(
                    person=person, person_mode="prefix"), 24)
                rows = [q.event_dict(r) for r in found]
    return render(request, "search.html", who, plate=plate, plate_mode=plate_mode,
                  person=person, plates=plates, persons=persons, rows=rows, now=time.time())


# ---------------------------------------------------------------------------- admin
def _admin_page(request: Request, who: Caller, status_code: int = 200, **extra: Any
                ) -> HTMLResponse:
    state = _state(request)
    return render(request, "admin.html", who, status_code=status_code,
                  nodes=node_status(state.db, state.settings.node_offline_s),
                  users=state.users.list_users(), **({"new_key": None, "message": None,
                                                      "error": None} | extra))


@router.get("/admin")
def admin_page(request: Request, who: Caller = Depends(require_page_admin)) -> HTMLResponse:
    return _admin_page(request, who)


@router.post("/admin/nodes")
def admin_create_node(request: Request, node_id: str = Form(max_length=64),
                      csrf: str = Form("", max_length=100),
                      who: Caller = Depends(require_page_admin)) -> HTMLResponse:
    check_csrf(request, who, csrf)
    try:
        key = _state(request).keys.create(node_id)
    except OkoError as exc:
        return _admin_page(request, who, 400, error=str(exc))
    return _admin_page(request, who, new_key={"node": node_id, "key": key})


@router.post("/admin/nodes/{node_id}/rotate")
def admin_rotate_key(request: Request, node_id: str, csrf: str = Form("", max_length=100),
                     who: Caller = Depends(require_page_admin)) -> HTMLResponse:
    check_csrf(request, who, csrf)
    try:
        key = _state(request).keys.rotate(node_id[:64])
    except OkoError as exc:
        return _admin_page(request, who, 404, error=str(exc))
    return _admin_page(request, who, new_key={"node": node_id, "key": key})


@router.post("/admin/nodes/{node_id}/disabled")
def admin_disable(request: Request, node_id: str, disabled: bool = Form(),
                  csrf: str = Form("", max_length=100),
                  who: Caller = Depends(require_page_admin)) -> HTMLResponse:
    check_csrf(request, who, csrf)
    try:
        _state(request).keys.set_disabled(node_id[:64], disabled)
    except OkoError as exc:
        return _admin_page(request, who, 404, error=str(exc))
    return _admin_page(request, who, message=f"node {node_id} "
                                             f"{'disabled' if disabled else 'enabled'}")


@router.post("/admin/users")
def admin_create_user(request: Request, username: str = Form(max_length=64),
                      password: str = Form(max_length=1024), role: str = Form("viewer"),
                      csrf: str = Form("", max_length=100),
                      who: Caller = Depends(require_page_admin)) -> HTMLResponse:
    check_csrf(request, who, csrf)
    try:
        _state(request).users.create(username, password, role)
    except OkoError as exc:
        return _admin_page(request, who, 400, error=str(exc))
    return _admin_page(request, who, message=f"user {username} ({role}) created")
