"""Per-track voting of plate reads and the plates reporter (one plate_read per track)."""

import numpy as np
import pytest

from oko.core.detections import Detections
from oko.core.frame import Frame
from oko.modules.plates import PlateReporter, PlatesOptions
from oko.plates.voting import PlateVotes


def test_votes_character_by_character_weighted_by_confidence():
    votes = PlateVotes()
    votes.add("A123BC77", [0.9] * 8, "ru_private")
    votes.add("A128BC77", [0.9, 0.9, 0.9, 0.4, 0.9, 0.9, 0.9, 0.9], "ru_private")
    votes.add("A123BC71", [0.8] * 7 + [0.3], "ru_private")
    vote = votes.result()
    assert vote.text_latin == "A123BC77" and vote.format == "ru_private"
    assert vote.reads == 3 and vote.total_reads == 3
    # Unanimous characters keep their mean confidence; contested ones lose some.
    assert vote.confidences[0] == pytest.approx((0.9 + 0.9 + 0.8) / 3)
    assert vote.confidences[3] == pytest.approx((0.9 + 0.8) / 3)


def test_the_best_supported_format_and_length_wins():
    votes = PlateVotes()
    votes.add("A123BC77", [0.9] * 8, "ru_private")
    votes.add("A123BC77", [0.8] * 8, "ru_private")
    votes.add("A123BC777", [0.95] * 9, "ru_private")   # one read with an extra character
    vote = votes.result()
    assert vote.text_latin == "A123BC77" and vote.reads == 2 and vote.total_reads == 3
    assert PlateVotes().result() is None
    with pytest.raises(ValueError):
        votes.add("AB", [0.9], None)


def plate_rows(track_ids, texts, confs, x=100.0):
    n = len(texts)
    text = np.empty(n, object)
    latin = np.empty(n, object)
    fmt = np.empty(n, object)
    country = np.empty(n, object)
    cc = np.empty(n, object)
    for i, (t, c) in enumerate(zip(texts, confs, strict=True)):
        latin[i] = t
        text[i] = None if t is None else t.translate(str.maketrans("ABEKMHOPCTYX", "АВЕКМНОРСТУХ"))
        fmt[i] = None if t is None else "ru_private"
        country[i] = None if t is None else "RU"
        cc[i] = np.array(c, np.float32)
    corners = np.tile(np.array([[x, 50], [x + 80, 50], [x + 80, 70], [x, 70]], np.float32), (n, 1, 1))
    return Detections(
        xyxy=np.tile([x, 50, x + 80, 70], (n, 1)), confidence=np.full(n, 0.9),
        class_id=np.zeros(n), track_id=None if track_ids is None else np.array(track_ids),
        data={"text": text, "text_latin": latin, "format": fmt, "country": country,
              "corners": corners, "char_confidences": cc,
              "readable": np.array([t is not None for t in texts])})


def frame(i, fps=10.0):
    image = np.zeros((120, 320, 3), np.uint8)
    image[50:70, 100:180] = 220
    return Frame(image, "cam", i, i / fps)


def test_reporter_sends_one_event_per_track_when_it_ends():
    rep = PlateReporter("cam", PlatesOptions(track_timeout_s=0.5))
    reads = [("A123BC77", [0.9] * 8), ("A128BC77", [0.9, 0.9, 0.9, 0.3, 0.9, 0.9, 0.9, 0.9]),
             ("A123BC77", [0.95] * 8)]
    events = []
    for i, (t, c) in enumerate(reads):
        events += rep.update(frame(i), plate_rows([7, -1], [t, "X000XX00"], [c, [0.9] * 8]))
    assert events == []                        # the track is still alive
    for i in range(3, 12):                     # 0.9 s without the plate
        events += rep.update(frame(i), Detections.empty())
    assert len(events) == 1
    e = events[0]
    assert e.type == "plate_read" and e.data["track_id"] == 7
    assert e.data["text_latin"] == "A123BC77" and e.data["text"] == "А123ВС77"
    assert e.data["format"] == "ru_private" and e.data["country"] == "RU"
    assert e.data["reads"] == 3 and e.data["votes"] == 3 and len(e.data["char_confidences"]) == 8
    assert e.frame_index == 2                  # the best read's frame
    assert e.snapshot is not None and e.snapshot[:2] == b"\xff\xd8"
    assert rep.finish() == []                  # nothing left (the -1 row was never a track)


def test_finish_flushes_open_tracks_and_unreadable_ones():
    rep = PlateReporter("cam", PlatesOptions(min_frames_unreadable=3, snapshots=False))
    for i in range(3):
        rep.update(frame(i), plate_rows([1, 2], ["K264TT98", None], [[0.9] * 8, []]))
    rep.update(frame(3), plate_rows([3], [None], [[]]))     # seen once, never read
    events = {e.data["track_id"]: e for e in rep.finish()}
    assert set(events) == {1, 2}
    assert events[1].data["text"] == "К264ТТ98" and events[1].snapshot is None
    assert events[2].data["readable"] is False and events[2].data["text"] is None


def test_without_a_tracker_every_readable_plate_is_reported():
    rep = PlateReporter("cam", PlatesOptions())
    events = rep.update(frame(0), plate_rows(None, ["A123BC77", None], [[0.9] * 8, []]))
    assert len(events) == 1 and events[0].data["track_id"] is None
    assert events[0].data["text_latin"] == "A123BC77"
