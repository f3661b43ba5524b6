"""Engines by name. Importing a backend module registers it; callers use ``create_engine``.

Adding a backend: one file here with an ``Engine`` subclass and its config class, plus
one import line below. Nothing that calls engines changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from oko.core.errors import ConfigError, UnknownNameError
from oko.engines import onnxruntime as _onnxruntime  # noqa: F401  (each import registers one)
from oko.engines import openvino as _openvino  # noqa: F401
from oko.engines import sophon as _sophon  # noqa: F401
from oko.engines.base import Engine, EngineConfig, TensorSpec

DEFAULT_ENGINE = "onnxruntime"


def engine_names() -> list[str]:
    return sorted(Engine.registry)


def engine_config_type() -> Any:
    """The pydantic type of any engine config, discriminated on ``kind``."""
    classes = tuple(cls.config_class for cls in Engine.registry.values())
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007


def parse_engine_config(value: EngineConfig | str | dict | None) -> EngineConfig:
    """An engine config from a name ('onnxruntime'), a dict (from YAML) or a config."""
    if isinstance(value, EngineConfig):
        return value
    if value is None:
        value = DEFAULT_ENGINE
    if isinstance(value, str):
        value = {"kind": value}
    kind = value.get("kind", DEFAULT_ENGINE)
    if kind not in Engine.registry:
        raise UnknownNameError("engine", kind, engine_names())
    try:
        return TypeAdapter(Engine.registry[kind].config_class).validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"engine config: {where}: {err['msg']}") from exc


def create_engine(model_path: str | Path, config: EngineConfig | str | dict | None = None,
                  warmup_shapes: dict[str, tuple[int, ...]] | None = None) -> Engine:
    """Create and load the engine named by ``config`` for ``model_path``."""
    cfg = parse_engine_config(config)
    engine = Engine.registry[cfg.kind](Path(model_path), cfg)
    engine.load(warmup_shapes)
    return engine


__all__ = ["DEFAULT_ENGINE", "Engine", "EngineConfig", "TensorSpec", "create_engine",
           "engine_config_type", "engine_names", "parse_engine_config"]
