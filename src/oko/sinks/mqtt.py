"""MQTT sink: one QoS 1 message per event, acknowledged from a disk queue on PUBACK.

Topic: ``topic`` formatted with ``node``, ``channel_id`` and ``type`` (characters that
MQTT treats specially in those values, ``/ + #`` and NUL, become ``_``). Payload: the
event's JSON, whose ``id`` lets receivers deduplicate.

Delivery is at-least-once. The sender thread owns a paho-mqtt client (2.x callback
API) and publishes up to ``max_in_flight`` queued events; an event leaves the disk queue
only when the broker's PUBACK for its message id arrives. On a disconnect, a refused
connection, or a PUBACK missing for ``ack_timeout_s``, the client is discarded, the
sink waits (capped exponential backoff with jitter), connects a fresh client and
publishes again, from the oldest queued event, everything not yet acknowledged. A
message the broker had received but whose PUBACK was lost is therefore sent twice.

The publisher uses a clean session: the disk queue, not the broker, keeps what is
undelivered. A broker that acknowledged a message and then dies before passing it on
loses it unless the broker itself persists messages (mosquitto ``persistence true``)
and the subscriber uses a persistent session; that part is outside the sink.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from oko.core.errors import ConfigError
from oko.sinks.queue import QueuedEvent
from oko.sinks.queued import QueuedSink, RemoteSinkConfig

if TYPE_CHECKING:
    from paho.mqtt.client import Client

log = logging.getLogger(__name__)

KIND = "mqtt"
TOPIC_FIELDS = ("node", "channel_id", "type")
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})
# PUBACK reason codes (MQTT 5) that are about this one message: drop it, keep going.
_REFUSED_MESSAGE = frozenset({0x90, 0x99})  # topic name invalid, payload format invalid
_LONG_LIVED_S = 10.0  # a connection that lasted this long resets the backoff


class MqttTlsConfig(BaseModel):
    """TLS to the broker; files are PEM."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ca_file: Path | None = Field(None, description="CA bundle; None uses the system's CAs.")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Key of cert_file (if not inside it).")
    insecure: bool = Field(False, description="Skip certificate and host name checks (tests only).")


class MqttSinkConfig(RemoteSinkConfig):
    kind: Literal["mqtt"] = KIND
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int | None = Field(None, ge=1, le=65535,
                             description="Broker port; default 1883, or 8883 with tls.")
    node: str | None = Field(
        None, description="This edge node's id in topics; default the pipeline's node, "
                          "else the host name.")
    topic: str = Field("oko/{node}/{channel_id}/{type}",
                       description="Topic template; placeholders {node}, {channel_id}, {type}.")
    client_id: str | None = Field(
        None, max_length=128, description="MQTT client id; default 'oko-<node>-<sink name>'.")
    username: str | None = Field(None, description="Broker user name.")
    password: SecretStr | None = Field(None, description="Broker password (needs username).")
    tls: MqttTlsConfig | None = Field(None, description="Connect with TLS when set.")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version.")
    keepalive_s: int = Field(30, ge=5, le=65535, description="MQTT keep-alive interval.")
    max_in_flight: int = Field(100, ge=1, le=65535,
                               description="Messages published and not yet acknowledged.")
    connect_timeout_s: float = Field(10.0, gt=0, description="TCP connect + CONNACK timeout.")
    ack_timeout_s: float = Field(
        30.0, gt=0, description="Reconnect and resend when a PUBACK is this late.")
    retain: bool = Field(False, description="Publish with the retain flag.")

    @field_validator("topic")
    @classmethod
    def _topic_template(cls, value: str) -> str:
        try:
            sample = value.format(**{name: "x" for name in TOPIC_FIELDS})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad template {value!r} ({exc!r}); placeholders are "
                             f"{', '.join('{' + f + '}' for f in TOPIC_FIELDS)}") from None
        if not sample or "+" in sample or "#" in sample or sample.startswith("$"):
            raise ValueError(f"{value!r} is not a publishable topic (no + or #, no leading $)")
        return value

    @field_validator("password")
    @classmethod
    def _password_needs_user(cls, value: SecretStr | None, info: ValidationInfo) -> Any:
        if value is not None and not info.data.get("username"):
            raise ValueError("a password needs a username")
        return value


