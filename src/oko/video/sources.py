"""Frame sources: video files and URLs (PyAV), single images, folders of images.

Every source yields :class:`oko.core.Frame` objects (BGR uint8). Opening checks the input
at once so that a wrong path or a file that is not media fails with one clear
:class:`SourceError`; a corrupt frame in the middle of a stream is skipped and counted.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from oko.core.errors import SourceError
from oko.core.frame import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# FFmpeg renders plain text as "video" through these demuxers; nobody means that.
_TEXT_DEMUXERS = frozenset({"tty"})
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


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
    """A video file or stream URL decoded with PyAV (FFmpeg)."""

    def __init__(self, uri: str, channel_id: str = "0", options: dict[str, str] | None = None,
                 open_timeout_s: float = 10.0) -> None:
        super().__init__(uri, channel_id)
        import av  # decoding library imported where it is used

        opts = dict(options or {})
        if uri.startswith(("rtsp://", "rtsps://")):
            opts.setdefault("rtsp_transport", "tcp")
        try:
            self._container = av.open(uri, options=opts, timeout=open_timeout_s)
        except av.error.FFmpegError as exc:
            raise SourceError(f"{uri}: not a readable video or image ({_ffmpeg_reason(exc)})") from exc
        if self._container.format.name in _TEXT_DEMUXERS:
            self._container.close()
            raise SourceError(f"{uri}: not a readable video or image (it is a text file)")
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{uri}: has no video stream")
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

        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                self.stats.corrupt += 1
                log.warning("%s: stream ends early: %s", self.uri, _ffmpeg_reason(exc))
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
                log.warning("%s: skipping undecodable packet: %s", self.uri, _ffmpeg_reason(exc))
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
        if expected and self.stats.frames + self.stats.corrupt < expected:
            self.stats.missing = expected - self.stats.frames - self.stats.corrupt
            log.warning("%s: stream ended after %d of %d frames (truncated?)",
                        self.uri, self.stats.frames, expected)

    def close(self) -> None:
        self._container.close()


def _ffmpeg_reason(exc: Exception) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    return str(reason).strip() or type(exc).__name__


def open_source(uri: str | Path, channel_id: str = "0") -> Source:
    """Open a video file, stream URL, image file or folder of images."""
    text = str(uri)
    if text.startswith(URL_SCHEMES):
        return VideoSource(text, channel_id)
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        return ImageFolderSource(path, channel_id)
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, channel_id)
    return VideoSource(str(path), channel_id)
