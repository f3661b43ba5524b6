"""OpenAPI schema and Swagger UI, for signed-in users only.

The schema (``/openapi.json``) is served by the server itself. FastAPI's Swagger page
(``/docs``) loads its JavaScript from a CDN; without internet access, read the schema
with any offline OpenAPI viewer instead.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from oko.server.security import Caller, require_page_user, require_user

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
def openapi(request: Request, who: Caller = Depends(require_user)) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs(who: Caller = Depends(require_page_user)) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="oko central server API")
