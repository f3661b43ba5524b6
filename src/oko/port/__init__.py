"""`oko port`: compile an ONNX model for a target and prove how close it stays.

Each target is one module here; importing it registers it.
"""

from oko.port import onnxruntime as _onnxruntime  # noqa: F401  (each import registers one)
from oko.port import openvino as _openvino  # noqa: F401
from oko.port import sophon as _sophon  # noqa: F401
from oko.port.base import PRECISIONS, PortArtifact, PortJob, PortTarget, get_target

__all__ = ["PRECISIONS", "PortArtifact", "PortJob", "PortTarget", "get_target", "target_names"]


def target_names() -> list[str]:
    return sorted(PortTarget.registry)
