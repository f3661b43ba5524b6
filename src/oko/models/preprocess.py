"""Frames to model input tensors, as a manifest's InputSpec describes. Shared by all adapters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oko.core.geometry import Letterbox, letterbox, stretch
from oko.models.manifest import ColorOrder, InputDType, InputSpec, Layout, ResizeMode


class InputPreprocessor:
    """Resize, reorder channels, normalise and lay out a batch of BGR uint8 images.

    The per-pixel work is one vectorised pass over the stacked batch; mean and std are
    folded into a single multiply-add.
    """

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        # Constants in the model's channel order (channels are flipped before applying).
        mean = np.asarray(spec.mean, np.float32)
        self._scale = (1.0 / np.asarray(spec.std, np.float32)).astype(np.float32)
        self._offset = (-mean * self._scale).astype(np.float32)
        self._identity = bool(np.all(mean == 0) and np.all(self._scale == 1))

    def resize(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        spec = self.spec
        if spec.resize == ResizeMode.LETTERBOX:
            return letterbox(image, spec.width, spec.height, spec.pad_value)
        return stretch(image, spec.width, spec.height)

    def __call__(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        resized, geoms = zip(*(self.resize(img) for img in images), strict=True)
        batch = np.stack(resized)  # (B, H, W, 3) uint8 BGR
        if self.spec.color == ColorOrder.RGB:
            batch = batch[..., ::-1]
        if self.spec.dtype == InputDType.UINT8:
            tensor = np.ascontiguousarray(batch)
        else:
            tensor = batch.astype(np.float32)
            if not self._identity:
                tensor *= self._scale
                tensor += self._offset
        if self.spec.layout == Layout.NCHW:
            tensor = np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))
        return tensor, list(geoms)
