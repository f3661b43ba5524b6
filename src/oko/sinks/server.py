"""Server sink: events to the oko central server, from a disk queue, plus heartbeats.

Events go in batches to ``POST {url}/api/v1/ingest/events`` with the node's key
(``Authorization: Bearer oko_...``); the body is ``{"node": ..., "events": [...]}``. A
batch leaves the disk queue only on a 2xx answer, so a server outage or restart loses
nothing; the server stores each event once per id, so a batch posted again after a lost
answer creates no duplicates. Responses are treated as by the webhook sink
(:func:`oko.sinks.webhook.classify`): 5xx, timeouts, 401/403 (a key being rotated)
are retried with backoff; a 4xx about the content (422, 413) splits the batch until the
refused event is alone, which then goes to the queue's ``dead`` table.

Every ``heartbeat_s`` a second thread posts ``{url}/api/v1/ingest/heartbeat`` with the
channels this sink has seen (their latest ``channel_state``), the oko version and the
queue's statistics: the server shows the node online with its channels even when no
events flow.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr

from oko.core.events import Event
from oko.sinks.queue import QueuedEvent
from oko.sinks.queued import RemoteSinkConfig
from oko.sinks.webhook import ENDPOINT_4XX, HttpBatchSink, Outcome, classify, retry_after_s

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

KIND = "server"
EVENTS_PATH = "/api/v1/ingest/events"
HEARTBEAT_PATH = "/api/v1/ingest/heartbeat"
_STATE = re.compile(r"^[a-z][a-z_]{0,31}$")


class ServerSinkConfig(RemoteSinkConfig):
    kind: Literal["server"] = KIND
    url: AnyHttpUrl = Field(description="Base URL of the central server, e.g. "
                                        "https://central.example:8080")
    api_key: SecretStr = Field(description="This node's key (`oko server add-node NAME`).")
    node: str | None = Field(
        None, max_length=64, description="This node's id as registered on the server; "
                                         "default the pipeline's node.")
    batch_size: int = Field(500, ge=1, le=5000, description="Most events per request.")
    max_batch_bytes: int = Field(
        4 * 2**20, ge=4096, description="Most bytes of event JSON per request (keep it "
                                        "under the server's body limit, 16 MiB by default).")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one request.")
    heartbeat_s: float = Field(15.0, ge=0, description="Heartbeat interval; 0 disables.")
    verify_tls: bool = Field(True, description="Check the server's TLS certificate.")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("oko")
    except Exception:  # noqa: BLE001  (running from a source tree)
        return "dev"


class ServerSink(HttpBatchSink):
    """Ships queued events to the central server; see the module docstring."""

    kind = KIND
    config_class = ServerSinkConfig
    config: ServerSinkConfig

    def __init__(self, config: ServerSinkConfig) -> None:
        super().__init__(config)
        base = str(config.url).rstrip("/")
        self.events_url = base + EVENTS_PATH
        self.heartbeat_url = base + HEARTBEAT_PATH
        port = f":{config.url.port}" if config.url.port else ""
        self._where = f"{config.url.scheme}://{config.url.host}{port}"
        self._channels: dict[str, str | None] = {}
        self._channels_lock = threading.Lock()
        self._started = time.time()
        self.heartbeats_sent = 0
        self._heartbeat: threading.Thread | None = None
        self._start()
        if config.heartbeat_s > 0:
            self._heartbeat = threading.Thread(target=self._heartbeat_loop, daemon=True,
                                               name=f"oko-sink-{self.name}-heartbeat")
            self._heartbeat.start()

    # ------------------------------------------------------------------ sending
    def send(self, event: Event) -> None:
        with self._channels_lock:
            if event.type == "channel_state":
                self._channels[event.channel_id] = str(event.data.get("to") or "") or None
            else:
                self._channels.setdefault(event.channel_id, None)
        super().send(event)

    def _headers(self) -> dict[str, str]:
        return {"User-Agent": f"oko-server-sink/{_version()}",
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.config.api_key.get_secret_value()}"}

    def _body(self, batch: list[QueuedEvent]) -> bytes:
        import json

        node = json.dumps(self.config.node) if self.config.node else "null"
        return ('{"node":' + node + ',"events":['
                + ",".join(item.body for item in batch) + "]}").encode("utf-8")

    def _fit(self, batch: list[QueuedEvent]) -> list[QueuedEvent]:
        """The longest prefix of ``batch`` within ``max_batch_bytes`` (at least one)."""
        total = 0
        for i, item in enumerate(batch):
            total += len(item.body) + 1
            if total > self.config.max_batch_bytes and i > 0:
                return batch[:i]
        return batch

    def _post(self, client: httpx.Client, batch: list[QueuedEvent]
              ) -> tuple[Outcome, str, float | None, bool]:
        import httpx

        try:
            response = client.post(self.events_url, content=self._body(batch))
        except httpx.HTTPError as exc:
            return "retry", f"POST {self._where}{EVENTS_PATH}: {type(exc).__name__}: {exc}", \
                None, False
        status = response.status_code
        outcome = classify(status)
        if outcome == "delivered":
            return outcome, "", None, True
        excerpt = " ".join(response.text[:300].split())
        error = f"POST {self._where}{EVENTS_PATH}: HTTP {status} {excerpt}".rstrip()
        if status in ENDPOINT_4XX:
            log.error("sink %s: %s: check the url, the api_key and that the node is "
                      "registered and enabled (events are kept)", self.name, error)
        return outcome, error, retry_after_s(response.headers.get("Retry-After")), True

    # ------------------------------------------------------------------ heartbeat
    def heartbeat_body(self) -> dict[str, Any]:
        with self._channels_lock:
            channels = [{"id": cid, "state": state if state and _STATE.fullmatch(state) else None}
                        for cid, state in sorted(self._channels.items())]
        stats = self.stats()
        return {"node": self.config.node, "version": _version()[:32],
                "uptime_s": round(time.time() - self._started, 1), "channels": channels,
                "sink": {k: stats[k] for k in ("queued", "delivered", "retries", "dropped")}}

    def _heartbeat_loop(self) -> None:
        import httpx

        cfg = self.config
        with httpx.Client(headers=self._headers(), timeout=cfg.timeout_s,
                          verify=cfg.verify_tls, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.heartbeat_url, json=self.heartbeat_body())
                    if response.status_code < 300:
                        self.heartbeats_sent += 1
                    else:
                        log.debug("sink %s: heartbeat answered HTTP %d", self.name,
                                  response.status_code)
                except httpx.HTTPError as exc:
                    log.debug("sink %s: heartbeat failed: %s", self.name, exc)
                except Exception:  # a bug here must not stop the events
                    log.exception("sink %s: heartbeat error", self.name)
                if self._stop.wait(cfg.heartbeat_s):
                    return

    def close(self, timeout_s: float | None = None) -> None:
        super().close(timeout_s)
        if self._heartbeat is not None:
            self._heartbeat.join(self.config.timeout_s + 1.0)
