"""Shared data for the port-target tests (test_port_ort.py, test_port_openvino.py).

The bundled nanodet-coco prepared as `oko port` prepares it (fixed shapes, onnxslim),
64 frames of the sample video with the manifest's preprocessing, split into calibration
and held-out frames the way the pipeline splits them, and fidelity against ONNX Runtime
FP32 with the pipeline's own metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conftest import SAMPLE_VIDEO
from oko.core.detections import Detections
from oko.engines import create_engine
from oko.engines.base import Engine
from oko.models import resolve_model
from oko.models.adapter import DetectionAdapter, adapter_for
from oko.port.base import PortJob
from oko.port.calibration import make_tensors, sample_images, split
from oko.port.fidelity import OutputFidelity, TaskFidelity, compare_outputs, detection_agreement
from oko.port.onnx_prep import PreparedOnnx, prepare_onnx


@dataclass
class DetectorCase:
    prepared: PreparedOnnx
    calib: np.ndarray
    val: np.ndarray
    geoms: list
    adapter: DetectionAdapter
    reference: list[dict[str, np.ndarray]] = field(default_factory=list)
    truth: list[Detections] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return self.prepared.input_names[0]

    def job(self, precision: str, work_dir: Path, **options: Any) -> PortJob:
        work_dir.mkdir(parents=True, exist_ok=True)
        return PortJob(
            onnx_path=self.prepared.path, model_name="nanodet-coco", precision=precision,
            input_names=self.prepared.input_names, input_shapes=self.prepared.input_shapes,
            output_names=self.prepared.output_names,
            calibration={self.input_name: self.calib} if precision == "int8" else {},
            work_dir=work_dir, family="nanodet", options=options)

    def outputs(self, engine: Engine) -> list[dict[str, np.ndarray]]:
        return [engine.run({self.input_name: self.val[i:i + 1]}) for i in range(len(self.val))]

    def fidelity(self, engine: Engine) -> tuple[dict[str, OutputFidelity], TaskFidelity]:
        got = self.outputs(engine)
        per_output = {f.name: f for f in compare_outputs(self.reference, got)}
        dets = [self.adapter.postprocess(o, [g])[0] for o, g in zip(got, self.geoms, strict=True)]
        return per_output, detection_agreement(self.truth, dets)


def nanodet_case(folder: Path) -> DetectorCase:
    manifest = resolve_model("nanodet-coco")
    prepared = prepare_onnx(manifest.model_path, folder / "prepared.onnx", {}, (1, 3, 416, 416))
    images, _ = sample_images(SAMPLE_VIDEO, 64)
    calib_idx, val_idx = split(len(images))
    calib, _ = make_tensors([images[i] for i in calib_idx], manifest.input)
    val, geoms = make_tensors([images[i] for i in val_idx], manifest.input)
    engine = create_engine(prepared.path, {"kind": "onnxruntime"})
    case = DetectorCase(prepared, calib, val, geoms,
                        adapter_for(manifest, engine.inputs(), engine.outputs()))
    case.reference = case.outputs(engine)
    case.truth = [case.adapter.postprocess(r, [g])[0]
                  for r, g in zip(case.reference, geoms, strict=True)]
    return case
