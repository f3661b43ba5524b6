"""OpenVINO engine: OpenVINO IR (.xml + .bin) or ONNX on CPU, GPU, NPU or AUTO.

FP32 is the default inference precision, so FP32 numbers are FP32: left to itself,
OpenVINO runs float layers in bf16 on CPUs with AMX/AVX512-BF16 and in f16 on GPUs.
INT8 IR (FakeQuantize nodes, e.g. from NNCF) runs its quantised layers in INT8 whatever
the hint; the hint sets the precision of the layers left in float.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Literal

import numpy as np
from pydantic import Field

from oko.core.errors import EngineLoadError, ModelNotFoundError
from oko.engines.base import Engine, EngineConfig, TensorSpec

log = logging.getLogger(__name__)

KIND = "openvino"
MODEL_SUFFIXES = (".xml", ".onnx")


class OpenVinoConfig(EngineConfig):
    kind: Literal["openvino"] = KIND
    device: str = Field(
        "CPU", pattern=r"^(CPU|GPU(\.\d+)?|NPU|AUTO(:[A-Z0-9.,]+)?)$",
        description="OpenVINO device: CPU, GPU (GPU.0, GPU.1 for one of several), NPU, or "
                    "AUTO (OpenVINO picks; AUTO:GPU,CPU sets the order).")
    precision_hint: Literal["f32", "f16", "bf16", "auto"] = Field(
        "f32", description="Precision of layers that are not quantised. f32 (default) gives "
                           "FP32 results; 'auto' lets OpenVINO choose (bf16 on CPUs with "
                           "AMX/AVX512-BF16, f16 on GPU and NPU): faster, less exact.")
    threads: int | None = Field(
        None, ge=1, description="CPU inference threads (INFERENCE_NUM_THREADS); None lets "
                                "OpenVINO choose. CPU and AUTO devices only.")
    performance_mode: Literal["latency", "throughput"] = Field(
        "latency", description="latency: one inference at a time uses all threads. "
                               "throughput: several streams; a batch is split across them "
                               "(dynamic-batch models), so it pays off for batches of 2+.")


def _import_openvino() -> Any:
    try:
        import openvino  # SDK import stays inside the engine
    except ImportError as exc:
        raise EngineLoadError("the openvino engine needs the openvino package",
                              "pip install 'oko[openvino]'") from exc
    return openvino


def _first_line(exc: Exception) -> str:
    """The informative line of an OpenVINO exception (they start with C++ locations)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    return ((useful or lines or [type(exc).__name__])[0])[:200]


