"""ONNX Runtime engine: CPU by default; CUDA and TensorRT execution providers when present."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from oko.core.errors import EngineLoadError, ModelNotFoundError
from oko.engines.base import Engine, EngineConfig, TensorSpec

log = logging.getLogger(__name__)

KIND = "onnxruntime"

_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}


class OnnxRuntimeConfig(EngineConfig):
    kind: Literal["onnxruntime"] = KIND
    device: Literal["auto", "cpu", "cuda", "tensorrt"] = Field(
        "auto", description="'auto' uses TensorRT, then CUDA, when present, else the CPU.")
    threads: int | None = Field(
        None, ge=1, description="Intra-op CPU threads; None lets ONNX Runtime choose.")
    spin: bool = Field(
        False, description="Let idle CPU threads busy-wait (faster engine alone, slower pipeline).")
    tensorrt_fp16: bool = Field(True, description="Allow FP16 kernels in TensorRT.")
    tensorrt_cache: Path | None = Field(
        None, description="Folder for TensorRT engine caches (saves minutes at start-up).")


def _providers(cfg: OnnxRuntimeConfig, available: list[str]) -> list[str | tuple[str, dict]]:
    wanted = {"auto": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
              "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
              "cuda": ["CUDAExecutionProvider"], "cpu": []}[cfg.device]
    if cfg.device != "auto" and cfg.device != "cpu" and wanted[0] not in available:
        raise EngineLoadError(
            f"onnxruntime device {cfg.device!r} requested but {wanted[0]} is not available",
            f"available providers: {', '.join(available)}; install onnxruntime-gpu")
    providers: list[str | tuple[str, dict]] = []
    for name in wanted:
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            opts: dict[str, object] = {"trt_fp16_enable": cfg.tensorrt_fp16}
            if cfg.tensorrt_cache is not None:
                opts |= {"trt_engine_cache_enable": True,
                         "trt_engine_cache_path": str(cfg.tensorrt_cache)}
            providers.append((name, opts))
        else:
            providers.append(name)
    providers.append("CPUExecutionProvider")
    return providers


class OnnxRuntimeEngine(Engine):
    kind = KIND
    config_class = OnnxRuntimeConfig

    def __init__(self, model_path: Path, config: OnnxRuntimeConfig) -> None:
        super().__init__(model_path, config)
        self._session = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    def load(self, warmup_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        import onnxruntime as ort  # SDK import stays inside the engine

        path = self.model_path
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {path}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.config.threads:
            opts.intra_op_num_threads = self.config.threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if not self.config.spin:
            # Idle pool threads otherwise busy-wait after each run, taking the cores that
            # decoding, pre- and post-processing need between inferences.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = _providers(self.config, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # ORT raises several untyped exceptions for bad files
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineLoadError(f"{path}: not a loadable ONNX model ({first_line[:200]})") from exc
        self._inputs = [self._spec(i) for i in self._session.get_inputs()]
        self._outputs = [self._spec(o) for o in self._session.get_outputs()]
        log.info("loaded %s with %s", path, self._session.get_providers()[0])
        self._warm_up(warmup_shapes)

    @staticmethod
    def _spec(node) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
        dtype = np.dtype(_ORT_DTYPES.get(node.type, np.float32))
        return TensorSpec(node.name, shape, dtype)

    def _warm_up(self, shapes: dict[str, tuple[int, ...]] | None) -> None:
        feeds = self.warmup_feeds(shapes)
        try:
            self.run(feeds)
        except Exception as exc:
            raise EngineLoadError(
                f"{self.model_path}: warm-up inference failed ({str(exc).splitlines()[0][:200]})",
                "check the input size in the manifest against the model",
            ) from exc

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._outputs]
        results = self._session.run(names, inputs)
        return dict(zip(names, results, strict=True))

    def describe(self) -> str:
        provider = self._session.get_providers()[0] if self._session else "not loaded"
        return f"{self.kind} ({provider})"
