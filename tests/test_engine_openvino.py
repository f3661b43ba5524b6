"""OpenVINO engine: same outputs as ONNX Runtime, dynamic batch, settings, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

from oko.core import ConfigError, EngineLoadError, ModelNotFoundError
from oko.engines import create_engine, parse_engine_config
from oko.engines import openvino as ov_engine
from oko.engines.base import Engine, TensorSpec
from oko.models import load_detector, resolve_model
from oko.models.preprocess import InputPreprocessor
from oko.video.sources import VideoSource

from conftest import SAMPLE_VIDEO, YOLO_DATA

NANODET = resolve_model("nanodet-coco")
YOLO = YOLO_DATA / "yolov8n-320.onnx"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    with VideoSource(str(SAMPLE_VIDEO)) as src:
        return [f.image for i, f in zip(range(300), src, strict=False) if i % 100 == 0]


def _inputs(manifest, frames):
    tensor, _ = InputPreprocessor(manifest.input)(frames)
    return tensor


def _close(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name, got in a.items():
        assert got.shape == b[name].shape, name
        scale = float(np.abs(b[name]).max()) + 1e-6
        assert np.abs(got - b[name]).max() <= 1e-4 * scale, name


def test_registered_with_its_config():
    assert Engine.registry["openvino"] is ov_engine.OpenVinoEngine
    cfg = parse_engine_config({"kind": "openvino"})
    assert (cfg.device, cfg.precision_hint, cfg.threads, cfg.performance_mode) == (
        "CPU", "f32", None, "latency")


def test_nanodet_matches_onnxruntime_with_dynamic_batch(frames):
    x = _inputs(NANODET, frames)
    engine = create_engine(NANODET.model_path, {"kind": "openvino", "threads": 2})
    assert engine.max_batch is None  # the ONNX has a dynamic batch axis
    assert engine.inputs() == [TensorSpec("images", (None, 3, 416, 416), np.dtype(np.float32))]
    assert [o.name for o in engine.outputs()] == [
        "cls_s8", "cls_s16", "cls_s32", "reg_s8", "reg_s16", "reg_s32"]
    assert "f32" in engine.describe() and "CPU" in engine.describe()
    ort = create_engine(NANODET.model_path, {"kind": "onnxruntime"})
    batch = engine.run({"images": x})
    _close(batch, ort.run({"images": x}))
    single = engine.run({"images": x[1:2]})
    _close({k: v[1:2] for k, v in batch.items()}, single)


def test_yolo_static_model_matches_onnxruntime(frames):
    manifest = resolve_model(YOLO)
    x = _inputs(manifest, frames[:1])
    engine = create_engine(YOLO, {"kind": "openvino"})
    assert engine.max_batch == 1
    _close(engine.run({"images": x}), create_engine(YOLO, "onnxruntime").run({"images": x}))


def test_load_detector_runs_on_openvino(frames):
    det = load_detector("nanodet-coco", engine={"kind": "openvino", "threads": 2})
    ref = load_detector("nanodet-coco", engine="onnxruntime")
    assert det.engine.kind == "openvino" and det.max_batch is None
    for got, want in zip(det(frames), ref(frames), strict=True):
        assert len(got) == len(want) > 0
        np.testing.assert_array_equal(got.class_id, want.class_id)
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.05)


def test_throughput_mode_splits_a_batch_and_gives_the_same_results(frames):
    x = _inputs(NANODET, frames)
    latency = create_engine(NANODET.model_path, {"kind": "openvino"})
    throughput = create_engine(NANODET.model_path,
                               {"kind": "openvino", "performance_mode": "throughput"})
    assert "throughput" in throughput.describe()
    _close(throughput.run({"images": x}), latency.run({"images": x}))


def test_auto_precision_lets_openvino_choose():
    engine = create_engine(YOLO, {"kind": "openvino", "precision_hint": "auto"})
    assert engine.describe().startswith("openvino (CPU, ")


def test_config_errors_name_the_field():
    for bad, field in [({"device": "gpu"}, "device"), ({"device": "TPU"}, "device"),
                       ({"precision_hint": "int8"}, "precision_hint"),
                       ({"threads": 0}, "threads"),
                       ({"performance_mode": "fast"}, "performance_mode"),
                       ({"thread": 2}, "thread")]:
        with pytest.raises(ConfigError, match=field):
            parse_engine_config({"kind": "openvino", **bad})


def test_files_that_are_not_models_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFoundError):
        create_engine(tmp_path / "missing.onnx", "openvino")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(EngineLoadError, match="not a loadable ONNX model"):
        create_engine(junk, "openvino")
    xml = tmp_path / "model.xml"
    xml.write_text("<net/>")
    with pytest.raises(EngineLoadError, match="model.bin is missing"):
        create_engine(xml, "openvino")
    xml.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(EngineLoadError, match="not a loadable OpenVINO IR"):
        create_engine(xml, "openvino")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(EngineLoadError, match=r"reads OpenVINO IR \(.xml"):
        create_engine(text, "openvino")


def test_a_missing_device_is_a_clear_error():
    import openvino

    if any(d.startswith("NPU") for d in openvino.Core().available_devices):
        pytest.skip("this machine has an NPU")
    with pytest.raises(EngineLoadError, match="'NPU' is not available.*available devices: CPU"):
        create_engine(YOLO, {"kind": "openvino", "device": "NPU"})
