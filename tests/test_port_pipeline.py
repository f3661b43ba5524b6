"""`oko port` mechanics with stand-in targets: stages, fidelity, reports, atomic output."""

import json
import shutil

import numpy as np
import onnx
import pytest
import yaml
from onnx import numpy_helper

from oko.core import ConfigError
from oko.models import load_detector
from oko.port import PortArtifact, PortTarget
from oko.port.fidelity import (average_precision50, cosine, detection_agreement,
                               euclidean_similarity, miou_agreement, top1_agreement)
from oko.port.onnx_prep import parse_input_shapes, prepare_onnx
from oko.port.pipeline import PortFidelityError, PortRequest, port_model

from conftest import SAMPLE_VIDEO, YOLO_DATA

from oko.core import Detections


class CopyTarget(PortTarget):
    """Stand-in target: the prepared ONNX as is (a perfect port)."""

    name = "test-copy"
    precisions = ("f32", "int8")

    def compile(self, job):
        dst = job.work_dir / "model.onnx"
        shutil.copy(job.onnx_path, dst)
        assert job.precision != "int8" or job.calibration[job.input_names[0]].shape[0] >= 1
        return PortArtifact(dst, {"kind": "onnxruntime"}, estimated_ms=1.5,
                            estimate_source="stand-in", notes=["copied"])


class NoisyTarget(PortTarget):
    """Stand-in target that damages the weights (a broken port)."""

    name = "test-noisy"
    precisions = ("f32",)

    def compile(self, job):
        model = onnx.load(str(job.onnx_path))
        rng = np.random.default_rng(0)
        for init in model.graph.initializer:
            w = numpy_helper.to_array(init)
            if w.dtype == np.float32 and w.size > 100:
                init.CopyFrom(numpy_helper.from_array(
                    (w + rng.normal(0, 0.5 * (np.std(w) + 1e-6), w.shape)).astype(np.float32),
                    init.name))
        dst = job.work_dir / "model.onnx"
        onnx.save(model, str(dst))
        return PortArtifact(dst, {"kind": "onnxruntime"})


YOLO = str(YOLO_DATA / "yolov8n-320.onnx")


def test_a_perfect_port_passes_and_is_loadable_by_path(tmp_path):
    out = tmp_path / "ported"
    report = port_model(PortRequest(YOLO, "test-copy", "int8", out, calib=YOLO_DATA / "images",
                                    calib_count=3))
    assert report.passed
    assert {p.name for p in out.iterdir()} == {"model.onnx", "manifest.yaml", "report.json",
                                               "report.md"}
    assert all(o.cosine_min > 0.99999 for o in report.outputs)
    assert report.task.value == pytest.approx(1.0)
    data = json.loads((out / "report.json").read_text())
    assert data["passed"] and data["speed"]["estimated_ms"] == 1.5
    manifest = yaml.safe_load((out / "manifest.yaml").read_text())
    assert manifest["engine"] == {"kind": "onnxruntime"}
    assert manifest["provenance"]["target"] == "test-copy"
    det = load_detector(out)  # every oko command can now use the port by path
    assert det.manifest.name.endswith("test-copy-int8")
    assert "| output0 |" in (out / "report.md").read_text()


def test_a_port_carries_the_model_folder_companions(tmp_path):
    """A recogniser's dictionary (and the licence) travel with the port: the ported
    manifest refers to them by the same relative names."""
    from oko.models.recognizer import load_recognizer

    out = tmp_path / "ported"
    port_model(PortRequest("ppocr-rec-v4", "test-copy", "f32", out, val_count=2))
    assert {"dict.txt", "LICENSE-Apache-2.0.txt"} <= {p.name for p in out.iterdir()}
    assert load_recognizer(out) is not None