def topic_for(template: str, node: str, item: QueuedEvent) -> str:
    def safe(text: str) -> str:
        return text.translate(_UNSAFE) or "_"

    return template.format(node=safe(node), channel_id=safe(item.channel_id),
                           type=safe(item.type))


def ssl_context(tls: MqttTlsConfig) -> ssl.SSLContext:
    """The TLS context, built once at start so that a missing file is a config error."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt sink tls: cannot load certificates ({exc})",
                          "check tls.ca_file, tls.cert_file and tls.key_file") from exc
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class MqttSink(QueuedSink):
    """Publishes queued events to an MQTT broker at QoS 1 from a background thread."""

    kind = KIND
    config_class = MqttSinkConfig
    config: MqttSinkConfig

    def __init__(self, config: MqttSinkConfig) -> None:
        super().__init__(config)
        try:
            self.node = config.node or socket.gethostname()
            self.port = config.port or (8883 if config.tls else 1883)
            self.client_id = config.client_id or re.sub(
                r"[^A-Za-z0-9_.-]", "_", f"oko-{self.node}-{self.name}")[:128]
            self._ssl = ssl_context(config.tls) if config.tls else None
        except BaseException:
            self.queue.close()
            raise
        self._client: Client | None = None
        self._connected_at = 0.0
        self._inflight: dict[int, tuple[str, float]] = {}  # mid -> (event id, publish time)
        self._acked: list[str] = []
        self._refused: list[tuple[str, str]] = []
        self._last_seq = 0  # highest queue seq published on this connection
        self._conn_ok = False
        self._conn_error: str | None = None
        self._start()

    def _join_timeout_s(self) -> float:
        return self.config.connect_timeout_s + 1.0

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                error = self._connect() if self._client is None else self._service()
                if error is not None:
                    self._drop_client()
                    self._wait(self._failed(error))
        finally:
            self._disconnect()

    def _service(self) -> str | None:
        """One round on a live connection: publish what fits, read PUBACKs."""
        client = self._client
        assert client is not None
        self._wake.clear()
        error = self._publish_more(client)
        if error is not None:
            return error
        rc = client.loop(timeout=0.02 if self._inflight else 0.0)
        self._settle()
        if self._conn_error is not None:
            return self._conn_error
        if rc != 0:
            return f"connection to {self.config.host}:{self.port} lost ({_error_string(rc)})"
        if self._inflight:
            oldest = next(iter(self._inflight.values()))[1]
            if time.monotonic() - oldest > self.config.ack_timeout_s:
                return f"no PUBACK for {self.config.ack_timeout_s:g} s"
        elif self.queue.last_seq <= self._last_seq:
            self._wake.wait(0.25)  # idle: wake on send(), service keep-alive meanwhile
        return None

    def _publish_more(self, client: Client) -> str | None:
        room = self.config.max_in_flight - len(self._inflight)
        newest = self.queue.last_seq  # read before peeking: rows up to it are committed
        if room <= 0 or newest <= self._last_seq:
            return None
        now = time.monotonic()
        batch = self.queue.peek_batch(room, after_seq=self._last_seq)
        for item in batch:
            try:
                info = client.publish(topic_for(self.config.topic, self.node, item), item.body,
                                      qos=1, retain=self.config.retain)
            except ValueError as exc:  # topic or payload MQTT cannot carry
                self._last_seq = item.seq
                self._rejected_for_good([item.id], f"cannot publish: {exc}")
                continue
            if info.rc != 0:
                return f"publish failed ({_error_string(info.rc)})"
            self._inflight[info.mid] = (item.id, now)
            self._last_seq = item.seq
        if len(batch) < room:  # nothing else up to `newest` is queued (acked, dropped)
            self._last_seq = max(self._last_seq, newest)
        self._set_in_flight(len(self._inflight))
        return None

    def _settle(self) -> None:
        """Apply the PUBACKs that the last loop() call delivered to the callbacks."""
        if self._acked:
            acked, self._acked = self._acked, []
            self.queue.ack(acked)
            self._succeeded(len(acked))
        for event_id, reason in self._refused:
            self._rejected_for_good([event_id], f"broker refused the message: {reason}")
        self._refused.clear()
        self._set_in_flight(len(self._inflight))

    # ------------------------------------------------------------------ connection
    def _new_client(self) -> Client:
        from paho.mqtt.client import CallbackAPIVersion, Client, MQTTv5, MQTTv311

        cfg = self.config
        v5 = cfg.protocol == "5"
        client = Client(callback_api_version=CallbackAPIVersion.VERSION2,
                        client_id=self.client_id, protocol=MQTTv5 if v5 else MQTTv311,
                        clean_session=None if v5 else True, reconnect_on_failure=False)
        client.on_log = _paho_log
        client.max_inflight_messages_set(cfg.max_in_flight)
        client.connect_timeout = cfg.connect_timeout_s
        if cfg.username:
            client.username_pw_set(cfg.username,
                                   cfg.password.get_secret_value() if cfg.password else None)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _connect(self) -> str | None:
        cfg = self.config
        where = f"{cfg.host}:{self.port}"
        self._conn_ok, self._conn_error = False, None
        client = self._new_client()
        self._client = client
        try:
            if cfg.protocol == "5":
                client.connect(cfg.host, self.port, cfg.keepalive_s, clean_start=True)
            else:
                client.connect(cfg.host, self.port, cfg.keepalive_s)
        except (OSError, ValueError) as exc:
            return f"cannot connect to {where}: {exc}"
        deadline = time.monotonic() + cfg.connect_timeout_s
        while not self._conn_ok and not self._stop.is_set():
            rc = client.loop(timeout=0.05)
            if self._conn_error is not None:
                return f"{where}: {self._conn_error}"
            if rc != 0:
                return f"connection to {where} lost while connecting ({_error_string(rc)})"
            if time.monotonic() > deadline:
                return f"no CONNACK from {where} within {cfg.connect_timeout_s:g} s"
        if not self._conn_ok:
            return None  # stopping
        self._inflight.clear()
        self._last_seq = 0  # resend everything not acknowledged, oldest first
        self._connected_at = time.monotonic()
        self._set_connected(True)
        log.info("sink %s: connected to %s as %s (%d events queued)", self.name, where,
                 self.client_id, len(self.queue))
        return None

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._inflight.clear()
        self._acked.clear()
        self._refused.clear()
        self._set_in_flight(0)
        self._set_connected(False)
        if self._connected_at and time.monotonic() - self._connected_at > _LONG_LIVED_S:
            self._backoff.reset()
        self._connected_at = 0.0
        if client is not None:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _disconnect(self) -> None:
        """Clean DISCONNECT on close; unacknowledged events stay queued."""
        client = self._client
        if client is not None and self._conn_ok:
            try:
                self._settle()
                client.disconnect()  # written at once (no paho thread), then paho closes
            except Exception:  # best effort on the way out
                log.debug("sink %s: error while disconnecting", self.name, exc_info=True)
        self._drop_client()

    # ------------------------------------------------------------------ paho callbacks
    # They run inside client.loop(), on the sender thread.
    def _on_connect(self, client: Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._conn_error = f"broker refused the connection ({reason})"
        else:
            self._conn_ok = True

    def _on_disconnect(self, client: Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if self._conn_error is None:
            self._conn_error = f"disconnected from {self.config.host}:{self.port} ({reason})"

    def _on_publish(self, client: Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        if not reason.is_failure:
            self._acked.append(entry[0])
        elif reason.value in _REFUSED_MESSAGE:
            self._refused.append((entry[0], str(reason)))
        elif self._conn_error is None:  # e.g. not authorised, quota: keep it, retry later
            self._conn_error = f"broker refused a message ({reason})"


_paho_log_target = logging.getLogger(f"{__name__}.paho")


def _paho_log(client: Client, userdata: Any, level: int, message: str) -> None:
    """paho's own log lines, at DEBUG: the sink logs failures itself, once per outage."""
    _paho_log_target.debug("%s", message)


def _error_string(rc: int) -> str:
    from paho.mqtt.client import error_string

    return error_string(rc)
