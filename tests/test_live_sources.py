"""LiveSource against real servers: rtsp-server-perl fed by ffmpeg, killed, paused, silent.

The RTSP tests need rtsp-server-perl and ffmpeg on PATH (``make test`` installs them) and
are skipped, saying so, without them. Each test bounds its own waits (< ~30 s).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError
from servers import FfmpegHttpServer, FfmpegPublisher, RtspServer, RtspTcpProxy, SilentServer, \
    free_port, missing_binaries

from oko.core import SourceError
from oko.video.live import BackoffConfig, LiveSource, SourceConfig, SourceState
from oko.video.sources import Source, ffmpeg_input_options, is_live, open_source, usb_device

log = logging.getLogger(__name__)

MISSING = missing_binaries()
needs_servers = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)} "
                                   "(apt-get install rtsp-server-perl ffmpeg)")
needs_ffmpeg = pytest.mark.skipif("ffmpeg" in MISSING,
                                  reason="not installed: ffmpeg (apt-get install ffmpeg)")
FAST_BACKOFF = BackoffConfig(initial_s=0.2, factor=2.0, max_s=0.5, jitter=0.0)


class StateLog:
    """on_state recorder: the transitions with their monotonic times, and waiting on them."""

    def __init__(self) -> None:
        self.events: list[tuple[float, SourceState, SourceState, str]] = []
        self._cond = threading.Condition()

    def __call__(self, channel_id: str, old: SourceState, new: SourceState, reason: str) -> None:
        with self._cond:
            self.events.append((time.monotonic(), old, new, reason))
            self._cond.notify_all()

    def wait_for(self, state: SourceState, after: float = 0.0, timeout_s: float = 15.0
                 ) -> tuple[float, str]:
        """(time, reason) of the first transition into ``state`` at or after ``after``."""
        def found() -> tuple[float, str] | None:
            return next(((t, r) for t, _, new, r in self.events if new == state and t >= after),
                        None)
        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout_s):
                raise AssertionError(f"no transition to {state.value} within {timeout_s} s: "
                                     f"{self.states()}")
            return found()  # type: ignore[return-value]

    def states(self) -> list[str]:
        return [new.value for _, _, new, _ in self.events]


class Collector:
    """Iterates a LiveSource on its own thread, the way a channel runtime would."""

    def __init__(self, source: LiveSource) -> None:
        self.source = source
        self.frames: list[tuple[int, float, float, tuple[int, ...]]] = []  # index, ts, t, shape
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for frame in self.source:
            self.frames.append((frame.index, frame.timestamp, time.monotonic(),
                                frame.image.shape))
        self.ended_at = time.monotonic()

    def wait_frames(self, n: int, timeout_s: float = 15.0) -> float:
        """Wait for ``n`` frames in all; the time the n-th arrived."""
        deadline = time.monotonic() + timeout_s
        while len(self.frames) < n:
            assert time.monotonic() < deadline, (
                f"{len(self.frames)} of {n} frames after {timeout_s} s; state "
                f"{self.source.state.value}: {self.source.reason}")
            time.sleep(0.02)
        return self.frames[n - 1][2]

    def stop(self, within_s: float = 1.0) -> float:
        """stop() the source; assert iteration ended within ``within_s``; the time it took."""
        t = time.monotonic()
        self.source.stop()
        self._thread.join(within_s + 1.0)
        assert self.ended_at is not None, "iteration did not end after stop()"
        took = self.ended_at - t
        assert took < within_s, f"iteration ended {took:.2f} s after stop()"
        return took

    def assert_monotonic(self) -> None:
        indices = [f[0] for f in self.frames]
        stamps = [f[1] for f in self.frames]
        assert indices == list(range(len(indices)))
        assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)), stamps


@pytest.fixture
def rtsp_server(tmp_path):
    server = RtspServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def publisher(rtsp_server, sample_video):
    pub = FfmpegPublisher(rtsp_server, sample_video)
    pub.start()
    yield pub
    pub.kill()


@pytest.fixture
def stream_url(request, rtsp_server, publisher):
    """(url, transport): UDP straight from rtsp-server-perl, TCP through the TCP front."""
    transport = request.param
    if transport == "udp":
        yield publisher.url, transport
        return
    proxy = RtspTcpProxy(rtsp_server)
    proxy.start()
    yield proxy.url(publisher.stream), transport
    proxy.kill()


def live_config(url: str, transport: str = "tcp", **kw) -> SourceConfig:
    kw.setdefault("stall_timeout_s", 3.0)
    kw.setdefault("open_timeout_s", 3.0)
    kw.setdefault("backoff", FAST_BACKOFF)
    return SourceConfig(uri=url, transport=transport, **kw)


def make_clip(path: Path, n: int = 12, fps: int = 10) -> Path:
    """A small video whose frame i is uniformly grey level 20*(i % 12) (readable when decoded)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            image = np.full((48, 64, 3), 20 * (i % 12), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# --- real RTSP streams ----------------------------------------------------------------------

@needs_servers
@pytest.mark.slow
@pytest.mark.parametrize("stream_url", ["tcp", "udp"], indirect=True)
def test_reads_frames_from_a_real_rtsp_stream(stream_url):
    url, transport = stream_url
    states = StateLog()
    source = LiveSource(live_config(url, transport), "cam1", on_state=states)
    frames = Collector(source)
    frames.wait_frames(15)
    assert source.state == SourceState.RUNNING
    assert states.states()[:1] == ["running"]
    frames.stop()
    assert source.state == SourceState.STOPPED
    frames.assert_monotonic()
    assert frames.frames[0][3] == (576, 768, 3)
    # live timestamps are wall-clock seconds since the channel started, at 10 fps
    span = frames.frames[14][1] - frames.frames[0][1]
    assert 0.5 < span < 3.0, span
    assert source.stats.reconnects == 0 and source.stats.frames >= 15
    assert source.join(5.0)


@needs_servers
@pytest.mark.slow
@pytest.mark.parametrize("stream_url", ["tcp", "udp"], indirect=True)
def test_killed_server_reconnects_and_frames_resume(stream_url, rtsp_server, publisher):
    url, transport = stream_url
    states = StateLog()
    source = LiveSource(live_config(url, transport), "cam1", on_state=states)
    frames = Collector(source)
    frames.wait_frames(10)
    publisher.kill()
    rtsp_server.kill()
    killed = time.monotonic()
    lost_at, reason = states.wait_for(SourceState.RECONNECTING, after=killed, timeout_s=8)
    time.sleep(1.0)  # stay down long enough for failed attempts (connection refused)
    before = len(frames.frames)
    rtsp_server.start()
    publisher.start()
    restarted = time.monotonic()
    back_at, _ = states.wait_for(SourceState.RUNNING, after=restarted, timeout_s=15)
    frames.wait_frames(before + 10)
    frames.stop()
    log.info("%s: RECONNECTING %.2f s after the kill (%s); RUNNING %.2f s after the restart",
             transport, lost_at - killed, reason, back_at - restarted)
    assert lost_at - killed < 3.0 + 1.5  # a closed connection is seen at once, at worst stall
    assert source.stats.reconnects >= 1
    assert states.states()[:3] == ["running", "reconnecting", "running"]
    frames.assert_monotonic()
    gap = frames.frames[before][1] - frames.frames[before - 1][1]
    assert gap >= restarted - killed - 0.5  # the outage shows in the timestamps


@needs_servers
@pytest.mark.slow
@pytest.mark.parametrize("stream_url", ["tcp", "udp"], indirect=True)
def test_paused_publisher_is_a_stall_and_recovers(stream_url, publisher):
    """SIGSTOP the publisher: the server keeps the connection open but sends nothing."""
    url, transport = stream_url
    stall_s = 2.0
    states = StateLog()
    source = LiveSource(live_config(url, transport, stall_timeout_s=stall_s,
                                    open_timeout_s=stall_s), "cam1", on_state=states)
    frames = Collector(source)
    frames.wait_frames(5)
    publisher.pause()
    paused = time.monotonic()
    lost_at, reason = states.wait_for(SourceState.RECONNECTING, after=paused, timeout_s=10)
    last_frame = frames.frames[-1][2]
    publisher.resume()
    resumed = time.monotonic()
    back_at, _ = states.wait_for(SourceState.RUNNING, after=resumed, timeout_s=15)
    n = len(frames.frames)
    frames.wait_frames(n + 5)
    frames.stop()
    log.info("%s: stall seen %.2f s after the last frame (%.2f s after SIGSTOP): %s; "
             "RUNNING %.2f s after SIGCONT", transport, lost_at - last_frame, lost_at - paused,
             reason, back_at - resumed)
    assert "stalled" in reason or "timed out" in reason.lower(), reason
    assert lost_at - paused < stall_s + 2.0
    assert source.stats.stalls >= 1 and source.stats.reconnects >= 1
    frames.assert_monotonic()


@needs_servers
@pytest.mark.slow
def test_stats_report_fps_and_last_frame_time(rtsp_server, publisher):
    source = LiveSource(live_config(publisher.url, "udp"), "cam1")
    frames = Collector(source)
    frames.wait_frames(25)
    assert 6.0 < source.stats.fps < 14.0, source.stats.fps  # the stream is 10 fps
    assert time.time() - source.stats.last_frame_wall_time < 1.0
    assert source.stats.started_wall_time < source.stats.last_frame_wall_time
    frames.stop()


@needs_ffmpeg
@pytest.mark.slow
def test_http_stream_reconnects_after_the_server_dies(sample_video, tmp_path):
    server = FfmpegHttpServer(sample_video, tmp_path)
    server.start()
    try:
        states = StateLog()
        source = LiveSource(live_config(server.url), "http", on_state=states)
        frames = Collector(source)
        frames.wait_frames(5)
        server.kill()
        killed = time.monotonic()
        lost_at, reason = states.wait_for(SourceState.RECONNECTING, after=killed, timeout_s=8)
        server.start()
        restarted = time.monotonic()
        back_at, _ = states.wait_for(SourceState.RUNNING, after=restarted, timeout_s=15)
        frames.wait_frames(len(frames.frames) + 5)
        frames.stop()
        log.info("http: RECONNECTING %.2f s after the kill (%s); RUNNING %.2f s after restart",
                 lost_at - killed, reason, back_at - restarted)
        assert source.stats.reconnects >= 1
        frames.assert_monotonic()
        assert frames.frames[0][3] == (576, 768, 3)
    finally:
        server.kill()


# --- dead and silent cameras -------------------------------------------------------------

def test_dead_camera_backs_off_and_other_channels_run(sample_video, caplog):
    caplog.set_level(logging.WARNING, logger="oko.video.live")
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nothing listens there
    backoff = BackoffConfig(initial_s=0.1, factor=2.0, max_s=0.8, jitter=0.0)
    states = StateLog()
    dead = LiveSource(live_config(url, backoff=backoff), "dead", on_state=states)
    alive = LiveSource(SourceConfig(uri=str(sample_video), loop=True), "file")
    dead_frames, file_frames = Collector(dead), Collector(alive)
    time.sleep(3.5)
    waits = [r.args[-1] for r in caplog.records
             if "reconnect in" in r.msg and "channel dead" in r.args[0]]
    assert dead.state == SourceState.RECONNECTING
    assert states.states() == ["reconnecting"]
    assert "Connection refused" in dead.stats.last_error
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8] and set(waits[4:]) <= {0.8}, waits
    assert 4 <= dead.stats.reconnects <= 7, dead.stats.reconnects  # 0.1+0.2+0.4+0.8+0.8...
    n_file = len(file_frames.frames)
    assert n_file > 20 and alive.state == SourceState.RUNNING
    took = dead_frames.stop()
    assert dead.state == SourceState.STOPPED and not dead_frames.frames
    file_frames.wait_frames(n_file + 10)  # the other channel goes on
    file_frames.stop()
    file_frames.assert_monotonic()
    log.info("dead camera: stop() ended iteration in %.3f s", took)
    assert dead.join(2.0) and alive.join(2.0)


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_stalls_and_stop_interrupts_a_blocked_read(scheme):
    """A server that accepts and never answers: reconnect after stall_timeout; stop() while
    the reader is blocked in the handshake ends iteration at once."""
    server = SilentServer()
    try:
        stall_s = 1.5
        states = StateLog()
        source = LiveSource(live_config(server.url(scheme=scheme), stall_timeout_s=stall_s,
                                        open_timeout_s=stall_s), "hung", on_state=states)
        started = time.monotonic()
        frames = Collector(source)
        lost_at, reason = states.wait_for(SourceState.RECONNECTING, timeout_s=stall_s + 5)
        log.info("silent %s server: RECONNECTING after %.2f s: %s", scheme, lost_at - started,
                 reason)
        assert stall_s * 0.8 < lost_at - started < stall_s + 1.5, lost_at - started
        assert "no answer" in reason and source.stats.stalls >= 1
        deadline = time.monotonic() + 5
        while source.stats.reconnects < 1:  # the next attempt is blocked in a read now
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        assert len(server.accepted) >= 2
        took = frames.stop(within_s=1.0)
        log.info("silent %s server: stop() ended iteration in %.3f s", scheme, took)
        assert source.join(stall_s + 2.0), "reader did not end after its read timeout"
        assert source.state == SourceState.STOPPED
    finally:
        server.close()


