"""Live sources that survive dead cameras: reconnect with backoff, stall watchdog, states.

:class:`LiveSource` wraps one channel's URI (RTSP/HTTP URL, USB camera or file) and
iterates :class:`~oko.core.Frame` objects for as long as the channel lives:

- A reader thread per connection decodes frames into a small queue; the iterating thread
  only takes frames out, so :meth:`LiveSource.stop` (from any thread) ends iteration
  within ~0.1 s even while the reader is blocked in a network read.
- A supervisor thread watches the reader. An open failure, a read error, the end of a live
  stream or a STALL (no frame for ``stall_timeout_s``) closes the connection and reconnects
  after an exponential backoff with jitter. A stall is caught by FFmpeg's socket timeout
  (``timeout``/``rw_timeout`` = ``stall_timeout_s``), by PyAV's interrupt callback (the
  same read timeout, for calls without a socket timeout), by the reader checking the time
  since its last frame at every packet (packets that decode to nothing), and, should a
  call ignore all of these, by the supervisor: it abandons the blocked reader (which
  closes its own connection when the call returns; its frames are discarded) and
  connects anew. After stop(), a reader blocked in a read closes its connection when the
  read times out (within ``stall_timeout_s``); :meth:`LiveSource.join` waits for it.
- Files end in STOPPED, or replay for ever with ``loop=True``. A file that does not exist
  or is not media is a permanent error: FAILED, with the reason.

Frame index and timestamp increase strictly across reconnects and loops. Indices count
delivered frames (0, 1, 2, ...). Timestamps are seconds: for live sources, wall-clock
(monotonic) seconds since the channel started, taken when the frame is decoded, so gaps
show outages; for files, media time, continued across loops.

Live sources never make the camera wait: when the consumer falls behind, the oldest queued
frame is dropped (counted in ``stats.dropped``). Files never drop: the reader waits.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oko.core.errors import SourceError
from oko.core.frame import Frame
from oko.video.sources import Source, Transport, VideoSource, is_live, open_source, redact_uri

log = logging.getLogger(__name__)

_POLL_S = 0.1  # how often waiting threads look at the stop flag
_FPS_WINDOW_S = 2.0


class SourceState(StrEnum):
    """Where a channel is. STOPPED and FAILED are final."""

    STARTING = "starting"  # first connection not yet delivering frames
    RUNNING = "running"  # frames arrive
    RECONNECTING = "reconnecting"  # lost or never reached; waiting out the backoff or retrying
    STOPPED = "stopped"  # end of a file, or stop() was called
    FAILED = "failed"  # a permanent error (a missing file, a file that is not media)


FINAL_STATES = frozenset({SourceState.STOPPED, SourceState.FAILED})

StateCallback = Callable[[str, SourceState, SourceState, str], None]
"""``on_state(channel_id, old, new, reason)``, called on the channel's own threads."""


class BackoffConfig(BaseModel):
    """Waiting between reconnect attempts: initial * factor**(n-1), capped, with jitter."""

    model_config = ConfigDict(extra="forbid")

    initial_s: float = Field(0.5, gt=0, description="Wait before the first reconnect, seconds.")
    factor: float = Field(2.0, ge=1, description="Each further failure multiplies the wait.")
    max_s: float = Field(30.0, gt=0, description="Longest wait between attempts, seconds.")
    jitter: float = Field(0.1, ge=0, le=1, description=(
        "Random spread as a fraction of the wait (0.1: +-10%), so that many cameras behind "
        "one failed switch do not reconnect in lock step."))

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> BackoffConfig:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= initial_s ({self.initial_s})")
        return self

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1, 2, ...)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))
        return max(0.0, base * (1.0 + self.jitter * rng.uniform(-1.0, 1.0)))


