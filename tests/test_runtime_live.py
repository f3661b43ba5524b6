"""A camera dies and comes back while another channel keeps running, through the runtime."""

import json
import time

import pytest

from oko.config import parse_config
from oko.video.runtime import Runtime

from conftest import SAMPLE_VIDEO
from servers import FfmpegPublisher, RtspServer
from test_live_sources import needs_servers


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@needs_servers
@pytest.mark.slow
def test_rtsp_channel_reconnects_while_file_channel_keeps_running(tmp_path):
    server = RtspServer(tmp_path)
    server.start()
    publisher = FfmpegPublisher(server, SAMPLE_VIDEO)
    publisher.start()
    fast = {"initial_s": 0.2, "max_s": 0.5, "jitter": 0.0}
    cfg = parse_config({
        "api": {"enabled": False},
        "sinks": [{"kind": "jsonl", "path": str(tmp_path / "events.jsonl")}],
        "channels": [
            {"id": "cam", "source": {"uri": publisher.url, "transport": "udp",
                                     "stall_timeout_s": 3, "open_timeout_s": 3, "backoff": fast},
             "fps_cap": 5},
            {"id": "file", "source": {"uri": str(SAMPLE_VIDEO), "loop": True}, "fps_cap": 5},
        ]}, "test")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks)
    try:
        for ch in cfg.channels:
            runtime.add_channel(ch)
        cam, file = runtime.channels["cam"], runtime.channels["file"]
        wait_until(lambda: cam.stats.processed.total >= 5, 30, "camera frames")
        publisher.kill()
        server.kill()
        wait_until(lambda: cam.state == "reconnecting", 10, "camera reconnecting")
        file_before = file.stats.processed.total
        time.sleep(2.0)
        assert cam.state == "reconnecting"
        assert file.stats.processed.total > file_before  # the other channel never stopped
        cam_before = cam.stats.processed.total
        server.start()
        publisher.start()
        wait_until(lambda: cam.state == "running" and cam.stats.processed.total > cam_before + 3,
                   30, "camera back")
        assert cam.snapshot()["reconnects"] >= 1
    finally:
        runtime.stop()
        publisher.kill()
        server.kill()
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    states = [e["data"]["to"] for e in events
              if e["type"] == "channel_state" and e["channel_id"] == "cam"]
    assert "reconnecting" in states and states.count("running") >= 2
