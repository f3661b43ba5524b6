"""The ``attributes`` module: clothing colours per person, votes per track."""

from __future__ import annotations

import json

import cv2
import numpy as np

from oko.core.frame import Frame
from oko.modules import create_module
from oko.reid.colours import CLOTHING_COLOURS

from conftest import SAMPLE_VIDEO, run_oko


def test_people_get_clothing_colours_and_tracks_get_one_event():
    proc = run_oko("analyze", str(SAMPLE_VIDEO), "--module", "attributes", "--track",
                   "--max-frames", "40", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == "nanodet-coco+person-mask-selfie"
    people = [d for f in out["frames"] for d in f["detections"]]
    assert people and all(d["label"] == "person" and "track_id" in d for d in people)
    named = [d for d in people if d["upper_colour"] is not None]
    assert len(named) >= 0.5 * len(people)
    assert all(d["upper_colour"] in CLOTHING_COLOURS for d in named)
    events = [e for f in out["frames"] for e in f.get("events", [])]
    assert events and all(e["type"] == "person_attributes" for e in events)
    tracks = [e["data"]["track_id"] for e in events]
    assert len(tracks) == len(set(tracks))
    assert all(e["data"]["upper_colour"] in CLOTHING_COLOURS for e in events)


def test_a_painted_person_gets_the_painted_colours():
    """The sample's first frame with each detected person's torso painted red and legs
    painted blue (the middle of the box, so the detector still sees a person)."""
    module = create_module("attributes", {"masks": False})
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    ok, image = cap.read()
    assert ok
    dets = module.process([Frame(image.copy(), "c", 0, 0.0)])[0]
    tall = np.flatnonzero(dets.xyxy[:, 3] - dets.xyxy[:, 1] >= 48)
    assert len(tall)
    for x1, y1, x2, y2 in np.round(dets.xyxy[tall]).astype(int):
        h, w = y2 - y1, x2 - x1
        xa, xb = x1 + int(0.3 * w), x1 + int(0.7 * w)
        image[y1 + int(0.2 * h):y1 + int(0.5 * h), xa:xb] = (0, 0, 220)
        image[y1 + int(0.56 * h):y1 + int(0.9 * h), xa:xb] = (200, 60, 0)
    painted = module.process([Frame(image, "c", 0, 0.0)])[0]
    rows = np.flatnonzero(painted.xyxy[:, 3] - painted.xyxy[:, 1] >= 48)
    assert len(rows)
    assert list(painted.data["upper_colour"][rows]).count("red") >= 0.8 * len(rows)
    assert list(painted.data["lower_colour"][rows]).count("blue") >= 0.8 * len(rows)