def test_watchdog_abandons_a_read_that_ignores_its_timeouts(tmp_path):
    """Should an FFmpeg call ignore every timeout, the supervisor gives up on it, connects
    anew, and discards whatever the stuck reader produces when it finally returns."""
    clip = make_clip(tmp_path / "clip.mp4")
    release = threading.Event()
    calls: list[float] = []
    states = StateLog()
    source = LiveSource(live_config("rtsp://127.0.0.1:9/cam", stall_timeout_s=0.5,
                                    open_timeout_s=0.5), "stuck", on_state=states)

    def open_stuck_then_fine() -> Source:
        calls.append(time.monotonic())
        if len(calls) == 1:
            release.wait(20)  # a call that honours no timeout
        return open_source(clip, "stuck")

    source._open = open_stuck_then_fine  # type: ignore[method-assign]
    frames = Collector(source)
    lost_at, reason = states.wait_for(SourceState.RECONNECTING, timeout_s=6)
    assert "abandoned" in reason, reason
    assert 1.5 < lost_at - calls[0] < 3.5  # 2 x open timeout + grace
    states.wait_for(SourceState.RUNNING, after=lost_at, timeout_s=5)
    frames.wait_frames(12)
    release.set()  # the stuck reader returns now: its frames must not appear
    time.sleep(0.5)
    frames.stop()
    frames.assert_monotonic()
    assert source.stats.stalls >= 1 and source.join(3.0)


