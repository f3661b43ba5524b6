"""What every model loader does first: find the manifest, pick the engine, load the file."""

from __future__ import annotations

from pathlib import Path

from oko.engines import EngineConfig, create_engine, parse_engine_config
from oko.engines.base import Engine, TensorSpec
from oko.models.manifest import ColorOrder, Layout, Manifest
from oko.models.zoo import resolve_model


def resolve_with_engine(model: str | Path | Manifest,
                        engine: EngineConfig | str | dict | None) -> tuple[Manifest, EngineConfig]:
    """The model's manifest, and ``engine`` or else the engine its manifest names."""
    if engine is not None:
        engine = parse_engine_config(engine)  # a bad engine name fails before any file work
    manifest = model if isinstance(model, Manifest) else resolve_model(model)
    return manifest, engine if engine is not None else parse_engine_config(manifest.engine)


def create_model_engine(manifest: Manifest, engine: EngineConfig) -> Engine:
    """The model file on ``engine``, warmed up with a batch of one at the manifest's size."""
    spec = manifest.input
    c = 1 if spec.color == ColorOrder.GRAY else 3
    shape = (1, c, spec.height, spec.width) if spec.layout == Layout.NCHW else (
        1, spec.height, spec.width, c)
    return create_engine(manifest.model_path, engine, {spec.name or "*": shape})


def model_input(manifest: Manifest, engine: Engine) -> TensorSpec:
    """The engine input the manifest names (``input.name``), else the first one."""
    inputs = {i.name: i for i in engine.inputs()}
    name = manifest.input.name
    return inputs[name] if name in inputs else engine.inputs()[0]
