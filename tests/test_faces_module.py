"""The `faces` module: per-frame results, and one decision per track in the runtime."""

import json

import av
import cv2
import numpy as np
import pytest
from conftest import DATA

from oko.config import parse_config
from oko.core.detections import Detections
from oko.core.errors import ConfigError
from oko.core.events import detection_records
from oko.core.frame import Frame
from oko.faces.gallery import Gallery
from oko.faces.pipeline import read_image
from oko.modules import create_module
from oko.video import open_source, run_module
from oko.video.runtime import Runtime

FACES = DATA / "faces"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A gallery with Barack Obama enrolled from one photo (obama.jpg)."""
    module = create_module("faces", {})
    res = module.pipeline([read_image(FACES / "obama.jpg")])[0]
    i = res.largest()
    path = tmp_path_factory.mktemp("gallery") / "faces.db"
    emb = module.embedder
    with Gallery.create(path, emb.model_id, emb.name, emb.dim) as g:
        g.enroll("Barack Obama", res.embeddings[i:i + 1], [1.0], ["obama.jpg"], ["x"])
    return path


@pytest.fixture(scope="module")
def module(gallery):
    return create_module("faces", {"gallery": str(gallery)})


def test_per_frame_results_in_the_shared_shape(module):
    with open_source(FACES / "obama2.jpg") as source:
        results = list(run_module(source, module))
    dets = results[0].detections
    records = detection_records(dets, list(module.labels))
    assert len(records) >= 1
    best = max(records, key=lambda r: r["quality"])
    assert best["label"] == "face" and best["identity"] == "Barack Obama"
    assert best["similarity"] > 0.6 and len(best["landmarks"]) == 5
    assert set(best) == {"bbox", "score", "label", "landmarks", "quality", "identity",
                         "similarity", "attributes"}
    # Default attributes: gender (vendored model) and, once installed, age (Obama was 48).
    attrs = best["attributes"]
    assert attrs["gender"] == "male" and 0.5 < attrs["gender_score"] <= 1
    if "age" in attrs:
        assert 25 <= attrs["age"] <= 70 and attrs["age_group"] in ("21-40", "41-60")
    json.dumps(records)  # JSON-ready: no NaN, no numpy scalars
    assert {"pre", "infer", "post", "align", "embed"} <= set(results[0].frame.timings)
    assert module.model_name.startswith("yunet-face+sface+gender-oarriaga")


def test_strangers_have_no_identity_and_faces_without_a_gallery_work(module):
    with open_source(FACES / "group3.jpg") as source:
        dets = next(iter(run_module(source, module))).detections
    assert len(dets) == 3 and all(v is None for v in dets.data["identity"])
    plain = create_module("faces", {})
    frame = Frame(read_image(FACES / "group3.jpg"), "c", 0, 0.0)
    out = plain.process([frame])[0]
    assert len(out) == 3 and "identity" not in out.data and out.embedding.shape == (3, 128)


def test_options_are_checked(gallery, tmp_path):
    with pytest.raises(ConfigError, match="min_quality"):
        create_module("faces", {"min_quality": 3})
    with pytest.raises(ConfigError, match="index"):
        create_module("faces", {"index": "magic"})
    other = tmp_path / "other.db"
    Gallery.create(other, "arcface-r50/512d/0123", "arcface-r50", 512).close()
    from oko.faces.gallery import GalleryModelMismatch

    with pytest.raises(GalleryModelMismatch, match="arcface-r50"):
        create_module("faces", {"gallery": str(other)})


def test_reporter_decides_once_per_track_from_its_best_frames(module):
    """Direct reporter check with hand-made tracked detections: no event spam."""
    reporter = module.reporter("cam")
    image = read_image(FACES / "obama2.jpg")
    res = module.pipeline([image])[0]
    i = res.largest()
    emb = res.embeddings[i:i + 1]
    events = []
    for n in range(12):
        dets = Detections(xyxy=res.detections.xyxy[i:i + 1], confidence=[0.9], class_id=[0],
                          track_id=[7], embedding=emb,
                          data={"quality": np.array([0.5 + 0.01 * n], np.float32)})
        events += reporter.update(Frame(image, "cam", n, n / 10), dets)
    assert [e.type for e in events] == ["face_recognized"]          # after decide_after = 5
    assert events[0].data["person"] == "Barack Obama" and events[0].data["track_id"] == 7
    assert events[0].frame_index == 4 and events[0].data["frames_used"] == 5
    assert reporter.finish() == []                                  # nothing left undecided


def make_video(path, fps=10):
    """Obama (panning) for 3 s, then a group photo (4 strangers) for 3 s, 800x600."""
    obama = read_image(FACES / "obama2.jpg")
    obama = cv2.resize(obama, (313, 600))
    group = read_image(FACES / "group4.jpg")
    group = cv2.resize(group, (800, 533))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 800, 600, "yuv420p"
        stream.bit_rate = 4_000_000
        for i in range(60):
            frame = np.zeros((600, 800, 3), np.uint8)
            if i < 30:
                x = 100 + 4 * i
                frame[:, x:x + 313] = obama
            else:
                frame[30 + (i % 2):563 + (i % 2)] = group
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.slow
def test_channel_emits_one_event_per_track(gallery, tmp_path):
    video = make_video(tmp_path / "clip.mp4")
    out = tmp_path / "events.jsonl"
    cfg = parse_config({
        "api": {"enabled": False}, "sinks": [{"kind": "jsonl", "path": str(out)}],
        "channels": [{"id": "door", "source": str(video),
                      "module": {"name": "faces", "options": {"gallery": str(gallery)}}}],
    }, "test")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks, node="t")
    try:
        runtime.add_channel(cfg.channels[0])
        assert runtime.wait(timeout_s=240)
        snap = runtime.snapshot()
    finally:
        runtime.stop()
    events = [json.loads(x) for x in out.read_text().splitlines()]
    faces = [e for e in events if e["type"] in ("face_recognized", "face_unknown")]
    assert not [e for e in events if e["type"] == "channel_error"], events
    tracks = [e["data"]["track_id"] for e in faces]
    assert len(tracks) == len(set(tracks))                       # once per track
    recognized = [e for e in faces if e["type"] == "face_recognized"]
    assert [e["data"]["person"] for e in recognized] == ["Barack Obama"]
    assert recognized[0]["frame_index"] < 30                      # decided during the pan
    unknown = [e for e in faces if e["type"] == "face_unknown"]
    assert len(unknown) == 4 and all(e["frame_index"] >= 30 for e in unknown)  # 4 strangers
    assert all(e.get("snapshot_jpeg") for e in unknown)           # with a face crop
    assert all(e["data"]["similarity"] < 0.363 for e in unknown)
    assert snap["channels"][0]["frames_processed"] == 60


def test_batches_and_attributes(gallery, tmp_path):
    """Several frames per call (one search for all of them), and an attribute model whose
    answers are known: every logit is 4 * (red - green) of the crop's mean colour."""
    import yaml
    from test_faces_multihead import linear_model

    from oko.faces.attributes import STANDARD_FACE_HEADS

    width = sum(len(h["classes"]) for h in STANDARD_FACE_HEADS)
    linear_model(tmp_path / "model.onnx", {"logits": (np.tile([[4.0, -4.0, 0.0]], (width, 1)),
                                                      np.zeros(width))})
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({
        "name": "face-attr-test", "task": "classify", "family": "multihead", "file": "model.onnx",
        "input": {"width": 8, "height": 8, "color": "RGB", "mean": [0, 0, 0],
                  "std": [255, 255, 255], "resize": "stretch"},
        "labels": [], "decode": {"heads": STANDARD_FACE_HEADS}}))
    mod = create_module("faces", {"gallery": str(gallery), "attributes": str(tmp_path),
                                  "attribute_margin": 0.3})
    frames = [Frame(read_image(FACES / name), "c", i, i / 10)
              for i, name in enumerate(["obama2.jpg", "group3.jpg", "biden.jpg"])]
    out = mod.process(frames)
    assert [len(d) for d in out] == [1, 3, 1]
    assert out[0].data["identity"].tolist() == ["Barack Obama"]
    assert out[1].data["identity"].tolist() == [None] * 3
    assert out[2].data["identity"].tolist() == [None]
    one = out[0].data["attributes"][0]
    assert set(one) == {h["name"] for h in STANDARD_FACE_HEADS} | {"gender_score"}
    crop = mod.attributes.crop  # the box crop the model saw: its mean colour gives the logit
    assert crop == "box"
    from oko.faces.attributes import box_crops

    box = box_crops(frames[0].image, out[0].xyxy, 0.3)[0]
    mean_rgb = cv2.resize(box, (8, 8), interpolation=cv2.INTER_LINEAR).reshape(-1, 3).mean(0)[::-1]
    expected = 1 / (1 + np.exp(-(4 * (mean_rgb[0] - mean_rgb[1]) / 255)))
    assert one["eyeglasses"]["score"] == pytest.approx(expected, abs=2e-3)
    json.dumps(detection_records(out[1], ["face"]))