def test_a_face_detector_ports_with_detection_agreement(tmp_path):
    """Face families decode the generic letterboxed validation frames too."""
    faces = YOLO_DATA.parents[1] / "data" / "faces"
    report = port_model(PortRequest("yunet-face", "test-copy", "f32", tmp_path / "p",
                                    val=faces, val_count=4))
    assert report.task.value == pytest.approx(1.0)
    assert report.task.details["fp32_boxes"] >= 8  # group photos: several faces each


def test_a_broken_port_fails_and_leaves_no_output(tmp_path):
    out = tmp_path / "ported"
    with pytest.raises(PortFidelityError, match="output output0: cosine"):
        port_model(PortRequest(YOLO, "test-noisy", "f32", out, val=YOLO_DATA / "images"))
    assert not out.exists()
    rejected = tmp_path / "ported.rejected"
    assert json.loads((rejected / "report.json").read_text())["passed"] is False
    # --accept-loss keeps it, with the failures in the report.
    report = port_model(PortRequest(YOLO, "test-noisy", "f32", out, val=YOLO_DATA / "images",
                                    accept_loss=True))
    assert report.failures and (out / "model.onnx").exists()
    assert not list(tmp_path.glob(".ported.*"))  # no temporary folders left behind


def test_bad_requests(tmp_path):
    with pytest.raises(ConfigError, match="--calib is required for int8"):
        port_model(PortRequest(YOLO, "test-copy", "int8", tmp_path / "o"))
    with pytest.raises(ConfigError, match="has no f16 precision"):
        port_model(PortRequest(YOLO, "test-copy", "f16", tmp_path / "o"))
    with pytest.raises(Exception, match="unknown port target 'tpu9000'"):
        port_model(PortRequest(YOLO, "tpu9000", "f32", tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="folder has no images"):
        port_model(PortRequest(YOLO, "test-copy", "int8", tmp_path / "o", calib=tmp_path / "empty"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all" * 10)
    with pytest.raises(Exception, match="junk.onnx"):
        port_model(PortRequest(str(tmp_path / "junk.onnx"), "test-copy", "f32", tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_dynamic_input_needs_input_shape(tmp_path):
    src = YOLO_DATA / "yolov8n-320-dynamic.onnx"
    with pytest.raises(ConfigError, match="input 'images' has a dynamic shape"):
        prepare_onnx(src, tmp_path / "p.onnx", {})
    prepared = prepare_onnx(src, tmp_path / "p.onnx", parse_input_shapes(["images=1,3,320,320"]))
    assert prepared.input_shapes == {"images": (1, 3, 320, 320)}
    with pytest.raises(ConfigError, match="--input-shape"):
        parse_input_shapes(["images=1,3,x"])


def test_metrics_known_answers():
    a = np.array([1.0, 2.0, 3.0])
    assert cosine(a, a) == pytest.approx(1.0) and cosine(a, -a) == pytest.approx(-1.0)
    assert euclidean_similarity(a, a) == 1.0
    assert euclidean_similarity(a, a * 1.1) == pytest.approx(1 - 0.1 / 1.05)
    truth = Detections(xyxy=[[0, 0, 10, 10], [20, 20, 30, 30]], confidence=[0.9, 0.8], class_id=[0, 1])
    pred = Detections(xyxy=[[0, 0, 10, 11], [50, 50, 60, 60]], confidence=[0.9, 0.7], class_id=[0, 1])
    agree = detection_agreement([truth], [pred])
    assert agree.details["precision"] == 0.5 and agree.details["recall"] == 0.5
    assert average_precision50([truth], [truth]) == pytest.approx(1.0)
    assert average_precision50([pred], [truth]) == pytest.approx(0.5)
    assert top1_agreement([np.array([0, 1.0]), np.array([1.0, 0])],
                          [np.array([0, 1.0]), np.array([0, 1.0])]).value == 0.5
    m = np.zeros((2, 4, 4))
    m[0, :, :2] = 1
    m[1, :, 2:] = 1
    assert miou_agreement([m], [m]).value == 1.0


def teardown_module():
    PortTarget.registry.pop("test-copy", None)
    PortTarget.registry.pop("test-noisy", None)
