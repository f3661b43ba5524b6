"""Events appended to a JSON Lines file, one event per line, flushed as written."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from oko.core.errors import ConfigError
from oko.core.events import Event


class JsonlSink:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot open events file ({exc.strerror})") from exc
        self.count = 0

    def send(self, event: Event) -> None:
        self._file.write(event.to_json() + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
