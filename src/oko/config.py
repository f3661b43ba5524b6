"""The pipeline config (YAML): node, engine, batching, control API, sinks, channels.

This file only composes the configs that live next to their code. Every model has
``extra="forbid"``: a typo is an error naming the field path.

```yaml
node: gate-1
engine: {kind: onnxruntime, threads: 2}
batch: {max_size: 8, max_wait_ms: 20}
api: {host: 127.0.0.1, port: 8686}
sinks:
  - {kind: jsonl, path: events.jsonl}
channels:
  - id: entrance
    source: rtsp://10.0.0.5/stream1
    fps_cap: 10
    detect: {model: nanodet-coco, classes: [person]}
    tracker: {kind: ocsort}
    lines: [{name: door, start: [0.1, 0.6], end: [0.9, 0.6], normalized: true}]
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oko.api import ApiConfig
from oko.core.errors import ConfigError
from oko.engines import engine_config_type
from oko.sinks import SinkConfig
from oko.video.batcher import BatchConfig
from oko.video.channel import ChannelConfig

EngineSettings = engine_config_type()


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    node: str = Field("oko-edge", description="This edge node's id (in events and topics).")
    engine: EngineSettings | None = Field(
        None, description="Engine for every model; None: each model's own (ONNX Runtime).")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    sinks: list[SinkConfig] = Field(default_factory=list, description="Where events go.")
    channels: list[ChannelConfig] = Field(default_factory=list)

    @field_validator("channels")
    @classmethod
    def _unique_ids(cls, channels: list[ChannelConfig]) -> list[ChannelConfig]:
        seen: set[str] = set()
        for ch in channels:
            if ch.id in seen:
                raise ValueError(f"duplicate channel id {ch.id!r}")
            seen.add(ch.id)
        return channels


def parse_config(data: Any, source: str) -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
            problems.append(f"{where or '(top level)'}: {err['msg']}")
        raise ConfigError(f"{source}: " + "; ".join(problems[:5])
                          + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")) from exc


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    return parse_config(data, str(path))
