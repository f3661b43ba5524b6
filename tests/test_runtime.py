"""The runtime end to end: config, channels sharing one batched model, analytics, sinks,
the control API, metrics, preview, and `oko run`/`oko count`/`oko demo` as users run them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from oko.config import load_config, parse_config
from oko.core import ConfigError
from oko.run import run_pipeline
from oko.video.runtime import Runtime

from conftest import SAMPLE_VIDEO, assert_user_error, run_oko

LINE = {"name": "walkway", "start": [0.5, 0.22], "end": [0.5, 0.62], "normalized": True,
        "classes": ["person"]}


def channel(cid, **extra):
    return {"id": cid, "source": str(SAMPLE_VIDEO), "lines": [LINE]} | extra


def test_two_file_channels_share_one_batched_model(tmp_path):
    cfg = parse_config({
        "api": {"enabled": False}, "batch": {"max_size": 4, "max_wait_ms": 50},
        "sinks": [{"kind": "jsonl", "path": str(tmp_path / "events.jsonl")}],
        "channels": [channel("a", max_frames=60), channel("b", max_frames=60)],
    }, "test")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks, node="t")
    try:
        for ch in cfg.channels:
            runtime.add_channel(ch)
        assert runtime.wait(timeout_s=120)
        snap = runtime.snapshot()
    finally:
        runtime.stop()
    (worker,) = snap["inference"]
    assert worker["channels"] == 2 and worker["frames"] == 120
    assert worker["mean_batch"] > 1.0  # frames of both channels went through together
    for ch in snap["channels"]:
        assert ch["frames_processed"] == 60 and ch["frames_dropped"] == 0
        assert ch["detections_per_label"]["person"]["tracks"] >= 3
    # Same video on both channels: same crossings on both, and every event in the file.
    lines = {ch["id"]: ch["analytics"]["lines"][0] for ch in snap["channels"]}
    assert (lines["a"]["in"], lines["a"]["out"]) == (lines["b"]["in"], lines["b"]["out"])
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    crossings = [e for e in events if e["type"] == "line_crossing"]
    assert len(crossings) == sum(v["in"] + v["out"] for v in lines.values())
    assert len({e["id"] for e in events}) == len(events)


def test_config_errors_name_the_field(tmp_path):
    bad = {"channels": [{"id": "a", "source": "x.mp4", "detect": {"modle": "nanodet-coco"}}]}
    with pytest.raises(ConfigError, match=r"channels\.0\.detect\.modle: Extra inputs"):
        parse_config(bad, "cfg.yml")
    with pytest.raises(ConfigError, match="duplicate channel id 'a'"):
        parse_config({"channels": [channel("a"), channel("a")]}, "cfg.yml")
    with pytest.raises(ConfigError, match=r"lines\.0"):
        parse_config({"channels": [channel("a", lines=[{"name": "l", "start": [0, 0],
                                                         "end": [0, 0]}])]}, "cfg.yml")
    (tmp_path / "c.yml").write_text("channels: [\n  - id: a\n   source: x")
    with pytest.raises(ConfigError, match=r"c\.yml: line \d+ invalid YAML"):
        load_config(tmp_path / "c.yml")


def test_control_api_adds_reconfigures_and_removes_channels_while_others_run(tmp_path):
    from oko.api import ApiConfig, ApiServer

    cfg = parse_config({"api": {"enabled": False}, "channels": []}, "test")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks)
    server = ApiServer(runtime, ApiConfig(port=0))
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    looping = {"uri": str(SAMPLE_VIDEO), "loop": True}
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            r = http.post("/channels", json={"id": "keep", "source": looping, "fps_cap": 5})
            assert r.status_code == 201, r.text
            r = http.post("/channels", json={"id": "other", "source": looping, "fps_cap": 5})
            assert r.status_code == 201
            assert http.post("/channels", json={"id": "other", "source": looping}).status_code == 400
            assert http.post("/channels", json={"id": "bad", "source": looping,
                                                "fps_cap": -1}).status_code == 422
            time.sleep(2.0)
            before = http.get("/channels/keep").json()["frames_processed"]
            assert before > 0
            r = http.put("/channels/other", json={"id": "other", "source": looping, "fps_cap": 2})
            assert r.status_code == 200, r.text
            assert http.delete("/channels/other").status_code == 204
            assert http.get("/channels/other").status_code == 404
            time.sleep(1.5)
            after = http.get("/channels/keep").json()
            assert after["frames_processed"] > before and after["state"] == "running"
            health = http.get("/health").json()
            assert health["channels"] == {"keep": "running"}
            metrics = http.get("/metrics").text
            assert 'oko_channel_processed_fps{channel="keep"}' in metrics
            assert 'oko_channel_frames_dropped_total{channel="keep"}' in metrics
            jpeg = http.get("/channels/keep/preview.jpg")
            assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"
            with http.stream("GET", "/channels/keep/preview.mjpeg") as stream:
                assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
                first = next(stream.iter_bytes())
                assert b"--frame" in first
    finally:
        runtime.stop()
        server.stop()


def write_config(tmp_path, **extra) -> Path:
    cfg = {"api": {"enabled": False},
           "sinks": [{"kind": "jsonl", "path": str(tmp_path / "events.jsonl")}],
           "channels": [{"id": "cam", "source": {"uri": str(SAMPLE_VIDEO), "loop": True},
                         "detection_events": True}]} | extra
    path = tmp_path / "pipeline.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_oko_run_stops_cleanly_on_sigterm_and_flushes_events(tmp_path):
    path = write_config(tmp_path)
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "oko.cli", "run", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    events = tmp_path / "events.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not events.exists() or events.stat().st_size < 2000):
        time.sleep(0.2)
    assert events.exists(), proc.stderr.read() if proc.poll() is not None else "no events"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    lines = events.read_text().splitlines()
    assert all(json.loads(x)["type"] for x in lines)  # complete lines only
    assert "cam" in err + out


def test_oko_run_bad_config_is_one_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"channels": [{"id": "a", "source": "x.mp4", "fps": 3}]}))
    assert_user_error(run_oko("run", str(path)), "bad.yml", "channels.0.fps")
    assert_user_error(run_oko("run", str(tmp_path / "missing.yml")), "missing.yml")


def test_missing_file_channel_fails_and_others_run(tmp_path):
    cfg = parse_config({"api": {"enabled": False},
                        "channels": [channel("good", max_frames=20),
                                     {"id": "gone", "source": str(tmp_path / "nope.mp4")}]}, "t")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks)
    try:
        for ch in cfg.channels:
            runtime.add_channel(ch)
        assert runtime.wait(timeout_s=60)
        snap = {c["id"]: c for c in runtime.snapshot()["channels"]}
    finally:
        runtime.stop()
    assert snap["gone"]["state"] == "failed"
    assert snap["good"]["frames_processed"] == 20


def test_oko_count_json_on_the_sample():
    proc = run_oko("count", str(SAMPLE_VIDEO), "--line", "384,127,384,357", "--classes", "person",
                   "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    (line,) = result["lines"]
    assert line["line"] == [384.0, 127.0, 384.0, 357.0]
    assert set(line) >= {"line", "in", "out", "by_class"}
    assert line["by_class"].get("person", {"in": 0, "out": 0}) == {"in": line["in"], "out": line["out"]}
    # Crossings of this walkway, checked by eye on the annotated demo video.
    assert line["in"] + line["out"] >= 8


def test_demo_counts_and_writes_outputs(tmp_path):
    proc = run_oko("demo", "--out", str(tmp_path / "demo"), "--max-frames", "120")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "demo" / "annotated.mp4").stat().st_size > 10000
    events = (tmp_path / "demo" / "events.jsonl").read_text().splitlines()
    assert events and "line walkway" in proc.stdout
