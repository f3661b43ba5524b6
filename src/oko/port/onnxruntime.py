"""Port target ``onnxruntime``: the ONNX as is (f32), FP16 weights and compute (f16), or
static QDQ INT8 (int8) calibrated on the job's tensors.

f16 uses the converter that ships inside onnxruntime (``onnxruntime.transformers.float16``,
float32 inputs and outputs kept). It is for the CUDA provider (half the weight memory,
tensor cores); on the CPU provider it measured no faster than f32 (NanoDet 28.8 vs 28.0 ms
on an AVX512-FP16 Xeon), and the TensorRT provider makes FP16 from the f32 file itself.

INT8 is ONNX Runtime's static quantisation in QDQ format: uint8 activations, int8
per-channel weights, MinMax ranges by default. On NanoDet, percentile calibration gave a
slightly higher output cosine but more spurious boxes (detection precision 0.935 vs 0.958)
and entropy gave the same ranges as MinMax. Nodes after the last weighted layer on each
path to an output (a detector's Split/Sigmoid/Reshape/Transpose/Concat tail) stay in
float: that raised NanoDet's class-score cosine from 0.9947 to 0.9975 at no measurable
cost. ``keep_head_float`` also keeps those last weighted layers in float: a little closer
again (+0.0003 cosine), but ONNX Runtime then runs those layers in float (up to ~30%
slower in some runs), so it is off by default.

A TensorFlow-style ``Pad(-inf) -> MaxPool`` is folded into the MaxPool first: the -inf
tensor would give an infinite calibration range and wreck the whole model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oko.core.errors import ConfigError, OkoError
from oko.models.manifest import format_validation_error
from oko.port.base import PortArtifact, PortJob, PortTarget

log = logging.getLogger(__name__)

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


class OrtPortOptions(BaseModel):
    """``job.options`` understood by the onnxruntime target (int8 only)."""

    model_config = ConfigDict(extra="forbid")
    calibration: Literal["minmax", "percentile", "entropy"] = Field(
        "minmax", description="How activation ranges are chosen from the calibration data.")
    percentile: float = Field(
        99.999, gt=90, le=100, description="Percentile kept by 'percentile' calibration.")
    keep_head_float: bool = Field(
        False, description="Also keep the last weighted layer before each output in float "
                           "(closer to FP32, slower).")
    exclude: list[str] = Field(
        default_factory=list, description="More node names to keep in float.")
    reduce_range: bool = Field(
        False, description="7-bit weights: avoids saturation on CPUs without VNNI "
                           "(AVX2 only); not needed on AVX512-VNNI/AMX or ARM.")


class OnnxRuntimeTarget(PortTarget):
    name = "onnxruntime"
    precisions = ("f32", "f16", "int8")
    description = ("ONNX Runtime: f32 as is, f16 (for CUDA; no faster than f32 on CPU), "
                   "int8 static QDQ (CPUs with VNNI/AMX)")

    def compile(self, job: PortJob) -> PortArtifact:
        self.check_precision(job.precision)
        import onnx

        out = job.work_dir / "model.onnx"
        engine = {"kind": "onnxruntime"}
        if job.precision == "f32":
            out.write_bytes(job.onnx_path.read_bytes())
            return PortArtifact(path=out, engine=engine, notes=["FP32 ONNX, as simplified"])
        model = onnx.load(str(job.onnx_path))
        notes = []
        folded = fold_pad_into_maxpool(model)
        if folded:
            notes.append(f"folded {folded} Pad(-inf) + MaxPool pair(s) into MaxPool pads")
        if job.precision == "f16":
            return self._f16(model, out, engine, notes)
        return self._int8(job, model, out, engine, notes)

    @staticmethod
    def _f16(model, out: Path, engine: dict, notes: list[str]) -> PortArtifact:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        half = convert_float_to_float16(model, keep_io_types=True)
        onnx.save(half, str(out))
        notes.append("FP16 weights and compute, float32 inputs and outputs; meant for the "
                     "CUDA provider (on CPU it is no faster than f32)")
        return PortArtifact(path=out, engine=engine, notes=notes)

    def _int8(self, job: PortJob, model, out: Path, engine: dict,
              notes: list[str]) -> PortArtifact:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        opts = _options(job)
        reader = _CalibrationReader(job)
        job.stage("prepare")
        folded_path = job.work_dir / "folded.onnx"
        onnx.save(model, str(folded_path))
        prepared = job.work_dir / "prepared.onnx"
        try:
            quant_pre_process(str(folded_path), str(prepared), skip_symbolic_shape=True)
        except Exception as exc:  # noqa: BLE001 - shape inference may reject odd graphs
            job.log(f"quant_pre_process failed ({str(exc).splitlines()[0][:200]}); "
                    "quantising the graph as is")
            prepared = folded_path
        graph = onnx.load(str(prepared)).graph
        tail, last = output_tail(graph)
        names = {n.name for n in graph.node}
        unknown = [n for n in opts.exclude if n not in names]
        if unknown:
            raise ConfigError(f"option exclude: no node named {', '.join(map(repr, unknown))} "
                              f"in {job.model_name}",
                              "use node names from the simplified ONNX (e.g. in Netron)")
        exclude = sorted(set(tail) | (set(last) if opts.keep_head_float else set())
                         | set(opts.exclude))
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[opts.calibration]
        extra = {"CalibPercentile": opts.percentile} if opts.calibration == "percentile" else {}
        job.stage("calibrate + quantise")
        job.log(f"quantize_static QDQ U8S8 per-channel, {opts.calibration} on "
                f"{reader.batches} batches, {len(exclude)} nodes in float: {', '.join(exclude)}")
        with open(job.work_dir / "quantize.log", "w", encoding="utf-8") as stream, \
                contextlib.redirect_stdout(stream):
            try:
                quantize_static(
                    str(prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=opts.reduce_range,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude, calibrate_method=method, extra_options=extra)
            except ValueError as exc:
                if "finite" in str(exc):
                    raise OkoError(
                        f"{job.model_name}: an activation is infinite on the calibration data "
                        f"({str(exc).splitlines()[0][:160]})",
                        "find the node with onnxruntime and list it in option exclude") from exc
                raise
        notes.append(f"static QDQ INT8: uint8 activations, int8 per-channel weights, "
                     f"{opts.calibration} calibration on {reader.samples} samples")
        notes.append(f"{len(tail)} output-tail node(s) kept in float"
                     + (f", plus the last weighted layer(s) {', '.join(last)}"
                        if opts.keep_head_float else ""))
        if opts.exclude:
            notes.append(f"kept in float by option: {', '.join(opts.exclude)}")
        return PortArtifact(path=out, engine=engine, notes=notes,
                            extra={"float_nodes": exclude})


def _options(job: PortJob) -> OrtPortOptions:
    try:
        return OrtPortOptions.model_validate(job.options)
    except ValidationError as exc:
        raise ConfigError(format_validation_error("onnxruntime target options", exc)) from exc


class _CalibrationReader:
    """Feeds ``job.calibration`` to ONNX Runtime's calibrator in model-sized batches.

    Duck-types ``onnxruntime.quantization.CalibrationDataReader`` (``get_next``,
    ``rewind``), so importing this module does not import ONNX Runtime.
    """

    def __init__(self, job: PortJob) -> None:
        if not job.calibration:
            raise ConfigError(f"int8 port of {job.model_name} needs calibration data",
                              "give calibration images or a video")
        self.arrays = job.calibration
        self.samples = min(len(a) for a in self.arrays.values())
        batch = {name: (job.input_shapes.get(name) or (1,))[0] for name in self.arrays}
        self.step = max(1, min(batch.values()))
        self.batches = self.samples // self.step
        if self.batches == 0:
            raise ConfigError(f"int8 port of {job.model_name}: {self.samples} calibration "
                              f"samples, the model's fixed batch is {self.step}",
                              "give at least one batch of calibration images")
        self._it: Iterator[dict[str, np.ndarray]] = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self.batches):
            s = slice(i * self.step, (i + 1) * self.step)
            yield {name: np.ascontiguousarray(a[s]) for name, a in self.arrays.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._batches()


# ---------------------------------------------------------------------- graph helpers
def output_tail(graph) -> tuple[list[str], list[str]]:
    """Nodes between the last weighted layers and the graph outputs, and those layers.

    Walks back from every graph output and stops at Conv/ConvTranspose/Gemm/MatMul: the
    nodes passed on the way are the tail (e.g. Split, Sigmoid, Reshape, Transpose, Concat
    of a detector head); the layers it stopped at are the last weighted layers.
    """
    producer = {out: node for node in graph.node for out in node.output}
    tail: set[str] = set()
    last: set[str] = set()
    seen: set[int] = set()
    stack = [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in WEIGHTED_OPS:
            last.add(node.name)
            continue
        tail.add(node.name)
        stack.extend(node.input)
    return sorted(tail), sorted(last)


def fold_pad_into_maxpool(model) -> int:
    """Replace ``Pad(value=-inf) -> MaxPool`` by MaxPool with ``pads``; returns the count.

    TensorFlow exports of SAME max-pooling pad with -inf. The result is identical, but an
    explicit -inf tensor breaks calibration (an infinite range quantises everything to
    zero), so quantisers must not see it.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    folded = []
    for pad in graph.node:
        if pad.op_type != "Pad" or len(pad.input) < 3 or (len(pad.input) > 3 and pad.input[3]):
            continue  # no constant value input, or padding only some axes
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        if attrs.get("mode", b"constant") != b"constant":
            continue
        if pad.input[1] not in inits or pad.input[2] not in inits:
            continue
        value = numpy_helper.to_array(inits[pad.input[2]])
        pads = numpy_helper.to_array(inits[pad.input[1]]).astype(int).tolist()
        users = consumers.get(pad.output[0], [])
        if value.size != 1 or not np.isneginf(value).all() or len(users) != 1 \
                or users[0].op_type != "MaxPool" or pad.output[0] in graph_outputs:
            continue
        pool = users[0]
        pool_attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
        rank = len(pads) // 2
        if rank < 3 or any(p < 0 for p in pads) or pads[0] or pads[1] or pads[rank] \
                or pads[rank + 1] or pool_attrs.get("auto_pad", b"NOTSET") != b"NOTSET" \
                or any(pool_attrs.get("pads", [])):
            continue
        spatial = pads[2:rank] + pads[rank + 2:]
        for attr in list(pool.attribute):
            if attr.name == "pads":
                pool.attribute.remove(attr)
        pool.attribute.append(helper.make_attribute("pads", spatial))
        pool.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    for init in list(graph.initializer):
        if init.name not in used and init.name in inits and any(
                init.name in p.input[1:] for p in folded):
            graph.initializer.remove(init)
    return len(folded)
