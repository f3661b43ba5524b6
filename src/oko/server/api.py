"""The JSON API (``/api/v1``): ingest for nodes; query, counts, export and admin for users.

Ingest bodies are parsed straight from bytes by pydantic (``IngestBatch``), off the event
loop. Every query parameter has a type, a length bound or a pattern; values reach SQL as
bound parameters only.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oko.core.errors import OkoError
from oko.server import query as q
from oko.server.auth import NodeIdentity
from oko.server.export import csv_chunks
from oko.server.ingest import EVENT_ID, EVENT_TYPE, IngestBatch, IngestError
from oko.server.security import Caller, require_admin, require_node, require_user
from oko.server.settings import NAME_PATTERN
from oko.server.status import HeartbeatIn, heartbeat, node_status

router = APIRouter(prefix="/api/v1")

NodeId = Annotated[str, Path(pattern=NAME_PATTERN)]
EventId = Annotated[str, Path(pattern=EVENT_ID)]
TimeParam = Annotated[str | None, Query(max_length=40, description=(
    "Unix seconds or ISO 8601 (naive = UTC)"))]
NameParam = Annotated[str | None, Query(max_length=64)]


def _state(request: Request) -> Any:
    return request.app.state.oko


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _time(value: str | None, name: str, tz: str | None = None) -> float | None:
    try:
        return q.parse_time(value, name, tz)
    except q.QueryError as exc:
        raise HTTPException(422, str(exc)) from exc


# ------------------------------------------------------------------------------ ingest
_INGEST_SCHEMA = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": IngestBatch.model_json_schema(
        ref_template="#/components/schemas/{model}")}}}}


@router.post("/ingest/events", tags=["ingest"], openapi_extra=_INGEST_SCHEMA)
async def ingest_events(request: Request, node: NodeIdentity = Depends(require_node)
                        ) -> dict[str, int]:
    """Store a batch of events (``{"node": ..., "events": [...]}``); idempotent by event id.

    Answers ``{"accepted": n, "duplicates": m}``: ``duplicates`` were stored before (a
    retry) and were left as they are. 422 names the first invalid field
    (``events.3.snapshot_jpeg``) and stores nothing of the batch.
    """
    body = await request.body()
    state = _state(request)
    client = _client(request)

    def work() -> dict[str, int]:
        try:
            batch = IngestBatch.model_validate_json(body)
        except ValidationError as exc:
            from oko.server.app import validation_details

            raise HTTPException(422, validation_details(exc.errors())) from None
        if batch.node is not None and batch.node != node.id:
            raise HTTPException(403, f"this key belongs to node {node.id!r}, not "
                                     f"{batch.node[:64]!r}")
        try:
            result = state.ingestor.ingest(node.id, batch.events, client)
        except IngestError as exc:
            raise HTTPException(422, [{"loc": exc.loc, "msg": exc.message}]) from None
        return {"accepted": result.accepted, "duplicates": result.duplicates}

    return await run_in_threadpool(work)


@router.post("/ingest/heartbeat", tags=["ingest"])
def ingest_heartbeat(request: Request, beat: HeartbeatIn,
                     node: NodeIdentity = Depends(require_node)) -> dict[str, Any]:
    """A node says it is alive, with its channels' states and its sink's queue."""
    if beat.node is not None and beat.node != node.id:
        raise HTTPException(403, f"this key belongs to node {node.id!r}")
    heartbeat(_state(request).db, node.id, beat, _client(request))
    return {"node": node.id, "time": time.time()}


# ------------------------------------------------------------------------------ auth
class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


@router.post("/auth/token", tags=["auth"])
def auth_token(request: Request, creds: Credentials) -> dict[str, Any]:
    """Sign in; use the token as ``Authorization: Bearer <token>``."""
    from oko.server.auth import LoginRefused

    users = _state(request).users
    try:
        session = users.login(creds.username, creds.password, _client(request) or "")
    except LoginRefused as exc:
        raise HTTPException(429 if exc.throttled else 401, exc.message) from None
    return {"token": session.token, "role": session.user.role,
            "expires_in_s": int(users.session_s)}


@router.post("/auth/logout", tags=["auth"])
def auth_logout(request: Request, who: Caller = Depends(require_user)) -> dict[str, bool]:
    _state(request).users.logout(who.token)
    return {"ok": True}


@router.get("/auth/me", tags=["auth"])
def auth_me(who: Caller = Depends(require_user)) -> dict[str, Any]:
    return {"username": who.user.username, "role": who.user.role}


# ------------------------------------------------------------------------------ events
def event_filter(
    since: TimeParam = None, until: TimeParam = None,
    node: Annotated[str | None, Query(max_length=64)] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[str | None, Query(max_length=400, description=(
        "One type or several, comma-separated"))] = None,
    label: NameParam = None, name: Annotated[str | None, Query(
        max_length=64, description="Line or zone name")] = None,
    plate: Annotated[str | None, Query(max_length=64)] = None,
    plate_mode: Literal["exact", "prefix", "fuzzy"] = "prefix",
    person: Annotated[str | None, Query(max_length=128)] = None,
    person_mode: Literal["exact", "prefix"] = "exact",
    tz: Annotated[str | None, Query(max_length=64, description=(
        "IANA time zone of since/until without an offset (default UTC)"))] = None,
) -> q.EventFilter:
    if tz:
        try:
            q.zone(tz)
        except q.QueryError as exc:
            raise HTTPException(422, str(exc)) from None
    types = [t for t in (type or "").split(",") if t]
    if any(not re.fullmatch(EVENT_TYPE, t) for t in types):
        raise HTTPException(422, "type: event types are lower-case words, comma-separated")
    return q.EventFilter(since=_time(since, "since", tz), until=_time(until, "until", tz),
                         node=node or None, channel=channel or None, types=types,
                         label=label or None, name=name or None, plate=plate or None,
                         plate_mode=plate_mode, person=person or None,
                         person_mode=person_mode)


@router.get("/events", tags=["query"])
def list_events(request: Request, flt: q.EventFilter = Depends(event_filter),
                limit: Annotated[int, Query(ge=1, le=q.MAX_LIMIT)] = 100,
                before: Annotated[str | None, Query(max_length=64, description=(
                    "Cursor from the previous page's `next`"))] = None,
                who: Caller = Depends(require_user)) -> dict[str, Any]:
    """Events newest first, filtered; page on with ``before=<next>``."""
    try:
        with _state(request).db.engine.connect() as conn:
            rows, cursor = q.find_events(conn, flt, limit, before)
    except q.QueryError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"events": [q.event_dict(r) for r in rows], "next": cursor}


@router.get("/events.csv", tags=["query"])
def export_csv(request: Request, flt: q.EventFilter = Depends(event_filter),
               limit: Annotated[int, Query(ge=1, le=5_000_000)] = 1_000_000,
               who: Caller = Depends(require_user)) -> StreamingResponse:
    """The filtered events as CSV (newest first), streamed."""
    db = _state(request).db

    def chunks():
        with db.engine.connect() as conn:
            yield from csv_chunks(q.iter_events(conn, flt, limit))

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="oko-events-{stamp}.csv"'})


@router.get("/events/{node_id}/{event_id}", tags=["query"])
def get_event(request: Request, node_id: NodeId, event_id: EventId,
              who: Caller = Depends(require_user)) -> dict[str, Any]:
    with _state(request).db.engine.connect() as conn:
        row = q.get_event(conn, node_id, event_id)
    if row is None:
        raise HTTPException(404, "no such event")
    return q.event_dict(row)


@router.get("/events/{node_id}/{event_id}/snapshot.jpg", tags=["query"],
            response_class=FileResponse)
def get_snapshot(request: Request, node_id: NodeId, event_id: EventId,
                 who: Caller = Depends(require_user)) -> FileResponse:
    state = _state(request)
    with state.db.engine.connect() as conn:
        row = q.get_event(conn, node_id, event_id)
    path = state.ingestor.snapshots.resolve(row.snapshot) if row and row.snapshot else None
    if path is None or not path.is_file():
        raise HTTPException(404, "no snapshot for this event")
    return FileResponse(path, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=86400"})


# ------------------------------------------------------------------------------ search
@router.get("/plates", tags=["query"])
def plates(request: Request, query: Annotated[str, Query(alias="q", min_length=1,
                                                         max_length=64)],
           mode: Literal["exact", "prefix", "fuzzy"] = "fuzzy",
           since: TimeParam = None, limit: Annotated[int, Query(ge=1, le=q.MAX_LIMIT)] = 50,
           who: Caller = Depends(require_user)) -> dict[str, Any]:
    """Plates read by any node matching ``q``: exact, prefix, or fuzzy (one edit apart
    after folding look-alike characters such as O/0, B/8, Cyrillic/Latin)."""
    with _state(request).db.engine.connect() as conn:
        found = q.search_plates(conn, query, mode, limit, _time(since, "since"))
    return {"plates": found}


@router.get("/persons", tags=["query"])
def persons(request: Request, query: Annotated[str, Query(alias="q", min_length=1,
                                                          max_length=128)],
            limit: Annotated[int, Query(ge=1, le=q.MAX_LIMIT)] = 50,
            who: Caller = Depends(require_user)) -> dict[str, Any]:
    """Recognised identities starting with ``q`` (case-insensitive)."""
    with _state(request).db.engine.connect() as conn:
        return {"persons": q.search_persons(conn, query, limit)}


# ------------------------------------------------------------------------------ counts
def count_filter(since: TimeParam = None, until: TimeParam = None,
                 node: NameParam = None, channel: NameParam = None,
                 kind: Literal["line", "zone"] | None = None, name: NameParam = None,
                 by_label: bool = False) -> q.CountFilter:
    until_t = _time(until, "until") or time.time()
    since_t = _time(since, "since")
    if since_t is None:
        since_t = until_t - 24 * 3600
    return q.CountFilter(since=since_t, until=until_t, node=node or None,
                         channel=channel or None, kind=kind, name=name or None,
                         by_label=by_label)


@router.get("/counts", tags=["counts"])
def count_series(request: Request, flt: q.CountFilter = Depends(count_filter),
                 bucket: Literal["hour", "day"] = "hour",
                 tz: Annotated[str | None, Query(max_length=64, description=(
                     "IANA time zone for day buckets, e.g. Europe/Berlin"))] = None,
                 who: Caller = Depends(require_user)) -> dict[str, Any]:
    """Line crossings (in/out) and zone entries/exits per hour or per day (default: the
    last 24 hours). Hours are whole UTC hours; an hour overlapping the range counts."""
    try:
        with _state(request).db.engine.connect() as conn:
            rows = q.count_series(conn, flt, bucket, tz)
    except q.QueryError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"since": flt.since, "until": flt.until, "bucket": bucket, "counts": rows}


@router.get("/counts/totals", tags=["counts"])
def count_totals(request: Request, flt: q.CountFilter = Depends(count_filter),
                 who: Caller = Depends(require_user)) -> dict[str, Any]:
    """Totals per line/zone and direction over a range (default: the last 24 hours)."""
    with _state(request).db.engine.connect() as conn:
        return {"since": flt.since, "until": flt.until, "totals": q.count_totals(conn, flt)}


# ------------------------------------------------------------------------------ nodes
@router.get("/nodes", tags=["nodes"])
def nodes(request: Request, who: Caller = Depends(require_user)) -> dict[str, Any]:
    """Every node: health (online, offline, never seen, disabled), channels and states."""
    state = _state(request)
    return {"nodes": node_status(state.db, state.settings.node_offline_s)}


class NodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=NAME_PATTERN)


class NodePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool


@router.post("/nodes", tags=["nodes"], status_code=201)
def create_node(request: Request, body: NodeCreate,
                who: Caller = Depends(require_admin)) -> dict[str, str]:
    """Register a node; the answer holds its key, which is not stored and not shown again."""
    try:
        key = _state(request).keys.create(body.id)
    except OkoError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"id": body.id, "key": key}


@router.post("/nodes/{node_id}/key", tags=["nodes"])
def rotate_key(request: Request, node_id: NodeId,
               who: Caller = Depends(require_admin)) -> dict[str, str]:
    """A new key for the node; the old one stops working."""
    try:
        key = _state(request).keys.rotate(node_id)
    except OkoError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"id": node_id, "key": key}


@router.patch("/nodes/{node_id}", tags=["nodes"])
def patch_node(request: Request, node_id: NodeId, body: NodePatch,
               who: Caller = Depends(require_admin)) -> dict[str, Any]:
    try:
        _state(request).keys.set_disabled(node_id, body.disabled)
    except OkoError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"id": node_id, "disabled": body.disabled}


# ------------------------------------------------------------------------------ users
class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=NAME_PATTERN)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["viewer", "admin"] = "viewer"


@router.get("/users", tags=["users"])
def list_users(request: Request, who: Caller = Depends(require_admin)) -> dict[str, Any]:
    return {"users": _state(request).users.list_users()}


@router.post("/users", tags=["users"], status_code=201)
def create_user(request: Request, body: Annotated[UserCreate, Body()],
                who: Caller = Depends(require_admin)) -> dict[str, str]:
    try:
        user = _state(request).users.create(body.username, body.password, body.role)
    except OkoError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"username": user.username, "role": user.role}
