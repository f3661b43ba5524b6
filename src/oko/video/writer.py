"""Writing annotated frames to an MP4 file (H.264 through PyAV's bundled FFmpeg)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from oko.core.errors import SourceError


class VideoWriter:
    """Encode BGR frames of one size into a video file; use as a context manager."""

    def __init__(self, path: Path, fps: float, width: int, height: int, crf: int = 23) -> None:
        import av

        self.path = Path(path)
        try:
            self._container = av.open(str(self.path), mode="w")
        except (OSError, av.error.FFmpegError) as exc:
            raise SourceError(f"{self.path}: cannot write video ({exc})") from exc
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._stream = self._container.add_stream(codec, rate=rate)
        # yuv420p needs even sizes; odd frames are cropped by one pixel.
        self._stream.width, self._stream.height = width - width % 2, height - height % 2
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}

    def write(self, image: np.ndarray) -> None:
        import av

        w, h = self._stream.width, self._stream.height
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
