"""Port target ``openvino``: OpenVINO IR (model.xml + model.bin) in FP32, FP16 or INT8.

- f32: the ONNX converted to IR, FP32 weights; runs with precision hint f32.
- f16: IR with FP16-compressed weights; runs with precision hint 'auto', so the device
  computes in its fast half precision (bf16 on AMX/AVX512-BF16 CPUs, f16 on GPU/NPU).
  An explicit f16 hint on a CPU without native FP16 is slower than f32 (measured).
- int8: NNCF post-training quantisation (``nncf.quantize``) on the job's calibration
  tensors, MIXED preset (symmetric weights, asymmetric activations: detectors use
  LeakyReLU/SiLU, whose negative side a symmetric range wastes), fast bias correction;
  runs with precision hint f32, so the layers NNCF leaves in float stay FP32.

NNCF quantises the inputs of weighted layers only, so a detector's output tail (Split,
Sigmoid, Reshape, Concat) is already float. ``keep_head_float`` also keeps the last
weighted layers before each output in float; on NanoDet it moved the worst output cosine
by 0.0001-0.0002 and detection agreement by noise, so it is off by default.

The IR gets a dynamic batch axis when the model allows it (checked by comparing a batch
of 2 with two single runs), so the runtime can batch across channels.

NNCF sends usage telemetry unless told not to; oko sets ``NNCF_CI`` (NNCF's own switch
for that, used for nothing else) before importing it, unless the user set it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oko.core.errors import ConfigError, OkoError
from oko.models.manifest import format_validation_error
from oko.port.base import PortArtifact, PortJob, PortTarget

log = logging.getLogger(__name__)

WEIGHTED_OPS = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                          "GroupConvolutionBackpropData", "MatMul"})
ENGINE_HINT = {"f32": "f32", "f16": "auto", "int8": "f32"}


class OpenVinoPortOptions(BaseModel):
    """``job.options`` understood by the openvino target."""

    model_config = ConfigDict(extra="forbid")
    preset: Literal["mixed", "performance"] = Field(
        "mixed", description="NNCF preset: mixed (asymmetric activations, closer to FP32 on "
                             "LeakyReLU/SiLU models) or performance (symmetric, a little "
                             "faster).")
    keep_head_float: bool = Field(
        False, description="Keep the last weighted layer before each output in float.")
    exclude: list[str] = Field(
        default_factory=list, description="More OpenVINO layer names to keep in float.")
    fast_bias_correction: bool = Field(
        True, description="NNCF's fast bias correction (the full one measured no better).")
    dynamic_batch: bool = Field(
        True, description="Make the batch axis dynamic when the model allows it.")


class OpenVinoTarget(PortTarget):
    name = "openvino"
    precisions = ("f32", "f16", "int8")
    description = "OpenVINO IR for Intel CPU/GPU/NPU; int8 through NNCF"

    def check_available(self) -> None:
        if importlib.util.find_spec("openvino") is None:
            raise OkoError("the openvino target needs the openvino package",
                           "pip install 'oko[openvino]'")

    def compile(self, job: PortJob) -> PortArtifact:
        self.check_precision(job.precision)
        self.check_available()
        import openvino as ov

        opts = _options(job)
        core = ov.Core()
        job.stage("convert")
        try:
            model = core.read_model(str(job.onnx_path))
        except RuntimeError as exc:
            raise OkoError(f"{job.onnx_path}: OpenVINO cannot read the model "
                           f"({_first_line(exc)})") from exc
        notes: list[str] = []
        if job.precision == "int8":
            model = self._quantize(job, model, opts, notes)
        elif job.precision == "f16":
            notes.append("FP16-compressed weights; runs with precision hint 'auto' "
                         "(bf16 on AMX/AVX512-BF16 CPUs, f16 on GPU/NPU)")
        else:
            notes.append("FP32 IR")
        xml = job.work_dir / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=job.precision == "f16")
        if opts.dynamic_batch:
            job.stage("dynamic batch")
            notes.append(_try_dynamic_batch(core, xml, job))
        return PortArtifact(path=xml, engine={"kind": "openvino",
                                              "precision_hint": ENGINE_HINT[job.precision]},
                            notes=notes, extra={"files": [xml.with_suffix(".bin")]})

    @staticmethod
    def _quantize(job: PortJob, model: Any, opts: OpenVinoPortOptions,
                  notes: list[str]) -> Any:
        os.environ.setdefault("NNCF_CI", "1")  # no NNCF usage telemetry (see module doc)
        try:
            import nncf
        except ImportError as exc:
            raise OkoError("openvino int8 needs NNCF", "pip install 'oko[openvino]'") from exc
        feeds = _calibration_feeds(job)
        names = {op.get_friendly_name() for op in model.get_ops()}
        unknown = [n for n in opts.exclude if n not in names]
        if unknown:
            raise ConfigError(f"option exclude: no layer named {', '.join(map(repr, unknown))} "
                              f"in {job.model_name}",
                              "use OpenVINO layer names, e.g. 'Conv_73/WithoutBiases'")
        ignored = sorted(set(opts.exclude) | (set(last_weighted_layers(model))
                                              if opts.keep_head_float else set()))
        scope = nncf.IgnoredScope(names=ignored) if ignored else None
        preset = {"mixed": nncf.QuantizationPreset.MIXED,
                  "performance": nncf.QuantizationPreset.PERFORMANCE}[opts.preset]
        job.stage("calibrate + quantise")
        job.log(f"nncf.quantize preset={opts.preset} on {len(feeds)} batches, "
                f"fast_bias_correction={opts.fast_bias_correction}, float layers: "
                f"{', '.join(ignored) or 'none'}")
        try:
            quantized = nncf.quantize(
                model, nncf.Dataset(feeds), preset=preset, subset_size=len(feeds),
                fast_bias_correction=opts.fast_bias_correction, ignored_scope=scope)
        except nncf.ValidationError as exc:
            message = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ConfigError(f"openvino int8 of {job.model_name}: {message}") from exc
        notes.append(f"NNCF INT8, {opts.preset} preset, "
                     f"{'fast ' if opts.fast_bias_correction else ''}bias correction, "
                     f"{len(feeds)} calibration batches; runs with precision hint f32")
        if ignored:
            notes.append(f"kept in float: {', '.join(ignored)}")
        return quantized


def _options(job: PortJob) -> OpenVinoPortOptions:
    try:
        return OpenVinoPortOptions.model_validate(job.options)
    except ValidationError as exc:
        raise ConfigError(format_validation_error("openvino target options", exc)) from exc


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    return ((useful or lines or [type(exc).__name__])[0])[:200]


def _calibration_feeds(job: PortJob) -> list[dict[str, np.ndarray]]:
    """The calibration tensors as one feed dict per model-sized batch."""
    if not job.calibration:
        raise ConfigError(f"int8 port of {job.model_name} needs calibration data",
                          "give calibration images or a video")
    samples = min(len(a) for a in job.calibration.values())
    step = max(1, min((job.input_shapes.get(n) or (1,))[0] for n in job.calibration))
    feeds = [{n: np.ascontiguousarray(a[i:i + step]) for n, a in job.calibration.items()}
             for i in range(0, samples - step + 1, step)]
    if not feeds:
        raise ConfigError(f"int8 port of {job.model_name}: {samples} calibration samples, "
                          f"the model's fixed batch is {step}",
                          "give at least one batch of calibration images")
    return feeds


def last_weighted_layers(model: Any) -> list[str]:
    """Names of the last Convolution/MatMul layers on each path back from an output."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = [result.input_value(0).get_node() for result in model.get_results()]
    while stack:
        node = stack.pop()
        name = node.get_friendly_name()
        if name in seen:
            continue
        seen.add(name)
        if node.get_type_name() in WEIGHTED_OPS:
            found.add(name)
            continue
        stack.extend(value.get_node() for value in node.input_values())
    return sorted(found)