# --- files ----------------------------------------------------------------------------------

def test_file_loop_wraps_around_with_increasing_time(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    source = LiveSource(SourceConfig(uri=str(clip), loop=True), "loop")
    frames = []
    for frame in source:
        frames.append((frame.index, frame.timestamp, float(frame.image.mean())))
        if len(frames) == 30:
            source.stop()
    assert [f[0] for f in frames] == list(range(30))
    levels = [round(f[2] / 20) for f in frames]
    assert levels == list(range(12)) * 2 + list(range(6))
    steps = np.diff([f[1] for f in frames])
    assert np.allclose(steps, 0.1, atol=1e-6), steps  # the wrap continues the clock
    assert source.stats.loops == 2 and source.state == SourceState.STOPPED


def test_file_without_loop_stops_at_the_end(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    states = StateLog()
    source = LiveSource(SourceConfig(uri=str(clip)), "once", on_state=states)
    frames = list(source)
    assert len(frames) == 12 and [f.index for f in frames] == list(range(12))
    assert states.states() == ["running", "stopped"]
    assert source.state == SourceState.STOPPED and source.reason == "end of file"


def test_missing_or_non_media_file_fails_with_a_reason(tmp_path):
    states = StateLog()
    source = LiveSource(str(tmp_path / "nope.mp4"), "gone", on_state=states)
    assert list(source) == []
    assert source.state == SourceState.FAILED
    assert "no such file" in source.reason and "nope.mp4" in source.reason
    assert [(old.value, new.value) for _, old, new, _ in states.events] == [("starting", "failed")]
    assert source.stats.reconnects == 0
    (tmp_path / "notes.mp4").write_text("not a video\n" * 50)
    text = LiveSource(str(tmp_path / "notes.mp4"))
    assert list(text) == [] and text.state == SourceState.FAILED
    assert "not a readable video" in text.reason


def test_leaving_the_loop_stops_the_source(tmp_path):
    source = LiveSource(SourceConfig(uri=str(make_clip(tmp_path / "clip.mp4")), loop=True))
    for frame in source:
        if frame.index == 3:
            break
    assert source.state == SourceState.STOPPED and source.join(2.0)


def test_fps_cap_drops_frames(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", n=20, fps=10)
    source = LiveSource(SourceConfig(uri=str(clip), fps_cap=5), "capped")
    frames = list(source)
    assert len(frames) == 10 and source.stats.dropped == 10
    assert np.allclose(np.diff([f.timestamp for f in frames]), 0.2, atol=1e-6)


# --- options and config ------------------------------------------------------------------

def test_ffmpeg_options_per_kind_of_input():
    tcp = ffmpeg_input_options("rtsp://cam/1", "tcp", timeout_s=5)
    assert tcp["rtsp_transport"] == "tcp" and tcp["timeout"] == "5000000"
    assert tcp["fpsprobesize"] == "0" and "buffer_size" not in tcp
    udp = ffmpeg_input_options("rtsp://cam/1", "udp", timeout_s=5, low_latency=False)
    assert udp["rtsp_transport"] == "udp" and "buffer_size" in udp and "fpsprobesize" not in udp
    http = ffmpeg_input_options("http://cam/mjpg", timeout_s=2.5)
    assert http["rw_timeout"] == "2500000" and "rtsp_transport" not in http
    assert "rw_timeout" not in ffmpeg_input_options("usb:0")
    assert ffmpeg_input_options("/videos/a.mp4") == {}
    with pytest.raises(SourceError, match="tcp or udp"):
        ffmpeg_input_options("rtsp://cam/1", "sctp")  # type: ignore[arg-type]


def test_usb_camera_uris():
    assert usb_device("usb:2") == "/dev/video2" and usb_device("/dev/video0") == "/dev/video0"
    assert usb_device("/videos/a.mp4") is None
    assert is_live("usb:0") and is_live("rtsp://x/y") and not is_live("/videos/a.mp4")
    with pytest.raises(SourceError, match="usb:N"):
        usb_device("usb:front")
    missing = next(n for n in range(90, 200) if not Path(f"/dev/video{n}").exists())
    with pytest.raises(SourceError, match="no such camera device"):
        open_source(f"usb:{missing}")


def test_unplugged_usb_camera_is_retried_not_failed():
    missing = next(n for n in range(90, 200) if not Path(f"/dev/video{n}").exists())
    source = LiveSource(live_config(f"usb:{missing}", backoff=FAST_BACKOFF), "usb")
    frames = Collector(source)
    deadline = time.monotonic() + 5
    while source.stats.reconnects < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert source.state == SourceState.RECONNECTING
    frames.stop()


def test_source_config_rejects_typos_and_bad_backoff():
    with pytest.raises(ValidationError, match="stall_timeout"):
        SourceConfig(uri="rtsp://x/y", stall_timeout=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="transport"):
        SourceConfig(uri="rtsp://x/y", transport="sctp")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="max_s"):
        BackoffConfig(initial_s=5, max_s=1)
    assert all(field.description for field in SourceConfig.model_fields.values())


def test_backoff_grows_to_the_cap_with_bounded_jitter():
    import random

    backoff = BackoffConfig(initial_s=0.5, factor=2, max_s=4, jitter=0.2)
    rng = random.Random(0)
    delays = [backoff.delay(n, rng) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        base = min(4.0, 0.5 * 2 ** (n - 1))
        assert base * 0.8 <= delay <= base * 1.2
