"""`oko count`: detection + tracking + counting lines over a whole video.

The quick check an installer runs on a recorded clip before putting a line into a
config. It runs the same runtime as `oko run` (one file channel, no sinks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oko.analytics import count_result
from oko.config import parse_config
from oko.core.errors import ConfigError
from oko.video.runtime import Runtime


def parse_line(text: str) -> tuple[float, float, float, float]:
    """``X1,Y1,X2,Y2`` (pixels, or 0..1 fractions with --normalized)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise ConfigError(f"--line {text!r}: expected X1,Y1,X2,Y2 (four numbers)")
    return values  # type: ignore[return-value]


def count_video(video: str | Path, lines: list[str], anchor: str = "bottom_center",
                classes: list[str] | None = None, tracker: str = "ocsort",
                model: str | None = None, normalized: bool = False,
                hysteresis_px: float | None = None) -> dict[str, Any]:
    line_cfgs = []
    for i, text in enumerate(lines):
        x1, y1, x2, y2 = parse_line(text)
        cfg: dict[str, Any] = {"name": f"line{i + 1}", "start": [x1, y1], "end": [x2, y2],
                               "anchor": anchor, "normalized": normalized}
        if classes:
            cfg["classes"] = classes
        if hysteresis_px is not None:
            cfg["hysteresis_px"] = hysteresis_px
        line_cfgs.append(cfg)
    detect: dict[str, Any] = {} if model is None else {"model": model}
    config = parse_config({
        "api": {"enabled": False}, "batch": {"max_size": 1, "max_wait_ms": 0},
        "channels": [{"id": "count", "source": {"uri": str(video)}, "detect": detect,
                      "tracker": {"kind": tracker}, "lines": line_cfgs}],
    }, "oko count")
    runtime = Runtime(config.engine, config.batch, config.sinks, node="count")
    try:
        channel = runtime.add_channel(config.channels[0])
        runtime.wait()
    finally:
        runtime.stop()
    if channel.analytics is None:
        raise ConfigError(f"{video}: no frame could be processed")
    result = count_result(channel.analytics)
    snap = channel.snapshot()
    result["frames"] = snap["frames_processed"]
    result["direction"] = ("'in' = crossing from the left to the right side, seen from the "
                           "line's start looking towards its end (image y points down)")
    return result
