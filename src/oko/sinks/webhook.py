"""Webhook sink: batches of events POSTed as JSON, retried from a disk queue.

Body: ``{"events": [event, ...]}`` (each event as :meth:`Event.to_dict` makes it), oldest
first, ``Content-Type: application/json``. Delivery is at-least-once: a batch whose
response was lost is posted again, so receivers deduplicate by ``event["id"]``.

How responses are treated (:func:`classify`):

- 2xx: delivered; the batch is removed from the queue.
- 408, 425, 429, 5xx, 3xx (redirects are not followed), timeouts and connection errors:
  retried with capped exponential backoff and jitter; ``Retry-After`` is honoured up to
  ``backoff_max_s``. Nothing is dropped however long the receiver is down, until the
  queue bound drops the oldest events.
- 401, 403, 404, 405, 407, 410, 421: also retried. They say the URL or the credentials
  are wrong, not the events; dropping on them would empty the whole queue during a
  misconfiguration or a key rotation. They are logged as errors.
- Any other 4xx (400, 413, 422, ...): the receiver refuses this content. A batch of
  several events is split in halves and retried until the refused event is alone; a
  single refused event is removed from the queue, counted in ``rejected`` and
  ``dropped``, logged with its id, and kept in the queue file's ``dead`` table.
"""

from __future__ import annotations

import email.utils
import logging
import time
from typing import TYPE_CHECKING, Literal

from pydantic import AnyHttpUrl, Field, SecretStr

from oko.sinks.queue import QueuedEvent
from oko.sinks.queued import QueuedSink, RemoteSinkConfig

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

KIND = "webhook"
RETRY_4XX = frozenset({408, 425, 429})
ENDPOINT_4XX = frozenset({401, 403, 404, 405, 407, 410, 421})

Outcome = Literal["delivered", "retry", "reject"]


class WebhookSinkConfig(RemoteSinkConfig):
    kind: Literal["webhook"] = KIND
    url: AnyHttpUrl = Field(description="http(s) URL that receives POSTed batches.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Extra request headers, e.g. {'Authorization': 'Bearer ...'} or an API "
                    "key header; values never appear in logs.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one request (connect, read).")
    batch_size: int = Field(100, ge=1, le=10_000, description="Most events per request.")
    verify_tls: bool = Field(True, description="Check the server's TLS certificate.")


def classify(status: int) -> Outcome:
    """What a response status means for the batch; see the module docstring."""
    if 200 <= status < 300:
        return "delivered"
    if 400 <= status < 500 and status not in RETRY_4XX and status not in ENDPOINT_4XX:
        return "reject"
    return "retry"


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def batch_body(batch: list[QueuedEvent]) -> bytes:
    """``{"events": [...]}`` from the queued JSON texts, without re-encoding them."""
    return ('{"events":[' + ",".join(item.body for item in batch) + "]}").encode("utf-8")


class HttpBatchSink(QueuedSink):
    """Delivers queued events in batches over HTTP from a background thread.

    Acked only on delivery; a refused batch is halved until the refused event is found
    (it then goes to the dead-letter table); anything else backs off and retries.
    Subclasses give the headers, how many queued events fit one request (``_fit``) and
    the request itself (``_post``).
    """

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def _fit(self, batch: list[QueuedEvent]) -> list[QueuedEvent]:
        return batch

    def _post(self, client: httpx.Client, batch: list[QueuedEvent]
              ) -> tuple[Outcome, str, float | None, bool]:
        """(outcome, error text, server-requested delay, receiver reachable)."""
        raise NotImplementedError

    def _join_timeout_s(self) -> float:
        return self.config.timeout_s + 1.0

    def _run(self) -> None:
        import httpx

        cfg = self.config
        limit = cfg.batch_size
        with httpx.Client(headers=self._headers(), timeout=cfg.timeout_s,
                          verify=cfg.verify_tls, follow_redirects=False) as client:
            while not self._stop.is_set():
                self._wake.clear()
                batch = self._fit(self.queue.peek_batch(limit))
                if not batch:
                    self._wake.wait(1.0)
                    continue
                self._set_in_flight(len(batch))
                outcome, error, delay, reachable = self._post(client, batch)
                self._set_in_flight(0)
                if outcome == "delivered":
                    self.queue.ack(item.id for item in batch)
                    self._succeeded(len(batch))
                    limit = min(cfg.batch_size, limit * 2)
                elif outcome == "reject" and len(batch) > 1:
                    limit = max(1, len(batch) // 2)
                    log.info("sink %s: %s; splitting the batch to find the refused event",
                             self.name, error)
                elif outcome == "reject":
                    self._set_connected(True)
                    self._rejected_for_good([batch[0].id], error)
                else:
                    backoff = self._failed(error, connected=reachable)
                    self._wait(backoff if delay is None else min(delay, cfg.backoff_max_s))


class WebhookSink(HttpBatchSink):
    """POSTs batches of queued events to ``config.url`` from a background thread."""

    kind = KIND
    config_class = WebhookSinkConfig
    config: WebhookSinkConfig

    def __init__(self, config: WebhookSinkConfig) -> None:
        super().__init__(config)
        url = config.url
        # for logs: no credentials, no query string (it may carry a token)
        port = f":{url.port}" if url.port else ""
        self._where = f"{url.scheme}://{url.host}{port}{url.path or ''}"
        self._start()

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "oko-webhook-sink", "Content-Type": "application/json"}
        return headers | {k: v.get_secret_value() for k, v in self.config.headers.items()}

    def _post(self, client: httpx.Client, batch: list[QueuedEvent]
              ) -> tuple[Outcome, str, float | None, bool]:
        """(outcome, error text, server-requested delay, receiver reachable)."""
        import httpx

        try:
            response = client.post(str(self.config.url), content=batch_body(batch))
        except httpx.HTTPError as exc:
            return "retry", f"POST {self._where}: {type(exc).__name__}: {exc}", None, False
        status = response.status_code
        outcome = classify(status)
        if outcome == "delivered":
            return outcome, "", None, True
        excerpt = " ".join(response.text[:200].split())
        error = f"POST {self._where}: HTTP {status} {excerpt}".rstrip()
        if status in ENDPOINT_4XX:
            log.error("sink %s: %s: check the url and credentials (events are kept)",
                      self.name, error)
        if 300 <= status < 400:
            error += " (redirects are not followed: set url to the final address)"
        return outcome, error, retry_after_s(response.headers.get("Retry-After")), True
