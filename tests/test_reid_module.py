"""The reid module end to end through `oko analyze` on the bundled sample video: tracks and
global ids on frames, person events with a decodable embedding and a snapshot, the ONNX
embedder option, option errors as one-line user errors, and the track store it fills."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, SAMPLE_VIDEO, assert_user_error, run_oko
from oko.modules.reid import decode_embedding, encode_embedding
from oko.reid.store import TrackStore

REID_RANDOM = DATA / "reid" / "reid-random"
FRAMES = 60


def analyze(*options: str) -> dict:
    args = ["analyze", str(SAMPLE_VIDEO), "--module", "reid", "--max-frames", str(FRAMES),
            "--json"]
    for opt in options:
        args += ["--option", opt]
    proc = run_oko(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def person_events(result: dict) -> list[dict]:
    return [e for f in result["frames"] for e in f.get("events", [])
            if e["type"] in ("person_appeared", "person_reidentified")]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[dict, Path]:
    """The default (stripes) run, writing a gallery as well."""
    gallery = tmp_path_factory.mktemp("reid") / "tracks.db"
    return analyze(f"gallery={gallery}"), gallery


def test_frames_carry_track_and_global_ids(default_run) -> None:
    result, _ = default_run
    assert result["module"] == "reid"
    assert result["model"] == "nanodet-coco+person-mask-selfie+stripes"
    frames = result["frames"]
    assert len(frames) == FRAMES and result["summary"]["frames"] == FRAMES
    people = [d for f in frames for d in f["detections"]]
    assert people and {d["label"] for d in people} == {"person"}
    assert all(isinstance(d["track_id"], int) and "global_id" in d for d in people)
    assert all(d["global_id"] == -1 for d in frames[0]["detections"])  # nothing decided yet
    late = [d for f in frames[FRAMES // 2:] for d in f["detections"] if d["global_id"] >= 0]
    assert len(late) >= 20
    # per track: -1 until decided, then its event's global id for good; the event's frame
    # (its best view) comes no later than the first frame showing the id
    decided = {e["data"]["track_id"]: (e["data"]["global_id"], int(e["frame_index"]))
               for e in person_events(result)}
    seen: dict[int, list[tuple[int, int]]] = {}
    for f in frames:
        for d in f["detections"]:
            seen.setdefault(d["track_id"], []).append((f["index"], d["global_id"]))
    for tid, history in seen.items():
        ids = [g for _, g in history]
        gid, best_frame = decided.get(tid, (-1, FRAMES))
        first = next((i for i, g in enumerate(ids) if g != -1), len(ids))
        assert ids[first:] == [gid] * (len(ids) - first), (tid, ids)
        assert all(g == -1 for g in ids[:first])
        if first < len(ids):
            assert history[first][0] >= best_frame
    assert any(g != -1 for h in seen.values() for _, g in h)


def test_person_events_carry_identity_embedding_and_snapshot(default_run) -> None:
    result, _ = default_run
    events = person_events(result)
    assert len(events) >= 3
    assert result["summary"]["events"] == {"person_appeared": len(events)}  # one camera
    gids = [e["data"]["global_id"] for e in events]
    assert sorted(gids) == list(range(1, len(events) + 1))    # new people, numbered from 1
    tracks = [e["data"]["track_id"] for e in events]
    assert len(set(tracks)) == len(tracks)                     # one decision per track
    for e in events:
        data = e["data"]
        assert e["type"] == "person_appeared" and e["channel_id"] == "analyze"
        assert data["embedding_model"] == "stripes-v1/1632d"
        assert data["embedding_dtype"] == "float16"
        vec = decode_embedding(data["embedding"])
        assert vec.shape == (1632,) and vec.dtype == np.float32
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=5e-3)
        assert set(data["attributes"]) == {"upper_colour", "lower_colour"}
        x1, y1, x2, y2 = data["bbox"]
        assert x2 > x1 and y2 - y1 >= 32                       # min_height
        jpeg = base64.b64decode(e["snapshot_jpeg"])
        assert jpeg[:2] == b"\xff\xd8"
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        assert abs(img.shape[0] - (y2 - y1)) <= 2 and abs(img.shape[1] - (x2 - x1)) <= 2
    # different people have different embeddings
    a, b = (decode_embedding(e["data"]["embedding"]) for e in events[:2])
    assert float(a @ b) < 0.999


def test_embedding_codec_round_trip() -> None:
    v = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    v /= np.linalg.norm(v)
    text = encode_embedding(v)
    assert len(base64.b64decode(text)) == 1024                  # 2 bytes per value
    np.testing.assert_allclose(decode_embedding(text), v, atol=1e-3)


def test_gallery_rows_match_person_events(default_run) -> None:
    result, gallery = default_run
    events = person_events(result)
    with TrackStore.open(gallery, readonly=True) as store:
        assert store.model_id == "stripes-v1/1632d" and store.dim == 1632
        assert len(store) == len(events)
        matrix, tracks = store.load()
        by_track = {t.track_id: (t, row) for t, row in zip(tracks, matrix, strict=True)}
        assert set(by_track) == {e["data"]["track_id"] for e in events}
        for e in events:
            t, row = by_track[e["data"]["track_id"]]
            assert t.global_id == e["data"]["global_id"] and t.channel == "analyze"
            assert t.attributes == e["data"]["attributes"]
            np.testing.assert_allclose(row, decode_embedding(e["data"]["embedding"]),
                                       atol=2e-3)
            assert store.crop(t.row) == base64.b64decode(e["snapshot_jpeg"])
        # the store finds each track from its own event's embedding
        (hits,) = store.search(decode_embedding(events[0]["data"]["embedding"])[None], k=1)
        assert hits[0].track.track_id == events[0]["data"]["track_id"]


def test_onnx_embedder_option() -> None:
    result = analyze(f"embedder={REID_RANDOM}")
    assert result["model"] == "nanodet-coco+person-mask-selfie+reid-random"
    events = person_events(result)
    assert events
    for e in events:
        assert e["data"]["embedding_model"].startswith("reid-random/512d/")
        vec = decode_embedding(e["data"]["embedding"])
        assert vec.shape == (512,)
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=5e-3)
        assert e["snapshot_jpeg"]
    late = [d for f in result["frames"][FRAMES // 2:] for d in f["detections"]
            if d["global_id"] >= 0]
    assert late


def test_masks_detector_without_seg_model_is_user_error() -> None:
    proc = run_oko("analyze", str(SAMPLE_VIDEO), "--module", "reid", "--max-frames", "1",
                   "--option", "masks=detector")
    assert_user_error(proc, "masks=detector", "gives no masks")


def test_non_reid_embedder_is_user_error() -> None:
    proc = run_oko("analyze", str(SAMPLE_VIDEO), "--module", "reid", "--max-frames", "1",
                   "--option", "embedder=person-mask-selfie")
    assert_user_error(proc, "not a person ReID embedder")


def test_gallery_of_another_model_is_user_error(tmp_path: Path) -> None:
    gallery = tmp_path / "tracks.db"
    TrackStore.create(gallery, "stripes-v1/1632d", "stripes", 1632).close()
    proc = run_oko("analyze", str(SAMPLE_VIDEO), "--module", "reid", "--max-frames", "1",
                   "--option", f"embedder={REID_RANDOM}", "--option", f"gallery={gallery}")
    assert_user_error(proc, "'stripes'", "'reid-random'")
    with TrackStore.open(gallery, readonly=True) as store:
        assert len(store) == 0
