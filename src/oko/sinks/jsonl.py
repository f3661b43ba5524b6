"""Events appended to a JSON Lines file, one event per line, flushed as written.

The file is opened in append mode (existing lines are kept). An event that cannot be
written (disk full, file system gone, data that is not JSON) is logged and counted as
dropped instead of raising, so it does not stop the pipeline; opening the file fails
loudly at start-up.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any, Literal, Self

from pydantic import Field

from oko.core.errors import ConfigError
from oko.core.events import Event
from oko.sinks.base import BaseSinkConfig, Sink

log = logging.getLogger(__name__)

KIND = "jsonl"


class JsonlSinkConfig(BaseSinkConfig):
    kind: Literal["jsonl"] = KIND
    path: Path = Field(description="JSON Lines file the events are appended to.")


class JsonlSink(Sink):
    """``JsonlSink(path)`` or ``JsonlSink(JsonlSinkConfig(...))``."""

    kind = KIND
    config_class = JsonlSinkConfig
    config: JsonlSinkConfig

    def __init__(self, config: JsonlSinkConfig | str | Path) -> None:
        if not isinstance(config, JsonlSinkConfig):
            config = JsonlSinkConfig(path=Path(config))
        super().__init__(config)
        self.path = Path(config.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot open events file ({exc.strerror})") from exc
        self.count = 0
        self.dropped = 0
        self.last_error: str | None = None

    def send(self, event: Event) -> None:
        if self._file is None:
            self._drop(f"event {event.id} sent after close")
            return
        try:
            line = event.to_json() + "\n"
        except (TypeError, ValueError) as exc:  # e.g. a numpy array left in event.data
            self._drop(f"event {event.id} is not JSON-serialisable ({exc})")
            return
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            self._drop(f"{self.path}: cannot write event {event.id} ({exc.strerror})")
            return
        self.count += 1

    def _drop(self, message: str) -> None:
        self.dropped += 1
        self.last_error = message
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.error("sink %s: %s (%d events dropped)", self.name, message, self.dropped)

    def flush(self, timeout_s: float | None = None) -> bool:
        return True  # every send() already flushed its line to the OS

    def close(self, timeout_s: float | None = None) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                log.error("sink %s: %s: closing failed (%s)", self.name, self.path, exc.strerror)

    def stats(self) -> dict[str, Any]:
        return {"queued": 0, "in_flight": 0, "delivered": self.count, "retries": 0,
                "dropped": self.dropped, "rejected": 0, "last_error": self.last_error,
                "connected": None}

    def __enter__(self) -> Self:
        return self
