"""Port target ``openvino``: IR in f32, f16 and NNCF INT8, run through the openvino engine."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

import openvino
import yaml

from oko.core import ConfigError
from oko.engines import create_engine
from oko.engines import openvino as _ov_engine  # noqa: F401  (registers the engine)
from oko.models import load_detector
from oko.port import get_target
from oko.port.openvino import OpenVinoTarget, last_weighted_layers

from conftest import SAMPLE_VIDEO, YOLO_DATA
from port_cases import DetectorCase, nanodet_case


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> DetectorCase:
    return nanodet_case(tmp_path_factory.mktemp("nanodet"))


def _ops(xml) -> list[str]:
    return [op.get_type_name() for op in openvino.Core().read_model(str(xml)).get_ordered_ops()]


def test_registered():
    target = get_target("openvino")
    assert isinstance(target, OpenVinoTarget)
    assert target.precisions == ("f32", "f16", "int8")
    target.check_available()


def test_f32_ir_with_dynamic_batch_matches_onnxruntime(case, tmp_path):
    art = OpenVinoTarget().compile(case.job("f32", tmp_path))
    assert art.path == tmp_path / "model.xml" and (tmp_path / "model.bin").is_file()
    assert art.extra["files"] == [tmp_path / "model.bin"]  # copied beside the .xml
    assert art.engine == {"kind": "openvino", "precision_hint": "f32"}
    assert any("dynamic batch" in n for n in art.notes)
    engine = create_engine(art.path, art.engine)
    assert engine.max_batch is None
    outputs, task = case.fidelity(engine)
    assert min(f.cosine_mean for f in outputs.values()) >= 0.99999
    assert task.value == 1.0
    batch = engine.run({"images": case.val[:3]})
    for i in range(3):
        single = engine.run({"images": case.val[i:i + 1]})
        for name, arr in single.items():
            np.testing.assert_allclose(batch[name][i:i + 1], arr, rtol=1e-4, atol=1e-4)


def test_f16_compresses_weights_and_lets_the_device_choose(case, tmp_path):
    f32 = OpenVinoTarget().compile(case.job("f32", tmp_path / "f32"))
    art = OpenVinoTarget().compile(case.job("f16", tmp_path / "f16"))
    assert art.engine == {"kind": "openvino", "precision_hint": "auto"}
    size16 = art.path.with_suffix(".bin").stat().st_size
    size32 = f32.path.with_suffix(".bin").stat().st_size
    assert 0.45 < size16 / size32 < 0.55
    outputs, task = case.fidelity(create_engine(art.path, art.engine))
    assert min(f.cosine_mean for f in outputs.values()) >= 0.999
    assert task.value >= 0.97


@pytest.mark.slow
def test_int8_stays_close_to_fp32_on_held_out_frames(case, tmp_path):
    art = OpenVinoTarget().compile(case.job("int8", tmp_path))
    assert art.engine == {"kind": "openvino", "precision_hint": "f32"}
    assert _ops(art.path).count("FakeQuantize") > 30
    outputs, task = case.fidelity(create_engine(art.path, art.engine))
    # measured on this split: cosine 0.9982-0.9994 per output, F1 0.969 (P 0.962, R 0.976)
    for name, fid in outputs.items():
        assert fid.cosine_mean >= 0.995, (name, fid)
    assert task.value >= 0.95, task


def test_last_weighted_layers_are_the_head_convolutions(case):
    model = openvino.Core().read_model(str(case.prepared.path))
    assert last_weighted_layers(model) == [
        "Conv_73/WithoutBiases", "Conv_78/WithoutBiases", "Conv_83/WithoutBiases"]


@pytest.mark.slow
def test_a_model_with_a_fixed_batch_keeps_it(tmp_path):
    """The Ultralytics static export bakes batch 1 into reshapes: no dynamic batch."""
    from oko.port.base import PortJob

    src = YOLO_DATA / "yolov8n-320.onnx"
    job = PortJob(onnx_path=src, model_name="yolov8n", precision="f32", input_names=["images"],
                  input_shapes={"images": (1, 3, 320, 320)}, output_names=["output0"],
                  calibration={}, work_dir=tmp_path, family="yolo")
    art = OpenVinoTarget().compile(job)
    assert any("fixed batch 1" in n for n in art.notes)
    assert create_engine(art.path, art.engine).max_batch == 1


@pytest.mark.slow
def test_oko_port_pipeline_makes_a_loadable_int8_detector(tmp_path):
    from oko.port.pipeline import PortRequest, port_model

    out = tmp_path / "nanodet-ov-int8"
    report = port_model(PortRequest("nanodet-coco", "openvino", "int8", out, calib=SAMPLE_VIDEO))
    assert report.passed
    assert {"model.xml", "model.bin", "manifest.yaml"} <= {p.name for p in out.iterdir()}
    assert yaml.safe_load((out / "manifest.yaml").read_text())["engine"]["kind"] == "openvino"
    det = load_detector(out)
    assert det.engine.kind == "openvino"


def test_bad_requests_are_config_errors(case, tmp_path):
    target = OpenVinoTarget()
    job = case.job("int8", tmp_path / "a")
    job.calibration = {}
    with pytest.raises(ConfigError, match="needs calibration data"):
        target.compile(job)
    with pytest.raises(ConfigError, match="presett"):
        target.compile(case.job("f32", tmp_path / "b", presett="mixed"))
    with pytest.raises(ConfigError, match="no layer named .Conv_999."):
        target.compile(case.job("int8", tmp_path / "c", exclude=["Conv_999"]))
