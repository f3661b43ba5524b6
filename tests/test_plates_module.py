"""The plates module end to end: in the runtime (a channel running ``module: {name: plates}``
with its tracker gives one plate_read event per track) and through the CLI."""

import base64
import json

import cv2
import numpy as np
import pytest
from conftest import DATA, assert_user_error, run_oko

from oko.config import parse_config
from oko.video.runtime import Runtime
from oko.video.writer import VideoWriter

CZ = DATA / "plates" / "cz_5AU5341.png"


def shifted_video(path, frames=24, step=6):
    """A short clip of the photo panning across a larger canvas (the car moves right)."""
    photo = cv2.imread(str(CZ))
    h, w = photo.shape[:2]
    width, height = w + frames * step + 32, h + 32
    writer = VideoWriter(path, 10.0, width - width % 2, height - height % 2)
    for i in range(frames):
        canvas = np.full((height - height % 2, width - width % 2, 3), 90, np.uint8)
        canvas[16:16 + h, i * step:i * step + w] = photo
        writer.write(canvas)
    writer.close()
    return path


@pytest.mark.slow
def test_one_plate_read_per_track_in_the_runtime(tmp_path):
    video = shifted_video(tmp_path / "pan.mp4")
    out = tmp_path / "events.jsonl"
    cfg = parse_config({
        "api": {"enabled": False}, "sinks": [{"kind": "jsonl", "path": str(out)}],
        "channels": [{"id": "gate", "source": str(video),
                      "module": {"name": "plates",
                                 "options": {"countries": ["CZ"], "search": "frame"}}}],
    }, "test")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks, node="t")
    try:
        runtime.add_channel(cfg.channels[0])
        assert runtime.wait(timeout_s=240)
        snap = runtime.snapshot()
    finally:
        runtime.stop()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    reads = [e for e in events if e["type"] == "plate_read"]
    assert [e["type"] for e in events if e["type"] == "channel_error"] == []
    assert len(reads) == 1, reads
    data = reads[0]["data"]
    assert data["text_latin"] == "5AU5341" and data["format"] == "cz_standard"
    assert data["track_id"] >= 1 and data["reads"] >= 10 and data["votes"] >= 10
    assert len(data["corners"]) == 4 and len(data["char_confidences"]) == 7
    jpeg = base64.b64decode(reads[0]["snapshot_jpeg"])
    plate = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert plate is not None and plate.shape[1] > 2 * plate.shape[0]   # an upright plate
    assert snap["channels"][0]["model"] == "plate-corners-retina+ppocr-rec-v4"


def test_cli_plates_json():
    proc = run_oko("analyze", str(CZ), "--module", "plates", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["module"] == "plates"
    det, = doc["frames"][0]["detections"]
    assert det["label"] == "plate" and det["text"] == "5AU5341" and det["text_latin"] == "5AU5341"
    assert det["format"] == "generic" and det["readable"] is True
    assert np.array(det["corners"]).shape == (4, 2) and len(det["char_confidences"]) == 7
    assert len(det["bbox"]) == 4 and 0 < det["score"] <= 1
    assert {"detect", "rectify", "read"} <= set(doc["summary"]["ms_per_frame"])


def test_cli_vehicles_json():
    proc = run_oko("analyze", str(CZ), "--module", "vehicles", "--json")
    assert proc.returncode == 0, proc.stderr
    dets = json.loads(proc.stdout)["frames"][0]["detections"]
    main = max(dets, key=lambda d: (d["bbox"][2] - d["bbox"][0]) * (d["bbox"][3] - d["bbox"][1]))
    assert main["label"] == "car" and main["colour"] in {"silver", "white", "grey"}
    assert 0 < main["colour_confidence"] <= 1


@pytest.mark.parametrize("option,needle", [("countries=[XX]", "plate country"),
                                           ("search=everywhere", "search"),
                                           ("model=ppocr-rec-v4", "not a detector"),
                                           ("reader=centernet-mbv3-coco", ""),
                                           ("attributes=nanodet-coco", "multi-head")])
def test_cli_bad_options_are_one_line_errors(option, needle):
    module = "vehicles" if option.startswith("attributes") else "plates"
    proc = run_oko("analyze", str(CZ), "--module", module, "--option", option, "--json")
    if option.startswith("reader="):
        # A COCO detector as a character reader is allowed (it reads no characters, so
        # every plate is unreadable): not an error, but nothing is read.
        assert proc.returncode == 0, proc.stderr
        dets = json.loads(proc.stdout)["frames"][0]["detections"]
        assert dets and all(d["text_latin"] is None and not d["readable"] for d in dets)
        return
    assert_user_error(proc, needle)
