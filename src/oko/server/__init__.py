"""The central server: edge nodes send it their events; people query and watch them.

``oko server run`` serves :func:`oko.server.app.create_app` with uvicorn. Files, one job
each: settings, db (engine per dialect), models (tables), migrate + migrations/ (Alembic),
auth (node keys, users, sessions), security (who is calling, body limit, headers),
ingest (validation, snapshots, idempotent bulk insert), mqtt (MQTT ingest), status
(heartbeats, node health), query (filters, search, counts), plates (fuzzy plate keys),
export (CSV), retention, api (JSON routes), dashboard + templates/ + static/ (web pages),
docs (OpenAPI behind sign-in), cli. See docs/server.md.
"""
