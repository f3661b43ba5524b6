"""Frame sources: video files, stream URLs, USB cameras (PyAV), images, folders of images.

Every source yields :class:`oko.core.Frame` objects (BGR uint8). Opening checks the input
at once so that a wrong path or a file that is not media fails with one clear
:class:`SourceError`; a corrupt frame in the middle of a stream is skipped and counted.

Live inputs (RTSP/HTTP/... URLs and USB cameras) get FFmpeg options from
:func:`ffmpeg_input_options`: socket timeouts so that a dead camera cannot block a read
for ever, the RTSP transport, and fast-start probing. A source here reads one connection
and ends when it breaks (:attr:`VideoSource.error` says why); :mod:`oko.video.live`
reconnects.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from oko.core.errors import SourceError
from oko.core.frame import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# FFmpeg renders plain text as "video" through these demuxers; nobody means that.
_TEXT_DEMUXERS = frozenset({"tty"})
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
USB_PREFIX = "usb:"  # usb:N is /dev/videoN
_V4L2_DEVICE = re.compile(r"^/dev/video\d+$")
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/@:]*):[^/]*@", re.IGNORECASE)

Transport = Literal["tcp", "udp"]
"""How RTSP carries the media: interleaved in the RTSP TCP connection, or as RTP over UDP."""

DEFAULT_TIMEOUT_S = 10.0
# Probing a live stream waits this long at most for stream parameters (FFmpeg's default is
# 5 s); an H.264 camera announces them in the SDP or the first key frame.
_LIVE_ANALYZE_US = 1_000_000
_UDP_BUFFER_BYTES = 1 << 20  # a 4K key frame arrives as a burst of RTP packets


@dataclass
class SourceStats:
    """What a source has delivered and what it had to skip."""

    frames: int = 0
    corrupt: int = 0
    missing: int = 0  # frames the container promised but never delivered (truncated file)


class Source(ABC):
    """An iterable of frames from one channel. Use as a context manager to close it."""

    def __init__(self, uri: str, channel_id: str) -> None:
        self.uri = uri
        self.channel_id = channel_id
        self.stats = SourceStats()

    @property
    def fps(self) -> float | None:
        """Nominal frame rate, when the source has one."""
        return None

    @property
    def frame_count(self) -> int | None:
        """Number of frames, when known in advance."""
        return None

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:  # noqa: B027 - most sources hold nothing
        """Release the underlying file or connection."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_image(path: Path) -> np.ndarray | None:
    # imdecode on bytes handles non-ASCII paths, which cv2.imread does not on all platforms.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image


class ImageSource(Source):
    """One image file as a one-frame source."""

    def __init__(self, path: Path, channel_id: str = "0") -> None:
        super().__init__(str(path), channel_id)
        image = _read_image(path)
        if image is None:
            raise SourceError(f"{path}: not a readable image")
        self._image = image

    @property
    def frame_count(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Frame]:
        self.stats.frames += 1
        yield Frame(self._image, self.channel_id, 0, 0.0)


