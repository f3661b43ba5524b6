"""The sink contract: where events go, without ever blocking or crashing the pipeline.

A sink is one file in this package that subclasses :class:`Sink` with a ``kind`` and a
config class whose ``kind`` is a ``Literal`` of the same name; defining the class
registers it, and ``oko.sinks.create_sink`` builds one from its config.

Contract for every sink:

- :meth:`Sink.send` is cheap and never raises for delivery problems. Remote sinks
  append the event to a disk queue and return; a background thread delivers.
- :meth:`Sink.flush` waits until every event sent before the call is delivered (or
  dropped and counted), up to a timeout, and says whether it got there.
- :meth:`Sink.close` flushes (bounded), then stops. Undelivered events of remote sinks
  stay on disk and go out when a sink with the same queue starts again.
- :meth:`Sink.stats` returns plain counters (see :data:`STATS_KEYS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from oko.core.events import Event

STATS_KEYS = ("queued", "in_flight", "delivered", "retries", "dropped", "rejected",
              "last_error", "connected")
"""Keys of :meth:`Sink.stats`:

``queued`` events waiting (on disk for remote sinks, in flight included); ``in_flight``
sent but not yet acknowledged; ``delivered`` acknowledged by the receiver (at-least-once:
a redelivery after a lost acknowledgement counts again); ``retries`` failed attempts
that will be retried; ``dropped`` events lost for good (queue overflow, permanent
rejection, send after close); ``rejected`` the part of ``dropped`` the receiver refused
permanently; ``last_error`` the latest problem as text, or None; ``connected`` whether
the receiver was reachable at the last attempt (None before the first attempt, or for
local sinks).
"""


class BaseSinkConfig(BaseModel):
    """Base of every sink's config; subclasses narrow ``kind`` to a Literal."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str = Field(description="Sink type, e.g. 'jsonl', 'webhook', 'mqtt'.")
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Short id of this sink for logs, metrics and its default queue file "
                    "name; defaults to the kind. Give each sink of one kind its own name.")

    @property
    def display_name(self) -> str:
        return self.name or self.kind


class Sink(ABC):
    """Accepts events and delivers them somewhere; see the module docstring."""

    kind: ClassVar[str]
    config_class: ClassVar[type[BaseSinkConfig]]
    registry: ClassVar[dict[str, type[Sink]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "kind", None) and "kind" in cls.__dict__:
            Sink.registry[cls.kind] = cls

    def __init__(self, config: BaseSinkConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.display_name

    @abstractmethod
    def send(self, event: Event) -> None:
        """Accept one event; cheap, and never raises because a receiver is down."""

    @abstractmethod
    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until events sent so far are delivered; False when ``timeout_s`` ran out."""

    @abstractmethod
    def close(self, timeout_s: float | None = None) -> None:
        """Flush for up to ``timeout_s`` (the sink's default when None), then stop.

        Idempotent. Remote sinks keep what is still undelivered on disk.
        """

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-ready dict with the keys in :data:`STATS_KEYS`."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
