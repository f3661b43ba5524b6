"""The CLI as a user meets it: JSON schema, and one clear line with exit 2 for bad input."""

import json
import shutil

import numpy as np
import pytest
import yaml

from conftest import YOLO_DATA, assert_user_error, run_oko
from test_sources import corrupt_copy

from oko.models.labels import COCO80

YOLO = str(YOLO_DATA / "yolov8n-320.onnx")


def test_analyze_json_schema(sample_video):
    proc = run_oko("analyze", str(sample_video), "--module", "detect", "--json",
                   "--max-frames", "3", "--model", YOLO)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"] == str(sample_video)
    assert doc["module"] == "detect"
    assert [f["index"] for f in doc["frames"]] == [0, 1, 2]
    n = 0
    for frame in doc["frames"]:
        assert set(frame) == {"index", "timestamp", "detections"}
        for det in frame["detections"]:
            assert set(det) == {"bbox", "score", "label"}
            x1, y1, x2, y2 = det["bbox"]
            assert 0 <= x1 <= x2 <= 768 and 0 <= y1 <= y2 <= 576
            assert 0 < det["score"] <= 1
            assert det["label"] in COCO80
            n += 1
    assert n > 0
    assert doc["summary"]["frames"] == 3
    assert sum(doc["summary"]["detections_per_label"].values()) == n


def test_analyze_image_folder_json(tmp_path):
    for p in (YOLO_DATA / "images").glob("*.jpg"):
        shutil.copy(p, tmp_path / p.name)
    proc = run_oko("analyze", str(tmp_path), "--json", "--model", YOLO)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["frames"]) == 3


def test_corrupt_frames_are_skipped_and_counted(sample_video, tmp_path):
    bad = corrupt_copy(sample_video, tmp_path / "corrupt.mp4")
    proc = run_oko("analyze", str(bad), "--json", "--model", YOLO)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["corrupt_frames"] > 0
    assert len(doc["frames"]) > 400


def test_missing_path():
    assert_user_error(run_oko("analyze", "/no/such/video.mp4"), "/no/such/video.mp4",
                      "no such file")


def test_file_that_is_not_media(tmp_path):
    (tmp_path / "notes.txt").write_text("just some text\n" * 50)
    assert_user_error(run_oko("analyze", str(tmp_path / "notes.txt")), "notes.txt",
                      "not a readable video or image")


def test_truncated_header_video(sample_video, tmp_path):
    (tmp_path / "head.mp4").write_bytes(sample_video.read_bytes()[:3000])
    proc = run_oko("analyze", str(tmp_path / "head.mp4"), "--model", YOLO)
    # Either unreadable at open (exit 2, one line) or decodes nothing: never a traceback.
    if proc.returncode == 2:
        assert_user_error(proc, "head.mp4")
    else:
        assert proc.returncode == 0 and "Traceback" not in proc.stderr


def test_onnx_file_that_is_not_a_model(sample_video, tmp_path):
    fake = tmp_path / "broken.onnx"
    fake.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert_user_error(run_oko("analyze", str(sample_video), "--model", str(fake)),
                      "broken.onnx", "not a loadable ONNX model")


def write_manifest(folder, **changes):
    shutil.copy(YOLO, folder / "model.onnx")
    manifest = {"name": "my-yolo", "task": "detect", "family": "yolo", "file": "model.onnx",
                "input": {"width": 320, "height": 320}, "labels": "coco80"}
    for key, value in changes.items():
        if isinstance(value, dict):
            manifest[key] = manifest.get(key, {}) | value
        else:
            manifest[key] = value
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def test_manifest_model_by_folder_works(sample_video, tmp_path):
    folder = write_manifest(tmp_path)
    proc = run_oko("analyze", str(sample_video), "--json", "--max-frames", "1", "--model", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == "my-yolo"


def test_manifest_that_does_not_match_model_inputs(sample_video, tmp_path):
    folder = write_manifest(tmp_path, input={"width": 640, "height": 640})
    assert_user_error(run_oko("analyze", str(sample_video), "--model", str(folder)),
                      "manifest.yaml", "640x640", "(1, 3, 320, 320)")


def test_manifest_with_wrong_label_count(sample_video, tmp_path):
    folder = write_manifest(tmp_path, labels=["person", "car"])
    assert_user_error(run_oko("analyze", str(sample_video), "--model", str(folder)),
                      "84 rows", "2 labels")


def test_manifest_with_unknown_key_names_the_field(sample_video, tmp_path):
    folder = write_manifest(tmp_path, input={"widht": 320})
    assert_user_error(run_oko("analyze", str(sample_video), "--model", str(folder)),
                      "input.widht", "Extra inputs are not permitted")


@pytest.mark.parametrize(("args", "needles"), [
    (["--model", "no-such-model"], ["unknown model 'no-such-model'", "nanodet-coco"]),
    (["--module", "teleport"], ["unknown module 'teleport'", "detect"]),
    (["--engine", "warp-drive"], ["unknown engine 'warp-drive'", "onnxruntime"]),
])
def test_unknown_names(sample_video, args, needles):
    assert_user_error(run_oko("analyze", str(sample_video), *args), *needles)


def test_bench_json_reports_stages_and_ratios():
    proc = run_oko("bench", YOLO, "--frames", "10", "--threads", "1", "--batch", "1,2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    (report,) = doc["reports"]
    for key in ("pre_ms", "infer_ms", "post_ms", "raw_engine_fps", "pipeline_fps", "ratio"):
        assert report[key] > 0
    assert [b["batch"] for b in doc["batches"]["1"]] == [1]  # static batch-1 model: no batch 2
    assert doc["ported_vs_original"] is None
