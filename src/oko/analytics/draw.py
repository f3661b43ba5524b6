"""Drawing zones and lines with their counts on a frame (OpenCV, BGR uint8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from oko.analytics.aggregate import Analytics
from oko.analytics.config import LineConfig, ZoneConfig
from oko.analytics.lines import LineCounter
from oko.analytics.zones import PolygonZone

_ZONE_COLORS = [(255, 144, 30), (0, 200, 255), (200, 80, 255), (80, 220, 80), (60, 60, 255)]
_LINE_COLOR = (0, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(image: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, ...],
           scale: float = 0.5, centered: bool = False) -> None:
    """Text on a filled box, kept inside the image.

    ``org`` is the box's bottom-left corner, or its centre when ``centered``.
    """
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    if centered:
        org = (org[0] - (tw + 4) // 2, org[1] + (th + base + 4) // 2)
    h, w = image.shape[:2]
    x = int(min(max(org[0], 0), max(w - tw - 4, 0)))
    y = int(min(max(org[1], th + base + 4), h - 1))
    cv2.rectangle(image, (x, y - th - base - 4), (x + tw + 4, y), color, -1)
    cv2.putText(image, text, (x + 2, y - base - 2), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _label_beside(image: np.ndarray, text: str, point: np.ndarray, direction: np.ndarray,
                  gap: float) -> None:
    """A label whose box starts ``gap`` pixels from ``point`` along the unit ``direction``."""
    (tw, th), base = cv2.getTextSize(text, _FONT, 0.5, 1)
    half_w, half_h = (tw + 4) / 2, (th + base + 4) / 2
    reach = abs(direction[0]) * half_w + abs(direction[1]) * half_h
    center = np.round(point + direction * (gap + reach)).astype(int)
    _label(image, text, (int(center[0]), int(center[1])), _LINE_COLOR, centered=True)


def _by_name(counts: Mapping[str, Any] | None, key: str) -> dict[str, Mapping[str, Any]]:
    if not counts:
        return {}
    return {item["name"]: item for item in counts.get(key, [])}


def draw_zones_and_lines(image: np.ndarray,
                         zones: Sequence[ZoneConfig | PolygonZone] | Analytics,
                         lines: Sequence[LineConfig | LineCounter] = (),
                         counts: Mapping[str, Any] | None = None) -> np.ndarray:
    """Return a copy of ``image`` (BGR) with zones, lines and their counts drawn.

    ``counts`` is :meth:`Analytics.snapshot` output (matched by name); without it, zone
    and line counter objects show their own counts and plain configs show none.
    ``draw_zones_and_lines(image, analytics)`` draws all of a channel's zones and lines.
    Normalised configs are converted with the image size. Each line has an arrow on the
    side objects cross *into* when counted ``in``, labelled with the in and out totals.
    """
    if isinstance(zones, Analytics):
        zones, lines, counts = zones.zones, zones.lines, counts or zones.snapshot()
    out = image.copy()
    h, w = out.shape[:2]
    zone_counts = _by_name(counts, "zones")
    line_counts = _by_name(counts, "lines")

    overlay = out.copy()
    polys = []
    for i, zone in enumerate(zones):
        cfg = zone.config if isinstance(zone, PolygonZone) else zone.to_pixels(w, h)
        pts = np.round(np.asarray(cfg.polygon, dtype=np.float64)).astype(np.int32)
        color = _ZONE_COLORS[i % len(_ZONE_COLORS)]
        cv2.fillPoly(overlay, [pts], color)
        polys.append((cfg.name, pts, color, zone))
    if polys:
        cv2.addWeighted(overlay, 0.2, out, 0.8, 0, dst=out)
    for name, pts, color, zone in polys:
        cv2.polylines(out, [pts], True, color, 2, cv2.LINE_AA)
        stats = zone_counts.get(name) or (zone.counts() if isinstance(zone, PolygonZone) else None)
        text = name if stats is None else f"{name}: {stats['occupancy']}"
        top = pts[np.argmin(pts[:, 1])]
        _label(out, text, (int(top[0]), int(top[1]) - 4), color)

    for line in lines:
        cfg = line.config if isinstance(line, LineCounter) else line.to_pixels(w, h)
        s = np.asarray(cfg.start, dtype=np.float64)
        e = np.asarray(cfg.end, dtype=np.float64)
        p1, p2 = tuple(np.round(s).astype(int)), tuple(np.round(e).astype(int))
        cv2.line(out, p1, p2, _LINE_COLOR, 2, cv2.LINE_AA)
        cv2.circle(out, p1, 4, _LINE_COLOR, -1, cv2.LINE_AA)
        cv2.circle(out, p2, 4, _LINE_COLOR, -1, cv2.LINE_AA)
        d = e - s
        normal = np.array([-d[1], d[0]]) / float(np.hypot(*d))  # points to the "in" side
        mid = (s + e) / 2
        arrow = max(20.0, min(40.0, 0.15 * float(np.hypot(*d))))
        tip = mid + normal * arrow
        cv2.arrowedLine(out, tuple(np.round(mid).astype(int)), tuple(np.round(tip).astype(int)),
                        _LINE_COLOR, 2, cv2.LINE_AA, tipLength=0.35)
        stats = line_counts.get(cfg.name) or (
            line.counts() if isinstance(line, LineCounter) else None)
        _label(out, cfg.name, (p1[0] + 6, p1[1] - 6), _LINE_COLOR)
        if stats is not None:
            _label_beside(out, f"in {stats['in']}", mid, normal, arrow + 2)
            _label_beside(out, f"out {stats['out']}", mid, -normal, 4)
    return out
