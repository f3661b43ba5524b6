"""Zone and line analytics on tracked detections: counts, occupancy, dwell and events.

Lines count directional crossings (``in``: from the left to the right of an observer at
``start`` looking towards ``end``); zones report occupancy, enter/exit and dwell time.
Both read confirmed tracks only (``track_id >= 0``), at a configurable box anchor.
See docs/analytics.md for the rules and the event schemas.
"""

from oko.analytics.aggregate import Analytics, count_result
from oko.analytics.anchors import Anchor, anchor_points
from oko.analytics.config import LineConfig, ZoneConfig, parse_configs
from oko.analytics.draw import draw_zones_and_lines
from oko.analytics.geometry import (
    points_in_polygon,
    polygon_area,
    segment_position,
    signed_distance,
)
from oko.analytics.lines import LineCounter
from oko.analytics.zones import PolygonZone

__all__ = [
    "Analytics", "Anchor", "LineConfig", "LineCounter", "PolygonZone", "ZoneConfig",
    "anchor_points", "count_result", "draw_zones_and_lines", "parse_configs",
    "points_in_polygon", "polygon_area", "segment_position", "signed_distance",
]
