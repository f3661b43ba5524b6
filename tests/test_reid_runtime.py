"""The reid module in the runtime: two channels, one identity service.

Both channels play the same clip, so every person is on both "cameras" at the same
moment. Without a topology that is two different people (one person cannot be in two
places at once): twin tracks are never joined. With a transition that declares the views overlap
(min_s far below zero), each person's twin track has the identical pixels and must be
joined with similarity ~1.
"""

from __future__ import annotations

from oko.reid.split_eval import run_channels

from conftest import SAMPLE_VIDEO


def _events(tmp_path, options):
    clip = SAMPLE_VIDEO
    events = run_channels(clip, clip, options, tmp_path / "ev.jsonl", timeout_s=300,
                          max_frames=80)
    return [e for e in events if e["type"].startswith("person_")]


def test_simultaneous_tracks_on_two_channels_are_different_people(tmp_path):
    # Decided after 15 good frames (1.5 s at 10 fps): twins then overlap by more than the
    # tolerated overlap_s (1 s), which is what tells them apart from a hand-over.
    events = _events(tmp_path, {"decide_after": 15})
    assert {e["channel_id"] for e in events} == {"left", "right"}
    gid = {(e["channel_id"], e["data"]["track_id"]): e["data"]["global_id"] for e in events}
    twins = [t for (ch, t) in gid if ch == "left" and ("right", t) in gid]
    assert len(twins) >= 4  # the tracker is deterministic: same clip, same track ids
    assert all(gid[("left", t)] != gid[("right", t)] for t in twins)
    for e in events:  # a join (a tracker fragment picked up later) never spans an overlap
        if e["type"] == "person_reidentified":
            assert e["data"]["from"]["time"] <= e["data"]["to"]["time"] + 1.0


def test_overlapping_views_join_identical_twins(tmp_path):
    transitions = [{"from": "left", "to": "right", "min_s": -1000, "max_s": 1000}]
    events = _events(tmp_path, {"decide_after": 5, "transitions": transitions})
    joins = [e for e in events if e["type"] == "person_reidentified"]
    appeared = [e for e in events if e["type"] == "person_appeared"]
    assert len(joins) >= 0.7 * len(appeared) > 0
    for e in joins:
        d = e["data"]
        assert d["from"]["channel"] != d["to"]["channel"] == e["channel_id"]
        assert d["similarity"] >= 0.8