class ImageFolderSource(Source):
    """Images in a folder, in name order; unreadable files are skipped and counted."""

    def __init__(self, folder: Path, channel_id: str = "0") -> None:
        super().__init__(str(folder), channel_id)
        self.paths = sorted(p for p in folder.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise SourceError(f"{folder}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    @property
    def frame_count(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            image = _read_image(path)
            if image is None:
                self.stats.corrupt += 1
                log.warning("%s: skipping unreadable image", path)
                continue
            self.stats.frames += 1
            yield Frame(image, self.channel_id, index, float(index))
            index += 1


class VideoSource(Source):
    """A video file, stream URL or capture device decoded with PyAV (FFmpeg).

    ``options`` are FFmpeg input options (see :func:`ffmpeg_input_options`); ``format``
    forces a demuxer (``"v4l2"`` for USB cameras). ``open_timeout_s`` bounds opening and
    probing, ``read_timeout_s`` (default: the open timeout) each blocking read: FFmpeg's
    interrupt callback aborts the call, and the stream ends with :attr:`error` set.
    """

    def __init__(self, uri: str, channel_id: str = "0", options: dict[str, str] | None = None,
                 open_timeout_s: float = DEFAULT_TIMEOUT_S, read_timeout_s: float | None = None,
                 format: str | None = None) -> None:
        super().__init__(uri, channel_id)
        import av  # decoding library imported where it is used

        opts = dict(options or {})
        if uri.startswith(("rtsp://", "rtsps://")):
            opts.setdefault("rtsp_transport", "tcp")
        self.read_timeout_s = open_timeout_s if read_timeout_s is None else read_timeout_s
        shown = redact_uri(uri)
        self.error: str | None = None
        """Why the stream ended early (a read error or timeout); None at a clean end."""
        self.interrupt: Callable[[], bool] | None = None
        """Checked before each packet; returning True ends iteration (error "interrupted")."""
        try:
            self._container = av.open(uri, options=opts, format=format,
                                      timeout=(open_timeout_s, self.read_timeout_s))
        except av.error.FFmpegError as exc:
            what = "cannot open stream" if is_live(uri) else "not a readable video or image"
            raise SourceError(f"{shown}: {what} ({_ffmpeg_reason(exc)})") from exc
        except ValueError as exc:  # e.g. a demuxer this FFmpeg build lacks
            raise SourceError(f"{shown}: cannot open ({exc})") from exc
        if self._container.format.name in _TEXT_DEMUXERS:
            self._container.close()
            raise SourceError(f"{shown}: not a readable video or image (it is a text file)")
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{shown}: has no video stream")
        self._stream = self._container.streams.video[0]
        # Frame + slice threads. (Slice threading alone hides H.264 errors: concealed
        # frames come out without their corrupt flag, so they could not be skipped.)
        self._stream.thread_type = "AUTO"

    @property
    def fps(self) -> float | None:
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else None

    @property
    def frame_count(self) -> int | None:
        return int(self._stream.frames) or None

    @property
    def width(self) -> int:
        return int(self._stream.codec_context.width)

    @property
    def height(self) -> int:
        return int(self._stream.codec_context.height)

    def _packets(self) -> Iterator:
        """Demuxed packets; a broken container tail ends the stream instead of raising."""
        import av

        live = is_live(self.uri)
        packets = self._container.demux(self._stream)
        while True:
            if self.interrupt is not None and self.interrupt():
                self.error = "interrupted"
                return
            started = time.monotonic()
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                self.stats.corrupt += not live  # a file's broken tail; a stream's lost link
                self.error = _ffmpeg_reason(exc)
                log.warning("%s: stream ends early: %s", redact_uri(self.uri), self.error)
                return
            waited = time.monotonic() - started
            if live and waited >= 0.95 * self.read_timeout_s:
                # The read timed out. FFmpeg then flushes its parser: the frame it held
                # (an H.264 access unit ends only where the next one starts) comes out now,
                # late, and the error only after a second full timeout. End here instead.
                self.error = f"read timed out (no data for {waited:.1f} s)"
                log.warning("%s: stream ends: %s", redact_uri(self.uri), self.error)
                return
            yield packet

    def __iter__(self) -> Iterator[Frame]:
        import av

        fps = self.fps or 25.0
        index = 0
        for packet in self._packets():
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                self.stats.corrupt += 1
                log.warning("%s: skipping undecodable packet: %s", redact_uri(self.uri),
                            _ffmpeg_reason(exc))
                continue
            for frame in decoded:
                if frame.is_corrupt:
                    self.stats.corrupt += 1
                    continue
                t = float(frame.time) if frame.time is not None else index / fps
                self.stats.frames += 1
                yield Frame(frame.to_ndarray(format="bgr24"), self.channel_id, index, t)
                index += 1
        expected = self.frame_count
        if self.error == "interrupted":  # stopped on purpose: nothing is missing
            return
        if expected and self.stats.frames + self.stats.corrupt < expected:
            self.stats.missing = expected - self.stats.frames - self.stats.corrupt
            log.warning("%s: stream ended after %d of %d frames (truncated?)",
                        self.uri, self.stats.frames, expected)

    def close(self) -> None:
        self._container.close()


def _ffmpeg_reason(exc: Exception) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    return str(reason).strip() or type(exc).__name__


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for logs and error messages)."""
    return _USERINFO.sub(lambda m: f"{m[1]}{m[2]}:***@", uri)


def usb_device(uri: str | Path) -> str | None:
    """The V4L2 device path of a USB camera URI (``usb:N`` or ``/dev/videoN``), else None."""
    text = str(uri)
    if text.startswith(USB_PREFIX):
        number = text[len(USB_PREFIX):]
        if not number.isdigit():
            raise SourceError(f"{text}: a USB camera is usb:N (N = the N of /dev/videoN)")
        return f"/dev/video{int(number)}"
    return text if _V4L2_DEVICE.match(text) else None


def is_live(uri: str | Path) -> bool:
    """True for stream URLs and cameras (no end, may drop), False for files and folders."""
    text = str(uri)
    return text.startswith(URL_SCHEMES) or usb_device(text) is not None


def ffmpeg_input_options(uri: str, transport: Transport = "tcp",
                         timeout_s: float = DEFAULT_TIMEOUT_S,
                         low_latency: bool = True) -> dict[str, str]:
    """FFmpeg input options for a live ``uri``; empty for files.

    - RTSP: ``rtsp_transport`` (tcp: media interleaved in the RTSP connection, survives NAT
      and loses nothing; udp: RTP datagrams, lower latency, may lose packets, with a 1 MiB
      ``buffer_size`` for key-frame bursts); ``timeout`` is the socket I/O timeout in
      microseconds, so a camera that stops sending fails the read with "Connection timed
      out" instead of blocking; ``allowed_media_types=video`` skips audio tracks.
    - Other URLs (http, rtmp, tcp, srt, udp): ``rw_timeout`` in microseconds, FFmpeg's
      generic read/write timeout. HTTP's own reconnect options stay off: the caller
      (:class:`oko.video.live.LiveSource`) reconnects, with backoff and state.
    - ``low_latency`` (fast start): ``fpsprobesize=0`` (do not decode frames while opening
      only to guess the frame rate; live timestamps are wall-clock anyway) and
      ``analyzeduration`` 1 s (FFmpeg's default is 5 s). Against rtsp-server-perl this
      opens in 0.5 s instead of 1.4 s (2.5 s with FFmpeg's defaults), and the first frame
      comes with the first key frame, without a burst of stale probed frames.
      ``fflags=nobuffer`` is left out: it discards the packets read while probing, so
      when a key frame falls in the probe the first frame waits a whole GOP more (seen
      in 1 of 4 reconnects there). The decoder's ``low_delay`` flag is left out too: it
      disables frame threads, and slice threads conceal broken H.264 frames instead of
      flagging them as corrupt. Either can be passed as an extra option.
    """
    if not is_live(uri):
        return {}
    if transport not in ("tcp", "udp"):
        raise SourceError(f"{uri}: transport must be tcp or udp, not {transport!r}")
    micros = str(int(timeout_s * 1_000_000))
    opts: dict[str, str] = {}
    if uri.startswith(("rtsp://", "rtsps://")):
        opts.update(rtsp_transport=transport, timeout=micros, allowed_media_types="video")
        if transport == "udp":
            opts["buffer_size"] = str(_UDP_BUFFER_BYTES)
    elif usb_device(uri) is None:
        opts["rw_timeout"] = micros
    if low_latency:
        opts.update(fpsprobesize="0", analyzeduration=str(_LIVE_ANALYZE_US))
    return opts


def open_source(uri: str | Path, channel_id: str = "0", *, transport: Transport = "tcp",
                timeout_s: float = DEFAULT_TIMEOUT_S, read_timeout_s: float | None = None,
                low_latency: bool = True, options: dict[str, str] | None = None) -> Source:
    """Open a video file, stream URL, USB camera, image file or folder of images.

    For live inputs ``transport``, ``low_latency`` and the timeouts choose the FFmpeg
    options (:func:`ffmpeg_input_options`): ``timeout_s`` bounds opening, ``read_timeout_s``
    (default ``timeout_s``) each socket read. ``options`` adds or overrides FFmpeg options
    (e.g. ``{"video_size": "1280x720", "input_format": "mjpeg"}`` for a USB camera).
    """
    text = str(uri)
    device = usb_device(text)
    if device is not None or text.startswith(URL_SCHEMES):
        read_s = timeout_s if read_timeout_s is None else read_timeout_s
        opts = ffmpeg_input_options(text, transport, read_s, low_latency)
        opts.update(options or {})
        if device is None:
            return VideoSource(text, channel_id, opts, timeout_s, read_s)
        if not Path(device).exists():
            raise SourceError(f"{text}: no such camera device {device}")
        return VideoSource(device, channel_id, opts, timeout_s, read_s, format="v4l2")
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        return ImageFolderSource(path, channel_id)
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, channel_id)
    return VideoSource(str(path), channel_id, options)