class OpenVinoEngine(Engine):
    kind = KIND
    config_class = OpenVinoConfig

    def __init__(self, model_path: Path, config: OpenVinoConfig) -> None:
        super().__init__(model_path, config)
        self._compiled: Any = None
        self._requests: SimpleQueue = SimpleQueue()
        self._n_requests = 1
        self._split_lock = threading.Lock()
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        self._split_batch = False

    # ------------------------------------------------------------------ loading
    def load(self, warmup_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        ov = _import_openvino()
        core = ov.Core()
        model = self._read(core)
        cfg: OpenVinoConfig = self.config
        self._check_device(core, cfg)
        try:
            self._compiled = core.compile_model(model, cfg.device, self._properties(core, cfg))
        except RuntimeError as exc:
            raise EngineLoadError(
                f"{self.model_path}: OpenVINO cannot compile the model for {cfg.device} "
                f"({_first_line(exc)})",
                "try precision_hint: auto, or another device") from exc
        self._inputs = [self._spec(p, f"input{i}") for i, p in enumerate(self._compiled.inputs)]
        self._outputs = [self._spec(p, f"output{i}") for i, p in enumerate(self._compiled.outputs)]
        self._n_requests = 1
        if cfg.performance_mode == "throughput":
            self._n_requests = max(1, int(self._compiled.get_property(
                "OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        for _ in range(self._n_requests):
            self._requests.put(self._compiled.create_infer_request())
        self._split_batch = self._n_requests > 1 and self._batch_axis_is_dynamic()
        log.info("loaded %s with %s", self.model_path, self.describe())
        self._warm_up(warmup_shapes)

    def _read(self, core: Any) -> Any:
        path = self.model_path
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {path}")
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise EngineLoadError(
                f"{path}: the openvino engine reads OpenVINO IR (.xml with its .bin) or ONNX "
                f"(.onnx), not {path.suffix or 'a file without suffix'}")
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise EngineLoadError(f"{path}: weights file {path.with_suffix('.bin').name} is "
                                  "missing beside it", "copy the .xml and .bin together")
        try:
            return core.read_model(str(path))
        except RuntimeError as exc:
            what = "OpenVINO IR" if path.suffix.lower() == ".xml" else "ONNX model"
            raise EngineLoadError(
                f"{path}: not a loadable {what} ({_first_line(exc)})") from exc

    @staticmethod
    def _check_device(core: Any, cfg: OpenVinoConfig) -> None:
        if cfg.device.startswith("AUTO"):
            return
        available = list(core.available_devices)
        base = cfg.device.split(".")[0]
        known = cfg.device in available or (base == cfg.device and any(
            d.split(".")[0] == base for d in available))
        if not known:
            raise EngineLoadError(
                f"openvino device {cfg.device!r} is not available on this machine",
                f"available devices: {', '.join(available) or 'none'}; check the driver")
        if cfg.threads is not None and "INFERENCE_NUM_THREADS" not in core.get_property(
                cfg.device, "SUPPORTED_PROPERTIES"):
            raise EngineLoadError(
                f"openvino engine: threads applies to CPU inference, not to {cfg.device}",
                "remove threads from the engine config")

    @staticmethod
    def _properties(core: Any, cfg: OpenVinoConfig) -> dict[str, Any]:
        props: dict[str, Any] = {"PERFORMANCE_HINT": cfg.performance_mode.upper()}
        if cfg.precision_hint != "auto":
            props["INFERENCE_PRECISION_HINT"] = cfg.precision_hint  # an ov.Type name
        if cfg.threads is not None:
            props["INFERENCE_NUM_THREADS"] = cfg.threads
        return props

    @staticmethod
    def _spec(port: Any, fallback: str) -> TensorSpec:
        names = port.get_names()
        name = port.get_any_name() if names else fallback
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        return TensorSpec(name, shape, np.dtype(port.get_element_type().to_dtype()))

    def _batch_axis_is_dynamic(self) -> bool:
        return all(s.shape and s.shape[0] is None for s in self._inputs + self._outputs)

    def _warm_up(self, shapes: dict[str, tuple[int, ...]] | None) -> None:
        try:
            self.run(self.warmup_feeds(shapes))
        except Exception as exc:
            raise EngineLoadError(
                f"{self.model_path}: warm-up inference failed ({_first_line(exc)})",
                "check the input size in the manifest against the model") from exc

    # ------------------------------------------------------------------ running
    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {name: np.ascontiguousarray(arr) for name, arr in inputs.items()}
        batch = next(iter(feeds.values())).shape[0] if feeds else 0
        if self._split_batch and batch > 1:
            return self._run_split(feeds, batch)
        request = self._requests.get()  # blocks while other threads hold every request
        try:
            results = request.infer(feeds, share_inputs=True).to_tuple()
        finally:
            self._requests.put(request)
        return {spec.name: np.asarray(arr)
                for spec, arr in zip(self._outputs, results, strict=True)}

    def _run_split(self, feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        """Throughput mode: one slice of the batch per stream, run concurrently."""
        step = math.ceil(batch / self._n_requests)
        starts = range(0, batch, step)
        with self._split_lock:  # this call takes every request; one split call at a time
            requests = [self._requests.get() for _ in starts]
            try:
                for req, start in zip(requests, starts, strict=True):
                    req.start_async({k: v[start:start + step] for k, v in feeds.items()},
                                    share_inputs=True)
                parts = []
                for req in requests:
                    req.wait()
                    parts.append([np.array(req.get_output_tensor(i).data, copy=True)
                                  for i in range(len(self._outputs))])
            finally:
                for req in requests:
                    self._requests.put(req)
        return {spec.name: np.concatenate([p[i] for p in parts])
                for i, spec in enumerate(self._outputs)}

    def describe(self) -> str:
        """Kind, devices that run it, the precision of float layers, mode and requests."""
        if self._compiled is None:
            return f"{self.kind} (not loaded)"
        devices = ",".join(self._compiled.get_property("EXECUTION_DEVICES"))
        try:
            precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        except RuntimeError:  # AUTO and some plugins do not report it
            precision = self.config.precision_hint
        return (f"{self.kind} ({devices}, {precision}, {self.config.performance_mode}, "
                f"{self._n_requests} request{'s' if self._n_requests > 1 else ''})")
