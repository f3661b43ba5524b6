"""Loading the port targets (each import registers one)."""

from __future__ import annotations


def load_targets() -> None:
    from oko.port import onnxruntime as _onnxruntime  # noqa: F401
    from oko.port import openvino as _openvino  # noqa: F401
    from oko.port import sophon as _sophon  # noqa: F401
