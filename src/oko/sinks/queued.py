"""The common half of remote sinks: a disk queue, a sender thread, backoff and counters.

``send`` appends to the :class:`~oko.sinks.queue.DiskQueue` and wakes the sender thread;
subclasses implement :meth:`QueuedSink._run`, the delivery loop, which acknowledges
events in the queue only once the receiver confirmed them. Delivery is therefore
at-least-once: an event whose confirmation was lost is sent again, and receivers
deduplicate by ``event.id``.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from oko.core.events import Event
from oko.sinks.backoff import Backoff
from oko.sinks.base import BaseSinkConfig, Sink
from oko.sinks.queue import DiskQueue, QueueConfig

log = logging.getLogger(__name__)


class RemoteSinkConfig(BaseSinkConfig):
    """Settings shared by sinks that deliver over the network through a disk queue."""

    queue: QueueConfig = Field(default_factory=QueueConfig,
                               description="Disk queue of undelivered events.")
    backoff_initial_s: float = Field(
        0.5, gt=0, description="First retry delay after a failure (doubles per failure).")
    backoff_max_s: float = Field(
        30.0, gt=0, description="Longest retry delay; delays are jittered in [max/2, max].")
    close_timeout_s: float = Field(
        5.0, ge=0, description="How long close() waits for the queue to drain by default.")

    @field_validator("backoff_max_s")
    @classmethod
    def _max_not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("backoff_initial_s")
        if initial is not None and value < initial:
            raise ValueError(f"must be >= backoff_initial_s ({initial})")
        return value


class QueuedSink(Sink):
    """A sink whose ``send`` only enqueues; a background thread delivers."""

    config: RemoteSinkConfig

    def __init__(self, config: RemoteSinkConfig) -> None:
        super().__init__(config)
        self.queue = DiskQueue.from_config(config.queue, self.name)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self._lock = threading.Lock()
        self._delivered = 0
        self._retries = 0
        self._rejected = 0
        self._lost_on_send = 0
        self._in_flight = 0
        self._last_error: str | None = None
        self._connected: bool | None = None
        self._failing = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        """Start the sender thread; subclasses call this at the end of ``__init__``."""
        self._thread = threading.Thread(target=self._run_guarded, daemon=True,
                                         name=f"oko-sink-{self.name}")
        self._thread.start()

    # ------------------------------------------------------------------ Sink API
    def send(self, event: Event) -> None:
        if self._closed:
            self._lost(f"event {event.id} sent after close")
            return
        try:
            self.queue.put(event)
        except Exception as exc:  # noqa: BLE001  (a full or broken disk must not stop the pipeline)
            self._lost(f"cannot queue event {event.id}: {exc}")
            return
        self._wake.set()

    def flush(self, timeout_s: float | None = None) -> bool:
        if self.queue.closed:
            return len(self.queue) == 0
        target = self.queue.last_seq
        self._wake.set()
        return self.queue.wait_until_done(target, timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        if self._closed:
            return
        timeout = self.config.close_timeout_s if timeout_s is None else timeout_s
        self.flush(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(self._join_timeout_s())
        left = len(self.queue)
        if left:
            log.warning("sink %s: %d undelivered events stay in %s and go out when the sink "
                        "starts again", self.name, left, self.queue.path)
        if self._thread is None or not self._thread.is_alive():
            self.queue.close()
        else:  # still inside a request: the thread closes the queue when it returns
            log.warning("sink %s: sender still busy at close", self.name)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"queued": len(self.queue), "in_flight": self._in_flight,
                    "delivered": self._delivered, "retries": self._retries,
                    "dropped": self.queue.dropped + self._rejected + self._lost_on_send,
                    "rejected": self._rejected, "last_error": self._last_error,
                    "connected": self._connected}

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _run(self) -> None:
        """Deliver from ``self.queue`` until ``self._stop`` is set."""

    def _interrupt(self) -> None:
        """Called by close() after setting the stop flag; wake a blocked sender."""

    def _join_timeout_s(self) -> float:
        return 2.0

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopping; True when asked to stop."""
        return self._stop.wait(seconds)

    def _succeeded(self, n: int) -> None:
        """``n`` events were confirmed by the receiver (and acked in the queue)."""
        with self._lock:
            self._delivered += n
            self._connected = True
            was_failing, self._failing = self._failing, False
            attempts = self._backoff.attempts
        self._backoff.reset()
        if was_failing:
            log.info("sink %s: delivering again after %d failed attempts", self.name, attempts)

    def _failed(self, error: str, connected: bool | None = False) -> float:
        """A delivery attempt failed and will be retried; returns the delay to wait."""
        with self._lock:
            self._retries += 1
            self._last_error = error
            self._connected = connected
            first, self._failing = not self._failing, True
        if first:
            log.warning("sink %s: %s; retrying with backoff, %d events buffered in %s",
                        self.name, error, len(self.queue), self.queue.path)
        else:
            log.debug("sink %s: still failing: %s", self.name, error)
        return self._backoff.next()

    def _rejected_for_good(self, ids: list[str], error: str) -> None:
        n = self.queue.reject(ids, error)
        with self._lock:
            self._rejected += n
            self._last_error = error
        log.error("sink %s: receiver refused %d event(s) for good (%s): %s; kept in the "
                  "'dead' table of %s", self.name, n, ", ".join(ids[:5]), error, self.queue.path)

    def _set_in_flight(self, n: int) -> None:
        with self._lock:
            self._in_flight = n

    def _set_connected(self, connected: bool, error: str | None = None) -> None:
        with self._lock:
            self._connected = connected
            if error is not None:
                self._last_error = error

    def _lost(self, message: str) -> None:
        with self._lock:
            self._lost_on_send += 1
            self._last_error = message
            first = self._lost_on_send == 1 or self._lost_on_send % 1000 == 0
        if first:
            log.error("sink %s: %s (%d events lost this way)", self.name, message,
                      self._lost_on_send)

    def _run_guarded(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._run()
                except Exception as exc:  # a bug in delivery must not kill the thread
                    log.exception("sink %s: sender failed; restarting it", self.name)
                    self._wait(self._failed(f"sender error: {exc!r}", connected=None))
        finally:
            self._set_in_flight(0)
            if self._closed:
                self.queue.close()
