"""Settings of the central server: database, snapshot store, limits, retention, MQTT.

One pydantic model (``extra="forbid"``) built by ``oko server run`` from its options; the
uvicorn worker processes receive it as JSON in ``OKO_SERVER_SETTINGS``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oko.core.errors import ConfigError

SETTINGS_ENV = "OKO_SERVER_SETTINGS"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Node ids, channel ids and user names: what may appear in paths and topics."""


class MqttIngestConfig(BaseModel):
    """Subscribe to edge nodes' MQTT topics (the ``mqtt`` sink's) and store their events."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topic: str = Field("oko/+/+/+", description="Subscription (QoS 1); the edge's mqtt sink "
                                                "publishes to oko/{node}/{channel_id}/{type}.")
    node_level: int = Field(1, ge=0, le=16,
                            description="Which topic level (0-based) holds the node id.")
    client_id: str = Field("oko-server", min_length=1, max_length=128,
                           description="Fixed client id: the broker keeps this persistent "
                                       "session's messages while the server is down.")
    username: str | None = Field(None, description="Broker user name.")
    password: str | None = Field(None, description="Broker password.")
    batch_size: int = Field(500, ge=1, le=10_000, description="Most messages stored at once.")
    batch_wait_s: float = Field(0.05, gt=0, le=5, description="Longest wait to fill a batch.")


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    db_url: str = Field(
        "sqlite:///oko-server.db",
        description="SQLAlchemy URL: sqlite:///FILE (default, WAL mode) or "
                    "postgresql://user:password@host/db (psycopg 3).")
    data_dir: Path = Field(Path("oko-server-data"),
                           description="Snapshots (JPEG files) are stored under DATA_DIR/snapshots.")
    max_body_bytes: int = Field(16 * 2**20, ge=1024, description="Largest request body.")
    max_batch_events: int = Field(5000, ge=1, description="Most events in one ingest request.")
    max_snapshot_bytes: int = Field(512 * 1024, ge=1024,
                                    description="Largest JPEG snapshot (decoded bytes).")
    max_data_bytes: int = Field(16 * 1024, ge=256,
                                description="Largest event `data` object (as JSON).")
    retention_days: float | None = Field(
        30.0, gt=0, description="Events (and their snapshots) older than this are deleted; "
                                "None keeps them forever.")
    counts_retention_days: float | None = Field(
        400.0, gt=0, description="Hourly line/zone counts older than this are deleted.")
    retention_interval_s: float = Field(3600.0, gt=0,
                                        description="How often the retention job runs.")
    node_offline_s: float = Field(60.0, gt=0,
                                  description="A node not heard from for this long is offline.")
    session_hours: float = Field(12.0, gt=0, description="Dashboard/API session lifetime.")
    secure_cookies: bool = Field(False, description="Mark cookies Secure (serve over HTTPS).")
    background: bool = Field(
        True, description="Run the retention job and MQTT ingest in this process (a "
                          "multi-worker `oko server run` runs them once, in the parent).")
    mqtt: MqttIngestConfig | None = Field(None, description="MQTT ingest; None: HTTP only.")

    @field_validator("db_url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+pysqlite:", "postgresql", "postgres:")):
            raise ValueError(f"{value.split(':')[0]!r} databases are not supported; use "
                             "sqlite:///FILE or postgresql://...")
        return value

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls) -> ServerSettings:
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"{SETTINGS_ENV}: {exc.errors()[0]['msg']}") from exc
