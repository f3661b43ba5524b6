"""Detections: a struct of parallel numpy arrays, one row per object.

Only ``xyxy`` is required. Optional columns are either ``None`` or an array whose first
axis has one entry per row. Per-row extras that are not built in (plate text, face
identity, ...) live in ``data``. Every operation returns a new object and keeps rows
aligned; inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

# Optional per-row columns, in the order they are declared below.
_OPTIONAL = ("confidence", "class_id", "mask", "keypoints", "track_id", "embedding")


def _check_rows(name: str, value: np.ndarray, n: int, trailing: tuple[int | None, ...]) -> None:
    """Raise a ValueError naming the field, expected and actual shape."""
    expected = (n, *trailing)
    ok = value.ndim == len(expected) and all(
        e is None or e == a for e, a in zip(expected, value.shape, strict=True)
    )
    if not ok:
        shown = tuple("*" if e is None else e for e in expected)
        raise ValueError(f"Detections.{name} must have shape {shown}, got {value.shape}")


@dataclass(frozen=True, eq=False)
class Detections:
    """Objects found in one frame.

    Attributes:
        xyxy: float32 (n, 4) absolute pixel boxes in the original frame.
        confidence: float32 (n,) scores in [0, 1].
        class_id: int32 (n,) indices into the model's labels.
        mask: bool (n, H, W) instance masks in frame pixels.
        keypoints: float32 (n, k, 2) or (n, k, 3) (x, y[, score]).
        track_id: int64 (n,); -1 while a track is tentative.
        embedding: float32 (n, d) appearance/identity vectors.
        data: extra per-row arrays, each with n rows.
    """

    xyxy: np.ndarray
    confidence: np.ndarray | None = None
    class_id: np.ndarray | None = None
    mask: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    track_id: np.ndarray | None = None
    embedding: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Normalise dtypes once here so that downstream code can rely on them.
        set_ = object.__setattr__
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"Detections.xyxy must have shape (n, 4), got {xyxy.shape}")
        set_(self, "xyxy", xyxy)
        n = len(xyxy)
        casts = {"confidence": np.float32, "class_id": np.int32, "mask": bool,
                 "keypoints": np.float32, "track_id": np.int64, "embedding": np.float32}
        trailing: dict[str, tuple[int | None, ...]] = {
            "confidence": (), "class_id": (), "track_id": (),
            "mask": (None, None), "keypoints": (None, None), "embedding": (None,),
        }
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=casts[name])
            if name == "keypoints" and value.ndim == 3 and value.shape[2] not in (2, 3):
                raise ValueError(
                    f"Detections.keypoints must have shape (n, k, 2|3), got {value.shape}")
            _check_rows(name, value, n, trailing[name])
            set_(self, name, value)
        data = {}
        for key, value in self.data.items():
            value = np.asarray(value)
            if value.ndim == 0 or len(value) != n:
                raise ValueError(
                    f"Detections.data[{key!r}] must have {n} rows, got shape {value.shape}")
            data[key] = value
        set_(self, "data", data)

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(cls) -> Detections:
        return cls(xyxy=np.zeros((0, 4), np.float32))

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """Stack rows of several Detections.

        Empty parts are skipped. Optional columns must be set in all remaining parts or in
        none, and ``data`` keys must agree; otherwise ValueError (nothing is dropped).
        """
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        kwargs: dict[str, Any] = {"xyxy": np.concatenate([p.xyxy for p in parts])}
        for name in _OPTIONAL:
            present = [getattr(p, name) is not None for p in parts]
            if any(present) and not all(present):
                raise ValueError(f"cannot concat Detections: {name!r} is set in some parts only")
            if all(present):
                kwargs[name] = np.concatenate([getattr(p, name) for p in parts])
        keys = set(parts[0].data)
        for p in parts[1:]:
            if set(p.data) != keys:
                raise ValueError(
                    f"cannot concat Detections: data keys differ ({sorted(keys)} vs {sorted(p.data)})")
        kwargs["data"] = {k: np.concatenate([p.data[k] for p in parts]) for k in keys}
        return cls(**kwargs)

    # ----------------------------------------------------------------- selection
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Detections:
        """Select rows: an int (kept as one row), slice, index list or boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, np.ndarray) and index.dtype == bool and len(index) != len(self):
            raise IndexError(f"boolean mask has {len(index)} entries for {len(self)} detections")
        kwargs: dict[str, Any] = {"xyxy": self.xyxy[index]}
        for name in _OPTIONAL:
            value = getattr(self, name)
            kwargs[name] = None if value is None else value[index]
        kwargs["data"] = {k: v[index] for k, v in self.data.items()}
        return Detections(**kwargs)

    def with_track_ids(self, track_id: np.ndarray) -> Detections:
        return replace(self, track_id=track_id, data=dict(self.data))

    def with_data(self, **columns: np.ndarray) -> Detections:
        """A copy with extra or replaced ``data`` columns."""
        return replace(self, data={**self.data, **columns})

    def with_fields(self, **values: Any) -> Detections:
        """A copy with built-in columns replaced (e.g. ``embedding=...``)."""
        unknown = set(values) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"Detections has no field(s) {sorted(unknown)}")
        return replace(self, **values)

    # ----------------------------------------------------------------- derived values
    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    @property
    def centers(self) -> np.ndarray:
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) * 0.5

    def labels(self, names: Sequence[str] | Mapping[int, str]) -> list[str]:
        """Class names for each row (``str(class_id)`` when a name is missing)."""
        if self.class_id is None:
            return [""] * len(self)
        if isinstance(names, Mapping):
            return [names.get(int(c), str(int(c))) for c in self.class_id]
        return [names[c] if 0 <= c < len(names) else str(int(c)) for c in self.class_id.tolist()]

    def __repr__(self) -> str:
        cols = [n for n in _OPTIONAL if getattr(self, n) is not None] + [
            f"data[{k!r}]" for k in self.data]
        return f"Detections(n={len(self)}, columns={cols})"
