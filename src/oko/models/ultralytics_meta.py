"""Manifests for ONNX files exported by Ultralytics, read from the metadata they embed."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from oko.core.errors import EngineLoadError
from oko.models.manifest import Manifest, parse_manifest

log = logging.getLogger(__name__)


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises untyped errors for files that are not models
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineLoadError(f"{path}: not a loadable ONNX model ({detail[:200]})") from exc
    return dict(session.get_modelmeta().custom_metadata_map)


def manifest_from_ultralytics(path: Path) -> Manifest | None:
    """A detection or instance-segmentation manifest from Ultralytics metadata, or None if the file has none."""
    meta = read_onnx_metadata(path)
    if "ultralytics" not in meta.get("author", "").lower() and "names" not in meta:
        return None
    task = meta.get("task", "detect")
    families = {"detect": "yolo", "segment": "yolo_seg"}
    if task not in families:
        log.warning("%s: Ultralytics task %r is not supported yet", path, task)
        return None
    try:
        names = ast.literal_eval(meta["names"])
        height, width = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
    except (KeyError, ValueError, SyntaxError) as exc:
        raise EngineLoadError(f"{path}: unreadable Ultralytics metadata ({exc})") from exc
    labels = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    data = {
        "name": path.stem, "task": task, "family": families[task], "file": path.name,
        "description": meta.get("description", ""), "licence": meta.get("license", ""),
        "origin": "Ultralytics export metadata",
        "input": {"width": width, "height": height, "layout": "NCHW", "color": "RGB",
                  "mean": [0, 0, 0], "std": [255, 255, 255], "resize": "letterbox"},
        "labels": labels,
        "postprocess": {"conf_threshold": 0.25, "iou_threshold": 0.7},
    }
    return parse_manifest(data, str(path), path.resolve())