def _try_dynamic_batch(core: Any, xml: Path, job: PortJob) -> str:
    """Rewrite ``xml`` with a dynamic batch axis if a batch of 2 matches two single runs."""
    import openvino as ov

    model = core.read_model(str(xml))
    shapes = {p.get_any_name(): p.get_partial_shape() for p in model.inputs}
    if any(s.rank.is_dynamic or len(s) < 2 or s[0].is_dynamic for s in shapes.values()):
        return "batch axis left as the model has it"
    if any(s[0].get_length() != 1 for s in shapes.values()):
        return "fixed batch kept (the simplified model has a batch other than 1)"
    static = {n: [d.get_length() for d in s] for n, s in shapes.items()}
    try:
        model.reshape({n: [-1, *s[1:]] for n, s in static.items()})
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        rng = np.random.default_rng(0)
        pair = {}
        for port in model.inputs:
            name = port.get_any_name()
            data = job.calibration.get(name)
            dtype = port.get_element_type().to_dtype()
            pair[name] = (np.ascontiguousarray(data[:2]) if data is not None and len(data) >= 2
                          else rng.standard_normal((2, *static[name][1:])).astype(dtype))
        both = compiled(pair)
        ok = True
        for i in range(2):
            one = compiled({n: a[i:i + 1] for n, a in pair.items()})
            for port in compiled.outputs:
                ref, got = np.asarray(one[port]), np.asarray(both[port])
                ok &= got.shape[0] == 2 and np.allclose(
                    got[i:i + 1], ref, rtol=1e-3, atol=1e-4 * (float(np.abs(ref).max()) + 1e-6))
    except RuntimeError as exc:
        job.log(f"dynamic batch rejected: {_first_line(exc)}")
        return "fixed batch 1 (the graph does not allow a dynamic batch)"
    if not ok:
        job.log("dynamic batch rejected: a batch of 2 differs from two single runs")
        return "fixed batch 1 (a batch of 2 differs from two single runs)"
    # read_model maps the .bin: write new files, then move them over the old ones
    tmp = xml.with_name("dynamic.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=job.precision == "f16")
    os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
    os.replace(tmp, xml)
    return "dynamic batch axis (a batch of 2 matches two single runs)"
