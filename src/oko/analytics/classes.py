"""Which rows a zone or line looks at: confirmed tracks of the configured classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oko.core.detections import Detections
from oko.core.errors import ConfigError

UNKNOWN_LABEL = "unknown"  # by_class key for detections that carry no class id


def label_of(class_id: int, labels: Sequence[str] | None) -> str:
    """The class name, ``str(class_id)`` when it has none, ``unknown`` for no class."""
    if class_id < 0:
        return UNKNOWN_LABEL
    if labels is not None and class_id < len(labels):
        return labels[class_id]
    return str(class_id)


class ClassFilter:
    """Resolves configured class names against the model's labels and masks rows.

    A name matches a label exactly; a name of digits (``"2"``) also means that class id,
    which is how classes without labels are named. ``None`` selects every class.
    """

    def __init__(self, classes: Sequence[str] | None, where: str) -> None:
        self.classes = None if classes is None else list(classes)
        self.where = where
        self._labels: Sequence[str] | None = None
        self._key: tuple[str, ...] | None = None
        self._ids = np.zeros(0, dtype=np.int64)

    def resolve(self, labels: Sequence[str] | None) -> np.ndarray:
        """Class ids selected under ``labels``; ConfigError naming an unknown class."""
        if self.classes is None:
            return self._ids
        if labels is self._labels and self._key is not None:
            return self._ids
        key = tuple(labels or ())
        if key != self._key:
            index = {name: i for i, name in enumerate(key)}
            ids, unknown = [], []
            for name in self.classes:
                if name in index:
                    ids.append(index[name])
                elif name.isdigit():
                    ids.append(int(name))
                else:
                    unknown.append(name)
            if unknown:
                known = ", ".join(key[:20]) + (", ..." if len(key) > 20 else "")
                raise ConfigError(f"{self.where}: unknown class {', '.join(map(repr, unknown))}",
                                  f"the model's labels are: {known or 'none (use class ids)'}")
            self._ids = np.unique(np.asarray(ids, dtype=np.int64))
            self._key = key
        self._labels = labels
        return self._ids

    def mask(self, class_id: np.ndarray | None, labels: Sequence[str] | None) -> np.ndarray | None:
        """Boolean mask of rows whose class is selected; None when every row is."""
        if self.classes is None:
            return None
        ids = self.resolve(labels)
        if class_id is None:
            raise ConfigError(f"{self.where}: classes are set but the detections carry no "
                              "class ids", "leave classes out for a class-agnostic detector")
        return np.isin(class_id, ids)


def tracked_rows(dets: Detections, class_filter: ClassFilter,
                 labels: Sequence[str] | None) -> tuple[Detections, np.ndarray, np.ndarray]:
    """Rows with a confirmed track (id >= 0) of a selected class, one row per track id.

    Returns ``(rows, track_ids int64, class_ids int64)``; class ids are -1 when the
    detections have none. Detections without ``track_id`` select nothing.
    """
    if dets.track_id is None or len(dets) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Detections.empty(), empty, empty
    keep = dets.track_id >= 0
    by_class = class_filter.mask(dets.class_id, labels)
    if by_class is not None:
        keep &= by_class
    rows = dets[keep]
    tids = rows.track_id.astype(np.int64)
    # A tracker should never repeat an id in one frame; if it does, keep the first row.
    uniq, first = np.unique(tids, return_index=True)
    if len(uniq) != len(tids):
        first.sort()
        rows = rows[first]
        tids = tids[first]
    cids = (rows.class_id.astype(np.int64) if rows.class_id is not None
            else np.full(len(rows), -1, dtype=np.int64))
    return rows, tids, cids
