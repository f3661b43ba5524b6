"""Multi-object trackers by name: OC-SORT and ByteTrack.

Importing a tracker module registers it; callers use ``create_tracker``. One tracker
instance per channel. Adding a tracker: one file here with a ``Tracker`` subclass and
its config class, plus one import line and one entry in ``TrackerConfig`` below.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from oko.core.errors import ConfigError, UnknownNameError
from oko.track.base import BaseTrackerConfig, Tracker
from oko.track.bytetrack import ByteTrackConfig, ByteTrackTracker
from oko.track.ocsort import OCSortConfig, OCSortTracker

DEFAULT_TRACKER = "ocsort"

# Any tracker config, picked by its ``kind`` (for pipeline config files).
TrackerConfig = Annotated[Union[OCSortConfig, ByteTrackConfig],  # noqa: UP007
                          Field(discriminator="kind")]


def tracker_names() -> list[str]:
    return sorted(Tracker.registry)


def parse_tracker_config(value: BaseTrackerConfig | str | dict[str, Any] | None
                         ) -> BaseTrackerConfig:
    """A tracker config from a name ('ocsort'), a dict (from YAML) or a config."""
    if isinstance(value, BaseTrackerConfig):
        return value
    if value is None:
        value = DEFAULT_TRACKER
    if isinstance(value, str):
        value = {"kind": value}
    kind = value.get("kind", DEFAULT_TRACKER)
    if kind not in Tracker.registry:
        raise UnknownNameError("tracker", str(kind), tracker_names())
    try:
        return TypeAdapter(Tracker.registry[kind].config_class).validate_python(
            {**value, "kind": kind})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors())
        raise ConfigError(f"tracker config ({kind}): {problems}") from exc


def create_tracker(config: BaseTrackerConfig | str | dict[str, Any] | None = None) -> Tracker:
    """A new tracker (fresh state, ids from 1) from a name, dict or config."""
    cfg = parse_tracker_config(config)
    return Tracker.registry[cfg.kind](cfg)


__all__ = ["DEFAULT_TRACKER", "BaseTrackerConfig", "ByteTrackConfig", "ByteTrackTracker",
           "OCSortConfig", "OCSortTracker", "Tracker", "TrackerConfig", "create_tracker",
           "parse_tracker_config", "tracker_names"]
