"""Where events go: a JSON Lines file, a webhook, an MQTT broker.

Importing a sink module registers it; callers use :func:`create_sink` with a config
(a dict from YAML or a config object). Remote sinks (webhook, mqtt) queue events on
disk and deliver them at-least-once from a background thread; receivers deduplicate by
``event.id``.

Adding a sink: one file here with a :class:`Sink` subclass and its config class, plus
one import line below.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, ValidationError

from oko.core.errors import ConfigError, UnknownNameError
from oko.sinks import jsonl as _jsonl  # noqa: F401  (registers the sink)
from oko.sinks import mqtt as _mqtt  # noqa: F401
from oko.sinks import server as _server  # noqa: F401  (central server)
from oko.sinks import webhook as _webhook  # noqa: F401
from oko.sinks.base import STATS_KEYS, BaseSinkConfig, Sink
from oko.sinks.jsonl import JsonlSink, JsonlSinkConfig
from oko.sinks.mqtt import MqttSink, MqttSinkConfig
from oko.sinks.queue import DiskQueue, QueueConfig
from oko.sinks.queued import QueuedSink, RemoteSinkConfig
from oko.sinks.webhook import WebhookSink, WebhookSinkConfig


def sink_names() -> list[str]:
    return sorted(Sink.registry)


def sink_config_type() -> Any:
    """The pydantic type of any registered sink's config, discriminated on ``kind``."""
    classes = tuple(cls.config_class for cls in Sink.registry.values())
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007


SinkConfig = sink_config_type()
"""Any built-in sink's config (a discriminated union on ``kind``), for composing configs."""


def parse_sink_config(value: BaseSinkConfig | dict[str, Any]) -> BaseSinkConfig:
    """A sink config from a dict (from YAML) or a config; errors name the field."""
    if isinstance(value, BaseSinkConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"sink config must be a mapping, got {type(value).__name__}")
    kind = value.get("kind")
    if not isinstance(kind, str):
        raise ConfigError("sink config: kind: missing", f"choose one of: {', '.join(sink_names())}")
    if kind not in Sink.registry:
        raise UnknownNameError("sink", kind, sink_names())
    try:
        return Sink.registry[kind].config_class.model_validate(value)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                    for err in exc.errors()]
        raise ConfigError(f"{kind} sink config: " + "; ".join(problems)) from exc


def create_sink(config: BaseSinkConfig | dict[str, Any], node: str | None = None) -> Sink:
    """Build (and start) the sink a config names.

    ``node`` fills a config's ``node`` field (the MQTT topic's ``{node}``) when unset.
    """
    cfg = parse_sink_config(config)
    if node is not None and getattr(cfg, "node", "") is None:
        cfg = cfg.model_copy(update={"node": node})
    return Sink.registry[cfg.kind](cfg)


__all__ = ["STATS_KEYS", "BaseSinkConfig", "DiskQueue", "JsonlSink", "JsonlSinkConfig",
           "MqttSink", "MqttSinkConfig", "QueueConfig", "QueuedSink", "RemoteSinkConfig",
           "Sink", "SinkConfig", "WebhookSink",
           "WebhookSinkConfig", "create_sink", "parse_sink_config", "sink_config_type",
           "sink_names"]
