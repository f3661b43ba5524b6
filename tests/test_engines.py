"""Engine registry and ONNX Runtime provider selection."""

from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from oko.core import ConfigError, EngineLoadError
from oko.engines import Engine, EngineConfig, TensorSpec, create_engine, engine_names, parse_engine_config
from oko.engines.onnxruntime import OnnxRuntimeConfig, _providers
from oko.models import load_detector

from conftest import YOLO_DATA


def test_auto_prefers_tensorrt_then_cuda_then_cpu():
    cfg = OnnxRuntimeConfig()
    assert _providers(cfg, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    got = _providers(cfg, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert [p[0] if isinstance(p, tuple) else p for p in got] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert _providers(OnnxRuntimeConfig(device="cpu"), ["CUDAExecutionProvider"]) == ["CPUExecutionProvider"]


def test_explicit_gpu_without_provider_is_a_clear_error():
    with pytest.raises(EngineLoadError, match="CUDAExecutionProvider is not available"):
        _providers(OnnxRuntimeConfig(device="cuda"), ["CPUExecutionProvider"])


def test_engine_config_validation_names_the_field():
    assert parse_engine_config("onnxruntime").kind == "onnxruntime"
    with pytest.raises(ConfigError, match="threads"):
        parse_engine_config({"kind": "onnxruntime", "threads": 0})
    with pytest.raises(ConfigError, match="thredas"):
        parse_engine_config({"kind": "onnxruntime", "thredas": 2})


def test_threads_setting_reaches_the_session():
    engine = create_engine(YOLO_DATA / "yolov8n-320.onnx", {"kind": "onnxruntime", "threads": 1})
    assert engine.max_batch == 1
    assert engine.inputs()[0] == TensorSpec("images", (1, 3, 320, 320), np.dtype(np.float32))
    assert "CPUExecutionProvider" in engine.describe()


def test_a_new_engine_plugs_in_by_name_without_changing_callers():
    calls = []

    class ReplayConfig(EngineConfig):
        kind: Literal["replay-test"] = "replay-test"

    class ReplayEngine(Engine):
        """Wraps ONNX Runtime, recording calls: stands in for a new backend file."""

        kind = "replay-test"
        config_class = ReplayConfig

        def load(self, warmup_shapes=None):
            self.inner = create_engine(self.model_path, "onnxruntime", warmup_shapes)

        def inputs(self):
            return self.inner.inputs()

        def outputs(self):
            return self.inner.outputs()

        def run(self, inputs):
            calls.append(sorted(inputs))
            return self.inner.run(inputs)

    try:
        assert "replay-test" in engine_names()
        detector = load_detector(YOLO_DATA / "yolov8n-320.onnx", engine="replay-test")
        detector([np.zeros((100, 120, 3), np.uint8)])
        assert calls and calls[-1] == ["images"]
    finally:
        Engine.registry.pop("replay-test", None)


def test_engine_rejects_missing_and_garbage_files(tmp_path: Path):
    with pytest.raises(Exception, match="not found"):
        create_engine(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01junk" * 100)
    with pytest.raises(EngineLoadError, match="junk.onnx: not a loadable ONNX model"):
        create_engine(tmp_path / "junk.onnx")
