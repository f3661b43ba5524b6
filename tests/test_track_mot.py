"""MOTChallenge files: reading, writing, errors, and tracking a detection file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mot_synth import SynthConfig, make_sequence, write_mot

from oko.core import Detections
from oko.core.errors import ConfigError, SourceError, UnknownNameError
from oko.track.mot import read_mot, track_mot_file, write_mot_tracks


def test_read_detections_grouped_by_frame(tmp_path: Path) -> None:
    path = tmp_path / "det.txt"
    path.write_text("# MOT17-style detections\n"
                    "2,-1,10,20,30,40,0.9,-1,-1,-1\n"
                    "\n"
                    "1,-1,0.5,1.5,10,20,0.25\n"
                    "2,-1,100,200,5,5,0.75,-1,-1,-1\n")
    frames = read_mot(path)
    assert sorted(frames) == [1, 2]
    np.testing.assert_allclose(frames[1].xyxy, [[0.5, 1.5, 10.5, 21.5]])
    np.testing.assert_allclose(frames[2].xyxy, [[10, 20, 40, 60], [100, 200, 105, 205]])
    np.testing.assert_allclose(frames[2].confidence, [0.9, 0.75])
    assert frames[2].track_id.tolist() == [-1, -1]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    written = {}
    for frame in (1, 2, 5):
        xy = rng.uniform(0, 1000, (3, 2)).round(2)
        xyxy = np.concatenate([xy, xy + rng.uniform(10, 100, (3, 2)).round(2)], axis=1)
        written[frame] = Detections(xyxy=xyxy, track_id=np.array([frame, 7, -1]))
    path = tmp_path / "tracks.txt"
    assert write_mot_tracks(path, written.items()) == 6  # -1 rows are not written
    assert path.read_text().splitlines()[0].endswith(",1,-1,-1,-1")
    back = read_mot(path)
    assert sorted(back) == [1, 2, 5]
    for frame, dets in written.items():
        assert back[frame].track_id.tolist() == [frame, 7]
        np.testing.assert_allclose(back[frame].xyxy, dets.xyxy[:2], atol=0.011)


@pytest.mark.parametrize(("line", "message"), [
    ("1,-1,10,20,30", "at least 7"),
    ("1,-1,10,abc,30,40,0.9", "not a number"),
    ("0,-1,10,20,30,40,0.9", "frame must be an integer >= 1"),
    ("1.5,-1,10,20,30,40,0.9", "frame must be an integer >= 1"),
    ("1,-1,10,20,-30,40,0.9", "width and height must be positive"),
    ("1,-1,10,20,30,inf,0.9", "finite"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("1,-1,10,20,30,40,0.9\n\n" + line + "\n")
    with pytest.raises(SourceError, match=message) as info:
        read_mot(path)
    assert f"{path}:3:" in str(info.value)


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.txt"):
        read_mot(tmp_path / "nope.txt")
    with pytest.raises(SourceError, match=r"nope\.txt"):
        track_mot_file(tmp_path / "nope.txt", tmp_path / "out.txt")


@pytest.mark.parametrize("kind", ["ocsort", "bytetrack"])
def test_track_mot_file(tmp_path: Path, kind: str) -> None:
    seq = make_sequence(5, SynthConfig(frames=120))
    det_path = tmp_path / "det.txt"
    dets = seq.dets[seq.dets[:, 0] != 60]  # a frame without detections inside the file
    write_mot(det_path, dets)
    out_path = tmp_path / "out.txt"
    stats = track_mot_file(det_path, out_path, kind, fps=30.0)
    assert stats["frames"] == 120
    assert 10 <= stats["tracks"] <= 60
    assert stats["time"] > 0
    tracks = read_mot(out_path)
    assert sum(len(d) for d in tracks.values()) == stats["boxes"]
    ids = np.concatenate([d.track_id for d in tracks.values()])
    assert len(np.unique(ids)) == stats["tracks"] and ids.min() >= 1
    assert 60 not in tracks


def test_track_mot_file_rejects_bad_options(tmp_path: Path) -> None:
    det_path = tmp_path / "det.txt"
    det_path.write_text("1,-1,10,20,30,40,0.9\n")
    with pytest.raises(UnknownNameError, match="deepsort"):
        track_mot_file(det_path, tmp_path / "out.txt", "deepsort")
    with pytest.raises(ConfigError, match="fps"):
        track_mot_file(det_path, tmp_path / "out.txt", "ocsort", fps=0)
    with pytest.raises(ConfigError, match="cannot write"):
        track_mot_file(det_path, tmp_path / "missing-dir" / "out.txt", "ocsort")
