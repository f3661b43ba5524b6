"""Frames to model input tensors, as a manifest's InputSpec describes. Shared by all adapters."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from oko.core.geometry import Letterbox, letterbox, stretch
from oko.models.manifest import ColorOrder, InputDType, InputSpec, Layout, ResizeMode


class InputPreprocessor:
    """Resize, reorder channels, normalise and lay out a batch of BGR uint8 images.

    For NCHW, normalisation runs on contiguous channel planes (one scalar subtract and
    divide per plane): several times faster than broadcasting over interleaved HxWx3
    pixels, and bit-identical to Ultralytics' ``x / 255``.
    """

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        # Planes are taken from BGR images in the model's channel order.
        self._order = [2, 1, 0] if spec.color == ColorOrder.RGB else [0, 1, 2]
        self._mean = [float(m) for m in spec.mean]
        self._std = [float(s) for s in spec.std]

    def resize(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        spec = self.spec
        if spec.resize == ResizeMode.LETTERBOX:
            return letterbox(image, spec.width, spec.height, spec.pad_value)
        return stretch(image, spec.width, spec.height)

    def __call__(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        resized, geoms = zip(*(self.resize(img) for img in images), strict=True)
        if self.spec.color == ColorOrder.GRAY:
            return self._gray(resized), list(geoms)
        batch = np.stack(resized)  # (B, H, W, 3) uint8 BGR
        if self.spec.layout == Layout.NCHW:
            tensor = batch.transpose(0, 3, 1, 2)[:, self._order]  # contiguous planes (copy)
        else:
            tensor = batch[..., self._order]
        if self.spec.dtype == InputDType.FLOAT32:
            tensor = tensor.astype(np.float32)
            for c in range(3):
                plane = tensor[:, c] if self.spec.layout == Layout.NCHW else tensor[..., c]
                if self._mean[c]:
                    plane -= self._mean[c]
                if self._std[c] != 1.0:
                    plane /= self._std[c]
        return tensor, list(geoms)

    def _gray(self, resized: Sequence[np.ndarray]) -> np.ndarray:
        """One luma plane per image: (B, 1, H, W) or (B, H, W, 1)."""
        gray = np.stack([cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) for img in resized])
        tensor = gray[:, None] if self.spec.layout == Layout.NCHW else gray[..., None]
        if self.spec.dtype == InputDType.FLOAT32:
            tensor = (tensor.astype(np.float32) - self._mean[0]) / self._std[0]
        return np.ascontiguousarray(tensor)
