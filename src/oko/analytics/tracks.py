"""Per-track state as parallel numpy columns, found by track id without Python loops."""

from __future__ import annotations

from typing import Any

import numpy as np


class TrackTable:
    """Rows of per-track state, sorted by track id.

    ``columns`` maps a column name to ``(dtype, fill)``; a 2-D column is declared as
    ``(dtype, fill, width)``. Columns are plain arrays (``table["side"]``), indexed by the
    row numbers :meth:`find` returns.
    """

    def __init__(self, **columns: tuple[Any, ...]) -> None:
        self._spec = columns
        self.ids = np.zeros(0, dtype=np.int64)
        self.cols: dict[str, np.ndarray] = {
            name: np.zeros((0, *spec[2:]), dtype=spec[0]) for name, spec in columns.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def find(self, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of each id and whether it exists: ``(rows, found)``; rows are valid where found."""
        rows = np.searchsorted(self.ids, track_ids)
        found = rows < len(self.ids)
        found[found] = self.ids[rows[found]] == track_ids[found]
        return rows, found

    def insert(self, track_ids: np.ndarray, **values: Any) -> None:
        """Add rows for new (absent, distinct) ids; unnamed columns take their fill value."""
        n = len(track_ids)
        if n == 0:
            return
        ids = np.concatenate([self.ids, np.asarray(track_ids, dtype=np.int64)])
        order = np.argsort(ids, kind="stable")
        self.ids = ids[order]
        for name, spec in self._spec.items():
            new = np.empty((n, *spec[2:]), dtype=spec[0])
            new[...] = values.get(name, spec[1])
            self.cols[name] = np.concatenate([self.cols[name], new])[order]

    def keep(self, mask: np.ndarray) -> None:
        """Drop every row where ``mask`` is False."""
        self.ids = self.ids[mask]
        self.cols = {name: col[mask] for name, col in self.cols.items()}

    def clear(self) -> None:
        self.keep(np.zeros(len(self.ids), dtype=bool))