class SourceConfig(BaseModel):
    """One channel's input and how hard to try keeping it alive."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(description=(
        "Video file, stream URL (rtsp://, http(s)://, rtmp://, ...) or USB camera "
        "(usb:N or /dev/videoN)."))
    transport: Transport = Field("tcp", description=(
        "RTSP transport: tcp (interleaved in the RTSP connection; robust, default) or udp "
        "(RTP datagrams; lower latency, may lose packets, needs open UDP ports)."))
    fps_cap: float | None = Field(None, gt=0, description=(
        "Deliver at most this many frames per second; extra frames are decoded and dropped. "
        "None: every frame."))
    stall_timeout_s: float = Field(10.0, gt=0, description=(
        "A connection that delivers no frame for this long is closed and reopened."))
    open_timeout_s: float = Field(10.0, gt=0, description=(
        "Longest wait to open a stream and read its parameters."))
    backoff: BackoffConfig = Field(default_factory=BackoffConfig,
                                   description="Waiting between reconnect attempts.")
    loop: bool = Field(False, description="Replay a file for ever (demos, benchmarks).")
    low_latency: bool = Field(True, description=(
        "Live streams: open fast (no frame-rate probing, at most 1 s of probing; see "
        "oko.video.sources.ffmpeg_input_options)."))
    ffmpeg_options: dict[str, str] = Field(default_factory=dict, description=(
        "Extra FFmpeg input options, e.g. video_size and input_format for a USB camera."))
    queue_frames: int = Field(4, ge=1, description=(
        "Decoded frames held for the consumer; live sources drop the oldest beyond this."))


@dataclass
class LiveStats:
    """What a channel has done. Updated by its threads; read at any time."""

    frames: int = 0  # delivered to the consumer
    dropped: int = 0  # decoded but not delivered (fps cap, consumer behind)
    corrupt: int = 0  # skipped undecodable frames, all connections together
    reconnects: int = 0  # connection attempts after a failure
    stalls: int = 0  # connections closed for delivering no frame in time
    loops: int = 0  # times a file was replayed
    last_frame_wall_time: float | None = None  # time.time() of the last decoded frame
    last_error: str | None = None  # why the last connection failed
    backoff_s: float = 0.0  # the wait before the latest reconnect attempt
    started_wall_time: float | None = None  # time.time() when the channel started
    _arrivals: deque = field(default_factory=lambda: deque(maxlen=256), repr=False)

    @property
    def fps(self) -> float:
        """Frames received from the source per second over the last ~2 s (0 when none)."""
        now = time.monotonic()
        arrivals = list(self._arrivals)
        if not arrivals:
            return 0.0
        span = min(_FPS_WINDOW_S, now - arrivals[0])  # the oldest kept arrival bounds it
        if span < 0.25:
            return 0.0  # too early to tell
        return sum(1 for t in arrivals if now - t <= span) / span


@dataclass
class _Attempt:
    """One connection: its reader thread reports here, the supervisor watches it."""

    generation: int
    progress: float  # monotonic time of the last sign of life (start, open, frame)
    ts_offset: float = 0.0
    opened: bool = False
    frames: int = 0
    last_ts: float = 0.0
    period: float = 0.04
    outcome: str = ""  # eof | error | stall | stopped
    reason: str = ""
    permanent: bool = False
    abandoned: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class LiveSource:
    """A long-running channel that reconnects. Iterate it (once) for frames; stop() ends it.

    ``config`` is a :class:`SourceConfig` or just the URI (defaults for the rest).
    ``on_state(channel_id, old, new, reason)`` is called on every state change, from the
    channel's threads (or from the thread calling stop()): keep it quick, do not block in
    it; its exceptions are logged and ignored. ``seed`` fixes the backoff jitter (tests).
    ``state``, ``reason`` and ``stats`` can be read at any time from any thread.
    """

    def __init__(self, config: SourceConfig | str | Path, channel_id: str = "0", *,
                 on_state: StateCallback | None = None, seed: int | None = None) -> None:
        self.config = config if isinstance(config, SourceConfig) else SourceConfig(uri=str(config))
        self.channel_id = channel_id
        self.is_live = is_live(self.config.uri)
        """Stream or camera (reconnects, may drop frames) rather than a file."""
        self.stats = LiveStats()
        self.reason = ""  # why the state last changed
        self._state = SourceState.STARTING
        self._on_state = on_state
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._queue: queue.Queue[tuple[int, Frame]] = queue.Queue(self.config.queue_frames)
        self._abandoned: set[int] = set()
        self._rng = random.Random(seed)
        self._threads: list[threading.Thread] = []
        self._supervisor: threading.Thread | None = None
        self._t0 = 0.0
        self._failures = 0
        self._next_due = 0.0
        self._last_ts = float("-inf")
        self._nominal_fps: float | None = None
        self._name = f"channel {channel_id} ({redact_uri(self.config.uri)})"

    # --- public -------------------------------------------------------------------------

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def fps(self) -> float | None:
        """The stream's nominal frame rate when known, else the measured one, else None."""
        if self._nominal_fps:
            return self._nominal_fps
        measured = self.stats.fps
        return round(measured, 2) if measured > 0 else None

    def start(self) -> LiveSource:
        """Start connecting in the background (iterating starts it too)."""
        with self._lock:
            if self._supervisor is None and not self._stop.is_set():
                self._t0 = time.monotonic()
                self.stats.started_wall_time = time.time()
                self._supervisor = self._spawn(self._supervise, "live")
        return self

    def stop(self) -> None:
        """End the channel: iteration returns within ~0.1 s, from any thread.

        A reader blocked in a network read closes its connection when the read returns
        (within ``stall_timeout_s``); :meth:`join` waits for that.
        """
        self._stop.set()
        self._transition(SourceState.STOPPED, "stop() called")

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the channel's threads to end; True when they all have."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in list(self._threads):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not any(t.is_alive() for t in self._threads)

    def close(self, timeout_s: float | None = 2.0) -> None:
        """stop() and wait (bounded) for the threads."""
        self.stop()
        self.join(timeout_s)

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Frames until STOPPED or FAILED. Leaving the loop early (break) stops the source."""
        self.start()
        try:
            while True:
                try:
                    generation, frame = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    if not self._finished.is_set():
                        continue
                    try:  # finished: every frame was queued before, so empty means done
                        generation, frame = self._queue.get_nowait()
                    except queue.Empty:
                        return
                if self._stop.is_set():
                    return
                if generation in self._abandoned:
                    continue
                frame.index = self.stats.frames
                if frame.timestamp <= self._last_ts:
                    frame.timestamp = self._last_ts + 1e-6
                self._last_ts = frame.timestamp
                self.stats.frames += 1
                yield frame
        except GeneratorExit:
            self.stop()
            raise

    # --- state ----------------------------------------------------------------------------

    def _transition(self, new: SourceState, reason: str) -> None:
        with self._lock:
            old = self._state
            if old == new or old in FINAL_STATES:
                return
            self._state = new
            self.reason = reason
            # RECONNECTING is INFO: every failed attempt already logs a warning with its wait
            level = logging.WARNING if new == SourceState.FAILED else logging.INFO
            log.log(level, "%s: %s -> %s: %s", self._name, old.value, new.value, reason)
            if self._on_state is not None:
                try:
                    self._on_state(self.channel_id, old, new, reason)
                except Exception:
                    log.exception("%s: on_state callback failed", self._name)

    def _spawn(self, target: Callable[..., None], kind: str, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"oko-{kind}-{self.channel_id}")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    # --- supervisor -------------------------------------------------------------------------

    def _supervise(self) -> None:
        generation = 0
        ts_offset = 0.0
        try:
            while not self._stop.is_set():
                generation += 1
                attempt = _Attempt(generation, time.monotonic(), ts_offset=ts_offset)
                self._spawn(self._read, "read", attempt)
                self._watch(attempt)
                if self._stop.is_set():
                    break
                if attempt.outcome == "eof" and not self.is_live:
                    if attempt.frames == 0:
                        self._transition(SourceState.FAILED, f"{self.config.uri}: no frames")
                        break
                    if not self.config.loop:
                        self._transition(SourceState.STOPPED, "end of file")
                        break
                    ts_offset = attempt.last_ts + attempt.period
                    self.stats.loops += 1
                    continue
                if attempt.permanent:
                    self.stats.last_error = attempt.reason
                    self._transition(SourceState.FAILED, attempt.reason)
                    break
                self._failures += 1
                self.stats.stalls += attempt.outcome == "stall"
                self.stats.last_error = attempt.reason
                delay = self.config.backoff.delay(self._failures, self._rng)
                self.stats.backoff_s = delay
                log.warning("%s: %s; reconnect in %.2f s", self._name, attempt.reason, delay)
                self._transition(SourceState.RECONNECTING, attempt.reason)
                if self._stop.wait(delay):
                    break
                self.stats.reconnects += 1
        except Exception as exc:  # a bug: end the channel visibly, not silently
            log.exception("%s: supervisor failed", self._name)
            self._transition(SourceState.FAILED, f"internal error: {exc!r}")
        finally:
            self._finished.set()

    def _watch(self, attempt: _Attempt) -> None:
        """Wait for the reader to end; abandon it when it shows no life for too long."""
        while not attempt.done.wait(_POLL_S):
            if self._stop.is_set():
                return
            if attempt.opened:
                limit = self.config.stall_timeout_s
            else:  # opening and probing each get the open timeout
                limit = 2 * self.config.open_timeout_s
            silent = time.monotonic() - attempt.progress
            if silent > limit + max(1.0, 0.5 * limit):
                attempt.abandoned = True
                self._abandoned.add(attempt.generation)
                attempt.outcome = "stall"
                attempt.reason = (f"stalled: no frame for {silent:.1f} s and the read does not "
                                  "return; connection abandoned")
                return

    # --- reader -----------------------------------------------------------------------------

    def _open(self) -> Source:
        cfg = self.config
        return open_source(cfg.uri, self.channel_id, transport=cfg.transport,
                           timeout_s=cfg.open_timeout_s, read_timeout_s=cfg.stall_timeout_s,
                           low_latency=cfg.low_latency, options=cfg.ffmpeg_options or None)

    def _read(self, attempt: _Attempt) -> None:
        try:
            try:
                source = self._open()
            except SourceError as exc:
                attempt.outcome, attempt.reason = "error", str(exc)
                attempt.permanent = not self.is_live
                waited = time.monotonic() - attempt.progress
                cfg = self.config
                if self.is_live and waited >= 0.9 * min(cfg.open_timeout_s, cfg.stall_timeout_s):
                    attempt.outcome = "stall"  # FFmpeg says "Invalid data"; it means no answer
                    attempt.reason = f"{exc}: no answer for {waited:.1f} s"
                return
            try:
                self._read_frames(source, attempt)
            finally:
                self.stats.corrupt += source.stats.corrupt
                try:
                    source.close()
                except Exception:  # closing a broken connection may fail too
                    log.debug("%s: close failed", self._name, exc_info=True)
        except Exception as exc:  # unexpected (PyAV internals): retry like a read error
            log.exception("%s: reader failed", self._name)
            attempt.outcome, attempt.reason = "error", f"{type(exc).__name__}: {exc}"
            attempt.permanent = not self.is_live
        finally:
            attempt.done.set()

    def _read_frames(self, source: Source, attempt: _Attempt) -> None:
        stall_s = self.config.stall_timeout_s
        attempt.opened = True
        attempt.progress = time.monotonic()
        self._nominal_fps = source.fps or self._nominal_fps
        attempt.period = 1.0 / (source.fps or (25.0 if isinstance(source, VideoSource) else 1.0))

        def ended() -> bool:
            return self._stop.is_set() or attempt.abandoned

        if isinstance(source, VideoSource):
            source.interrupt = lambda: ended() or time.monotonic() - attempt.progress > stall_s
        for frame in source:
            if ended():
                break
            now = time.monotonic()
            attempt.progress = now
            attempt.frames += 1
            self.stats.last_frame_wall_time = time.time()
            self.stats._arrivals.append(now)
            if attempt.frames == 1:
                self._failures = 0
                self._transition(SourceState.RUNNING, "reconnected" if attempt.generation > 1
                                 and self.is_live else "first frame")
            if self.is_live:
                frame.timestamp = now - self._t0
            else:
                frame.timestamp += attempt.ts_offset
            attempt.last_ts = frame.timestamp
            if not self._admit(frame.timestamp):
                self.stats.dropped += 1
                continue
            self._put(attempt, frame)
        if ended():
            attempt.outcome = "stopped"
            return
        error = getattr(source, "error", None)
        silent = time.monotonic() - attempt.progress
        if error is None or not self.is_live:
            attempt.outcome, attempt.reason = "eof", error or "the stream ended"
            if self.is_live:
                attempt.outcome = "error"  # a live stream that ends has lost its camera
        elif error == "interrupted" or silent >= 0.9 * stall_s:
            attempt.outcome = "stall"
            attempt.reason = f"stalled: no frame for {silent:.1f} s: {error}"
        else:
            attempt.outcome, attempt.reason = "error", f"read error: {error}"

    def _admit(self, ts: float) -> bool:
        """The fps cap: keep a frame when its time slot is due."""
        cap = self.config.fps_cap
        if cap is None:
            return True
        if ts + 1e-3 < self._next_due:
            return False
        period = 1.0 / cap
        self._next_due = self._next_due + period if self._next_due + period > ts else ts + period
        return True

    def _put(self, attempt: _Attempt, frame: Frame) -> None:
        item = (attempt.generation, frame)
        if self.is_live:  # never wait for the consumer: drop the oldest frame
            while True:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass
        while not (self._stop.is_set() or attempt.abandoned):
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                attempt.progress = time.monotonic()  # waiting for the consumer is not a stall
