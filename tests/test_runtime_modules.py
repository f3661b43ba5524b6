"""Product modules inside the runtime: a channel config naming a module runs it through the
shared batched path, its tracker, and its per-channel reporter (once-per-track events)."""

import json

from oko.config import parse_config
from oko.core.events import Event
from oko.modules import Module, ModuleOptions, TrackReporter, create_module
from oko.modules.detect import DetectModule, DetectOptions
from oko.video.runtime import Runtime

from conftest import SAMPLE_VIDEO


class FirstSightingOptions(ModuleOptions):
    min_frames: int = 3


class _FirstSighting(TrackReporter):
    """Reports each confirmed track once after ``min_frames`` sightings, and at the end the
    tracks that were seen fewer times (so nothing is silently lost)."""

    def __init__(self, channel_id: str, min_frames: int) -> None:
        self.channel_id, self.min_frames = channel_id, min_frames
        self.seen: dict[int, int] = {}
        self.reported: set[int] = set()

    def update(self, frame, dets):
        events = []
        for tid in dets.track_id.tolist() if dets.track_id is not None else []:
            if tid < 0:
                continue
            self.seen[tid] = self.seen.get(tid, 0) + 1
            if self.seen[tid] >= self.min_frames and tid not in self.reported:
                self.reported.add(tid)
                events.append(Event("first_sighting", self.channel_id, frame.timestamp,
                                    frame.index, {"track_id": tid}))
        return events

    def finish(self):
        return [Event("short_track", self.channel_id, 0.0, -1, {"track_id": tid})
                for tid in sorted(set(self.seen) - self.reported)]


class FirstSightingModule(Module):
    name = "test_first_sighting"
    options_class = FirstSightingOptions

    def __init__(self, options):
        super().__init__(options)
        self.inner = DetectModule(DetectOptions(classes=["person"]))

    @property
    def labels(self):
        return self.inner.labels

    def process(self, frames):
        return self.inner.process(frames)

    def reporter(self, channel_id):
        return _FirstSighting(channel_id, self.options.min_frames)


def test_a_module_runs_in_the_runtime_with_its_reporter(tmp_path):
    out = tmp_path / "events.jsonl"
    cfg = parse_config({
        "api": {"enabled": False}, "sinks": [{"kind": "jsonl", "path": str(out)}],
        "channels": [{"id": "a", "source": str(SAMPLE_VIDEO), "max_frames": 40,
                      "module": {"name": "test_first_sighting", "options": {"min_frames": 5}}}],
    }, "test")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks, node="t")
    try:
        runtime.add_channel(cfg.channels[0])
        assert runtime.wait(timeout_s=120)
        snap = runtime.snapshot()
    finally:
        runtime.stop()
    events = [json.loads(x) for x in out.read_text().splitlines()]
    firsts = [e["data"]["track_id"] for e in events if e["type"] == "first_sighting"]
    shorts = [e["data"]["track_id"] for e in events if e["type"] == "short_track"]
    assert len(firsts) >= 3 and len(firsts) == len(set(firsts))  # once per track
    assert not set(firsts) & set(shorts)
    assert snap["channels"][0]["model"] == "test_first_sighting"


def test_module_options_are_validated_by_name():
    import pytest

    from oko.core import ConfigError

    with pytest.raises(ConfigError, match="min_frames"):
        create_module("test_first_sighting", {"min_frames": "many"})
