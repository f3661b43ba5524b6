"""The central server's FastAPI application: :func:`create_app`.

One process holds a :class:`ServerState` (database, keys, users, ingestor) on
``app.state.oko``. Several uvicorn workers each build their own from the same settings
(``OKO_SERVER_SETTINGS``, see :func:`app_from_env`); they share nothing but the database
and the snapshot folder, so any load balancer can spread requests over them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from oko.server import migrate
from oko.server.auth import NodeKeys, Users
from oko.server.db import Database
from oko.server.ingest import Ingestor
from oko.server.security import BodyLimit, LoginRequired, SecurityHeaders, login_url
from oko.server.settings import ServerSettings

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
VERSION = "0.1"


@dataclass
class ServerState:
    settings: ServerSettings
    db: Database
    keys: NodeKeys
    users: Users
    ingestor: Ingestor
    background: list[Any] = field(default_factory=list)

    @classmethod
    def open(cls, settings: ServerSettings, migrate_schema: bool = True) -> ServerState:
        db = Database(settings.db_url)
        db.check()
        if migrate_schema:
            migrate.upgrade(db)
        settings.snapshot_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings, db, NodeKeys(db), Users(db, settings.session_hours * 3600),
                   Ingestor(db, settings))

    def start_background(self) -> None:
        """The retention job and MQTT ingest (once per deployment, see settings)."""
        from oko.server.retention import RetentionJob

        job = RetentionJob(self.db, self.settings)
        job.start()
        self.background.append(job)
        if self.settings.mqtt is not None:
            from oko.server.mqtt import MqttIngest

            mqtt = MqttIngest(self.settings.mqtt, self.ingestor)
            mqtt.start()
            self.background.append(mqtt)

    def close(self) -> None:
        for job in reversed(self.background):
            job.stop()
        self.background.clear()
        self.db.dispose()


def create_app(settings: ServerSettings | None = None, *, state: ServerState | None = None,
               migrate_schema: bool = True) -> FastAPI:
    """The server app; opens the database (and migrates it) right away, so a wrong URL
    fails here rather than at the first request."""
    settings = settings or (state.settings if state else ServerSettings())
    state = state or ServerState.open(settings, migrate_schema)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.background:
            state.start_background()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="oko central server", version=VERSION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  description="Events from oko edge nodes: ingest, query, counts, export. "
                              "Nodes authenticate with their key; people with a session "
                              "(dashboard cookie or `POST /api/v1/auth/token`).")
    app.state.oko = state

    from oko.server.api import router as api_router
    from oko.server.dashboard import router as dashboard_router
    from oko.server.docs import router as docs_router

    app.include_router(api_router)
    app.include_router(docs_router)
    app.include_router(dashboard_router)
    app.mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_details(exc.errors())}, status_code=422)

    @app.exception_handler(sa.exc.DataError)
    async def _unstorable(request: Request, exc: sa.exc.DataError) -> JSONResponse:
        # e.g. a NUL character in a filter on PostgreSQL: the input's fault, not a bug
        log.info("refused a value the database cannot handle: %s", str(exc.orig)[:200])
        return JSONResponse({"detail": "a value the database cannot store or compare "
                                       "(e.g. a NUL character)"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code in (403, 404) and _wants_html(request):
            from oko.server.dashboard import error_page

            return error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness for load balancers: no data, only whether the database answers."""
        state.db.check()
        return {"status": "ok"}

    return app


def _wants_html(request: Request) -> bool:
    return (not request.url.path.startswith("/api/")
            and "text/html" in request.headers.get("accept", ""))


def validation_details(errors: Any, limit: int = 20) -> list[dict[str, str]]:
    """Validation errors as ``{"loc": "events.3.id", "msg": ...}``, without echoing input."""
    out = []
    for err in list(errors)[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        out.append({"loc": loc, "msg": str(err.get("msg", ""))[:300]})
    return out


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes (``oko server run --workers N``)."""
    return create_app(ServerSettings.from_env(), migrate_schema=False)
