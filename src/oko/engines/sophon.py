"""Sophon TPU engine: runs a .bmodel (from `oko port --target bm1684x|bm1684`).

Three runtimes, picked by ``runtime: auto`` in this order:

- ``sail``: Sophgo's sophon-sail (``sophon.sail``) on a machine with a Sophon device;
- ``bmrt``: the device's libbmrt/libbmlib (libsophon) through ctypes, when sail is absent;
- ``simulator``: on a machine without a device (x86 development boxes, CI), the cmodel
  simulator libraries shipped in the TPU-MLIR toolchain that `oko port` installs
  (``libcmodel_<chip>.so``, ``libbmlib``, ``libbmrt``), loaded through ctypes into this
  process. Bit-exact with the chip but slow (seconds per inference): for validation.

Inputs are float32 tensors prepared exactly as for the ONNX model (oko's bmodels do not
fuse preprocessing). Outputs come back as float32: INT8/UINT8 outputs are dequantised
with the scale and zero point stored in the bmodel, FP16/BF16 outputs widened. A bmodel
holds a fixed batch size per stage; smaller batches are padded and the padding dropped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import logging
import os
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from oko.core.errors import EngineLoadError, ModelContractError, ModelNotFoundError
from oko.engines.base import Engine, EngineConfig, TensorSpec

log = logging.getLogger(__name__)

KIND = "sophon"
BMODEL_MAGIC = 0xFF55AAEE
# bm_get_chipid() values
_CHIP_IDS = {0x1684: "bm1684", 0x1686: "bm1684x"}
# bm_data_type_t -> numpy dtype (BF16 travels as raw uint16)
_BM_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.float32), 1: np.dtype(np.float16), 2: np.dtype(np.int8),
    3: np.dtype(np.uint8), 4: np.dtype(np.int16), 5: np.dtype(np.uint16),
    6: np.dtype(np.int32), 7: np.dtype(np.uint32), 8: np.dtype(np.uint16),
}
_BF16 = 8
_MAX_DIMS = 8
_DEVICE_NODES = ("/dev/bm-sophon*", "/dev/bm-tpu*", "/dev/bmdev-ctl")
_SYSTEM_LIB_DIRS = ("/opt/sophon/libsophon-current/lib", "/system/lib", "/usr/lib")


class SophonConfig(EngineConfig):
    kind: Literal["sophon"] = KIND
    chip: Literal["bm1684x", "bm1684"] = Field(
        "bm1684x", description="Chip the bmodel was compiled for (and the device or "
        "simulator that runs it).")
    device_id: int = Field(0, ge=0, description="Sophon device index (PCIe card or SoC: 0).")
    runtime: Literal["auto", "sail", "bmrt", "simulator"] = Field(
        "auto", description="'auto': sophon-sail, else libbmrt, when a device is present; "
        "else the TPU-MLIR cmodel simulator.")
    input_names: list[str] = Field(
        default_factory=list, description="Names to report for the bmodel's inputs, in its "
        "order (oko port writes the ONNX names); empty keeps the bmodel's own names.")
    output_names: list[str] = Field(
        default_factory=list, description="Names to report for the bmodel's outputs, in its "
        "order (TPU-MLIR renames them, e.g. 'cls_s8' -> 'cls_s8_Transpose_f32').")


# ------------------------------------------------------------------------ bmodel file


def bmodel_chip(path: Path) -> str:
    """The chip a .bmodel was compiled for ("bm1684x"), read from its header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            magic, header_size, fb_size = struct.unpack_from("<III", head)
            if magic != BMODEL_MAGIC:
                raise EngineLoadError(f"{path}: not a .bmodel file (bad magic number)")
            fh.seek(header_size)
            buf = fh.read(fb_size)
        # flatbuffers root table: Model { type, version, time, chip, ... } -> field 3
        table = struct.unpack_from("<I", buf, 0)[0]
        vtable = table - struct.unpack_from("<i", buf, table)[0]
        vt_size = struct.unpack_from("<H", buf, vtable)[0]
        slot = 4 + 2 * 3
        if slot >= vt_size:
            raise ValueError("no chip field")
        offset = struct.unpack_from("<H", buf, vtable + slot)[0]
        if offset == 0:
            raise ValueError("no chip field")
        pos = table + offset
        pos += struct.unpack_from("<I", buf, pos)[0]
        length = struct.unpack_from("<I", buf, pos)[0]
        return buf[pos + 4:pos + 4 + length].decode().lower()
    except (OSError, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise EngineLoadError(f"{path}: cannot read the .bmodel header ({exc})") from exc


# ----------------------------------------------------------------- libbmrt via ctypes


class _Shape(ctypes.Structure):
    _fields_ = [("num_dims", ctypes.c_int), ("dims", ctypes.c_int * _MAX_DIMS)]


class _Stage(ctypes.Structure):
    _fields_ = [("input_shapes", ctypes.POINTER(_Shape)),
                ("output_shapes", ctypes.POINTER(_Shape)),
                ("input_mems", ctypes.c_void_p), ("output_mems", ctypes.c_void_p)]


class _NetInfo(ctypes.Structure):
    """bm_net_info_t (bmruntime_interface.h), the leading fields oko reads."""

    _fields_ = [
        ("name", ctypes.c_char_p), ("is_dynamic", ctypes.c_bool), ("input_num", ctypes.c_int),
        ("input_names", ctypes.POINTER(ctypes.c_char_p)),
        ("input_dtypes", ctypes.POINTER(ctypes.c_int)),
        ("input_scales", ctypes.POINTER(ctypes.c_float)), ("output_num", ctypes.c_int),
        ("output_names", ctypes.POINTER(ctypes.c_char_p)),
        ("output_dtypes", ctypes.POINTER(ctypes.c_int)),
        ("output_scales", ctypes.POINTER(ctypes.c_float)), ("stage_num", ctypes.c_int),
        ("stages", ctypes.POINTER(_Stage)),
        ("max_input_bytes", ctypes.POINTER(ctypes.c_size_t)),
        ("max_output_bytes", ctypes.POINTER(ctypes.c_size_t)),
        ("input_zero_point", ctypes.POINTER(ctypes.c_int)),
        ("output_zero_point", ctypes.POINTER(ctypes.c_int)),
    ]


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: np.dtype  # on the device
    bm_dtype: int
    scale: float
    zero_point: int


@dataclass(frozen=True)
class _NetDesc:
    name: str
    inputs: list[_Tensor]
    outputs: list[_Tensor]
    stages: list[tuple[list[tuple[int, ...]], list[tuple[int, ...]]]]  # (in shapes, out shapes)


class _BmLibs:
    """libbmlib + libbmrt (and the cmodel for the simulator), with ctypes signatures."""

    def __init__(self, bmlib: ctypes.CDLL, bmrt: ctypes.CDLL, where: str, simulated: str | None):
        self.bmlib, self.bmrt, self.where, self.simulated = bmlib, bmrt, where, simulated
        self.handles: dict[int, ctypes.c_void_p] = {}
        self.lock = threading.Lock()
        vp = ctypes.c_void_p
        bmlib.bm_dev_request.argtypes = [ctypes.POINTER(vp), ctypes.c_int]
        bmlib.bm_dev_request.restype = ctypes.c_int
        bmlib.bm_thread_sync.argtypes = [vp]
        bmlib.bm_thread_sync.restype = ctypes.c_int
        bmrt.bmrt_create.argtypes = [vp]
        bmrt.bmrt_create.restype = vp
        bmrt.bmrt_destroy.argtypes = [vp]
        bmrt.bmrt_destroy.restype = None
        bmrt.bmrt_load_bmodel.argtypes = [vp, ctypes.c_char_p]
        bmrt.bmrt_load_bmodel.restype = ctypes.c_bool
        bmrt.bmrt_get_network_number.argtypes = [vp]
        bmrt.bmrt_get_network_number.restype = ctypes.c_int
        bmrt.bmrt_get_network_names.argtypes = [vp, ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p))]
        bmrt.bmrt_get_network_names.restype = None
        bmrt.bmrt_get_network_info.argtypes = [vp, ctypes.c_char_p]
        bmrt.bmrt_get_network_info.restype = ctypes.POINTER(_NetInfo)
        bmrt.bmrt_launch_data.argtypes = [vp, ctypes.c_char_p, vp, vp, ctypes.c_int, vp, vp,
                                          ctypes.c_int, ctypes.c_bool]
        bmrt.bmrt_launch_data.restype = ctypes.c_bool
        self.get_chipid = getattr(bmlib, "bm_get_chipid", None)
        if self.get_chipid is not None:
            self.get_chipid.argtypes = [vp, ctypes.POINTER(ctypes.c_uint)]
            self.get_chipid.restype = ctypes.c_int

    def handle(self, device_id: int) -> ctypes.c_void_p:
        """One device handle per device for the process (shared by all engines)."""
        with self.lock:
            if device_id not in self.handles:
                handle = ctypes.c_void_p()
                status = self.bmlib.bm_dev_request(ctypes.byref(handle), device_id)
                if status != 0 or not handle.value:
                    raise EngineLoadError(
                        f"cannot open Sophon device {device_id} through {self.where} "
                        f"(bm_dev_request returned {status})",
                        "check the driver (ls /dev/bm*) and device_id")
                self.handles[device_id] = handle
            return self.handles[device_id]

    def chip_present(self, handle: ctypes.c_void_p) -> str | None:
        if self.get_chipid is None:
            return None
        chip_id = ctypes.c_uint(0)
        if self.get_chipid(handle, ctypes.byref(chip_id)) != 0:
            return None
        return _CHIP_IDS.get(chip_id.value)


_SIMULATOR: dict[str, _BmLibs] = {}
_SIMULATOR_RUN = threading.Lock()  # the cmodel is one simulated chip: one call at a time
_LIB_LOCK = threading.Lock()
_SYSTEM: list[_BmLibs] = []


def _simulator_libs(chip: str) -> _BmLibs:
    """The cmodel simulator for ``chip``, loaded once per process (one chip per process:
    the cmodel library is process-global state)."""
    with _LIB_LOCK:
        if chip in _SIMULATOR:
            return _SIMULATOR[chip]
        if _SIMULATOR:
            other = next(iter(_SIMULATOR))
            raise EngineLoadError(
                f"the Sophon simulator in this process already simulates {other.upper()}; "
                f"a {chip.upper()} model needs a process of its own")
        from oko.port.tpu_mlir import installed_toolchain, toolchain_root  # lazily: x86 only

        tc = installed_toolchain()
        if tc is None:
            raise EngineLoadError(
                f"no Sophon device here and no TPU-MLIR toolchain at {toolchain_root()} for "
                "the simulator",
                "`oko port --target bm1684x` installs it on first use (OKO_TOOLCHAIN_DIR "
                "moves it); on a Sophon box install sophon-sail or libsophon")
        lib_dir = tc.lib_dir
        names = {"cmodel": f"libcmodel_{chip}.so", "bmlib": "libbmlib_bm1684x.so.0",
                 "bmrt": "libbmrt.so.1.0"}
        if not (lib_dir / names["bmlib"]).exists():
            names["bmlib"] = "libbmlib.so.0"
        mode = os.RTLD_GLOBAL | os.RTLD_NOW
        try:
            with _quiet_stdout():
                # the cmodel first: libbmlib finds its symbols ("libcmodel.so") in the
                # global scope instead of the tools' shared, chip-switched symlink
                ctypes.CDLL(str(lib_dir / names["cmodel"]), mode=mode)
                bmlib = ctypes.CDLL(str(lib_dir / names["bmlib"]), mode=mode)
                bmrt = ctypes.CDLL(str(lib_dir / names["bmrt"]), mode=mode)
        except OSError as exc:
            raise EngineLoadError(f"cannot load the Sophon simulator from {lib_dir} ({exc})",
                                  "delete the toolchain folder to reinstall it") from exc
        libs = _BmLibs(bmlib, bmrt, f"the {chip.upper()} cmodel simulator", simulated=chip)
        _SIMULATOR[chip] = libs
        return libs


def device_present() -> bool:
    return any(glob.glob(pattern) for pattern in _DEVICE_NODES)


def _system_libs() -> _BmLibs:
    """libsophon's libbmlib/libbmrt on a machine with a Sophon device."""
    with _LIB_LOCK:
        if _SYSTEM:
            return _SYSTEM[0]
        found = {}
        for lib in ("bmlib", "bmrt"):
            candidates = [str(Path(d) / f"lib{lib}.so") for d in _SYSTEM_LIB_DIRS
                          if (Path(d) / f"lib{lib}.so").exists()]
            name = ctypes.util.find_library(lib)
            found[lib] = candidates[0] if candidates else name
        if not found["bmlib"] or not found["bmrt"]:
            raise EngineLoadError(
                "libbmrt/libbmlib not found for the Sophon device",
                "install libsophon (it provides /opt/sophon/libsophon-current/lib) or sophon-sail")
        try:
            bmlib = ctypes.CDLL(found["bmlib"], mode=os.RTLD_GLOBAL)
            bmrt = ctypes.CDLL(found["bmrt"], mode=os.RTLD_GLOBAL)
        except OSError as exc:
            raise EngineLoadError(f"cannot load libsophon ({exc})") from exc
        libs = _BmLibs(bmlib, bmrt, f"libbmrt ({found['bmrt']})", simulated=None)
        _SYSTEM.append(libs)
        return libs


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[list[str]]:
    """Send C-level stdout (the simulator's chatter) to a temporary file; its text is
    logged at debug level. Only used for the simulator, which is slow anyway."""
    captured: list[str] = []
    fd = 1  # the C runtime's stdout, whatever Python's sys.stdout is (pytest, rich)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    try:
        saved = os.dup(fd)
    except OSError:
        yield captured
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            with contextlib.suppress(Exception):
                ctypes.CDLL(None).fflush(None)
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace").strip()
            if text:
                captured.append(text)
                log.debug("simulator: %s", text[-2000:])


class _BmrtNet:
    """One bmodel loaded in a bmruntime instance, launched with host (system) memory."""

    def __init__(self, libs: _BmLibs, device_id: int, path: Path) -> None:
        self.libs = libs
        self.handle = libs.handle(device_id)
        self.chip_present = libs.simulated or libs.chip_present(self.handle)
        self.rt = libs.bmrt.bmrt_create(self.handle)
        if not self.rt:
            raise EngineLoadError(f"bmrt_create failed on {libs.where}")
        if not libs.bmrt.bmrt_load_bmodel(self.rt, str(path).encode()):
            self.close()
            raise EngineLoadError(f"{path}: {libs.where} refused the bmodel (bmrt_load_bmodel)",
                                  "was it compiled for this chip and TPU-MLIR/libsophon version?")
        names = ctypes.POINTER(ctypes.c_char_p)()
        libs.bmrt.bmrt_get_network_names(self.rt, ctypes.byref(names))
        count = libs.bmrt.bmrt_get_network_number(self.rt)
        if count < 1:
            self.close()
            raise EngineLoadError(f"{path}: the bmodel holds no network")
        self.net_name: bytes = names[0]
        if count > 1:
            log.warning("%s holds %d networks; using the first, %s", path, count,
                        self.net_name.decode())
        info = libs.bmrt.bmrt_get_network_info(self.rt, self.net_name).contents
        if info.is_dynamic:
            log.info("%s is a dynamic-shape bmodel; oko runs it at its compiled maximum", path)
        self.desc = _describe(info)

    def launch(self, arrays: list[np.ndarray], out_shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        d = self.desc
        outputs = [np.empty(s, dtype=t.dtype) for s, t in zip(out_shapes, d.outputs, strict=True)]
        in_ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        in_shapes = (_Shape * len(arrays))(*[_shape(a.shape) for a in arrays])
        out_ptrs = (ctypes.c_void_p * len(outputs))(*[o.ctypes.data for o in outputs])
        out_shape_buf = (_Shape * len(outputs))()
        ok = self.libs.bmrt.bmrt_launch_data(self.rt, self.net_name, in_ptrs, in_shapes,
                                             len(arrays), out_ptrs, out_shape_buf, len(outputs),
                                             True)
        if not ok:
            raise RuntimeError(f"bmrt_launch_data failed on {self.libs.where}")
        if self.libs.bmlib.bm_thread_sync(self.handle) != 0:
            raise RuntimeError(f"bm_thread_sync failed on {self.libs.where}")
        result = []
        for out, shp in zip(outputs, out_shape_buf, strict=True):
            real = tuple(shp.dims[:shp.num_dims])
            if real and real != out.shape and int(np.prod(real)) <= out.size:
                out = out.reshape(-1)[:int(np.prod(real))].reshape(real)
            result.append(out)
        return result

    def close(self) -> None:
        if getattr(self, "rt", None):
            self.libs.bmrt.bmrt_destroy(self.rt)
            self.rt = None


def _shape(dims: tuple[int, ...]) -> _Shape:
    shp = _Shape()
    shp.num_dims = len(dims)
    for i, d in enumerate(dims):
        shp.dims[i] = int(d)
    return shp


def _describe(info: _NetInfo) -> _NetDesc:
    def tensors(num, names, dtypes, scales, zps) -> list[_Tensor]:
        out = []
        for i in range(num):
            bm_dtype = dtypes[i]
            if bm_dtype not in _BM_DTYPES:
                raise EngineLoadError(f"bmodel tensor {names[i].decode()} has data type "
                                      f"{bm_dtype}, which oko cannot feed (int4?)")
            zp = int(zps[i]) if zps else 0
            out.append(_Tensor(names[i].decode(), _BM_DTYPES[bm_dtype], bm_dtype,
                               float(scales[i]), zp))
        return out

    def shapes(ptr, num) -> list[tuple[int, ...]]:
        return [tuple(int(ptr[i].dims[k]) for k in range(ptr[i].num_dims)) for i in range(num)]

    stages = [(shapes(info.stages[s].input_shapes, info.input_num),
               shapes(info.stages[s].output_shapes, info.output_num))
              for s in range(info.stage_num)]
    return _NetDesc(
        info.name.decode(),
        tensors(info.input_num, info.input_names, info.input_dtypes, info.input_scales,
                info.input_zero_point),
        tensors(info.output_num, info.output_names, info.output_dtypes, info.output_scales,
                info.output_zero_point),
        stages)


# ------------------------------------------------------------------------------- sail


class _SailNet:
    """The same contract through sophon-sail (Sophgo's Python runtime on devices)."""

    def __init__(self, device_id: int, path: Path) -> None:
        from sophon import sail  # only on Sophon machines

        self.sail = sail
        self.engine = sail.Engine(str(path), device_id, sail.IOMode.SYSIO)
        self.graph = self.engine.get_graph_names()[0]
        handle_chip = None
        with contextlib.suppress(Exception):
            handle_chip = str(sail.Handle(device_id).get_target()).lower()
        self.chip_present = handle_chip if handle_chip in _CHIP_IDS.values() else None
        g = self.graph

        def tensor(name: str, is_input: bool) -> _Tensor:
            get_dtype = self.engine.get_input_dtype if is_input else self.engine.get_output_dtype
            get_scale = self.engine.get_input_scale if is_input else self.engine.get_output_scale
            bm_dtype = int(get_dtype(g, name))
            return _Tensor(name, _BM_DTYPES.get(bm_dtype, np.dtype(np.float32)), bm_dtype,
                           float(get_scale(g, name)), 0)

        ins = [tensor(n, True) for n in self.engine.get_input_names(g)]
        outs = [tensor(n, False) for n in self.engine.get_output_names(g)]
        in_shapes = [tuple(self.engine.get_input_shape(g, t.name)) for t in ins]
        out_shapes = [tuple(self.engine.get_output_shape(g, t.name)) for t in outs]
        self.desc = _NetDesc(g, ins, outs, [(in_shapes, out_shapes)])

    def launch(self, arrays: list[np.ndarray], out_shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        feeds = {t.name: a for t, a in zip(self.desc.inputs, arrays, strict=True)}
        got = self.engine.process(self.graph, feeds)
        return [np.asarray(got[t.name]).reshape(s) for t, s in
                zip(self.desc.outputs, out_shapes, strict=True)]

    def close(self) -> None:
        self.engine = None


# ----------------------------------------------------------------------------- engine


class SophonEngine(Engine):
    kind = KIND
    config_class = SophonConfig

    def __init__(self, model_path: Path, config: SophonConfig) -> None:
        super().__init__(model_path, config)
        self._net: _BmrtNet | _SailNet | None = None
        self._runtime = ""
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        self._lock = threading.Lock()

    # -- loading

    def load(self, warmup_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        path = self.model_path
        cfg: SophonConfig = self.config  # type: ignore[assignment]
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {path}")
        built_for = bmodel_chip(path)
        if built_for != cfg.chip:
            raise EngineLoadError(
                f"{path} was compiled for {built_for.upper()}, but the engine is set up for "
                f"{cfg.chip.upper()}",
                f"set chip: {built_for} or port the model again with --target {cfg.chip}")
        self._runtime = self._pick_runtime(cfg)
        if self._runtime == "sail":
            self._net = _SailNet(cfg.device_id, path)
        elif self._runtime == "bmrt":
            self._net = _BmrtNet(_system_libs(), cfg.device_id, path)
        else:
            libs = _simulator_libs(cfg.chip)
            with _SIMULATOR_RUN, _quiet_stdout() as said:
                try:
                    self._net = _BmrtNet(libs, cfg.device_id, path)
                except EngineLoadError as exc:
                    detail = said[-1].splitlines()[-1] if said else ""
                    raise EngineLoadError(exc.message + (f": {detail}" if detail else ""),
                                          exc.hint) from exc
        present = self._net.chip_present
        try:
            if present and present != built_for:
                raise EngineLoadError(
                    f"{path} was compiled for {built_for.upper()}, but device {cfg.device_id} "
                    f"is a {present.upper()}", f"port the model again with --target {present}")
            self._make_specs(cfg)
        except EngineLoadError:
            self.close()
            raise
        log.info("loaded %s on %s", path, self.describe())
        if self._runtime != "simulator":
            # The simulator has no start-up cost to pay: a warm-up pass would only spend
            # seconds to minutes (F16 layers simulate slowly) computing zeros.
            self._warm_up(warmup_shapes)

    @staticmethod
    def _pick_runtime(cfg: SophonConfig) -> str:
        if cfg.runtime != "auto":
            return cfg.runtime
        if device_present():
            try:
                import sophon.sail  # noqa: F401

                return "sail"
            except ImportError:
                return "bmrt"
        return "simulator"

    def _make_specs(self, cfg: SophonConfig) -> None:
        desc = self._net.desc
        largest = max(range(len(desc.stages)), key=lambda s: desc.stages[s][0][0][:1] or (1,))
        in_shapes, out_shapes = desc.stages[largest]
        for label, given, tensors in (("input", cfg.input_names, desc.inputs),
                                      ("output", cfg.output_names, desc.outputs)):
            if given and len(given) != len(tensors):
                raise EngineLoadError(
                    f"{self.model_path}: the engine config names {len(given)} {label}s but the "
                    f"bmodel has {len(tensors)} ({', '.join(t.name for t in tensors)})")
        in_names = cfg.input_names or [t.name for t in desc.inputs]
        out_names = cfg.output_names or [t.name for t in desc.outputs]
        # inputs take float32 (INT8 inputs are quantised on the way in) unless raw
        self._inputs = [TensorSpec(n, s, np.dtype(np.float32))
                        for n, s in zip(in_names, in_shapes, strict=True)]
        self._outputs = [TensorSpec(n, s, np.dtype(np.float32))
                         for n, s in zip(out_names, out_shapes, strict=True)]

    def _warm_up(self, shapes: dict[str, tuple[int, ...]] | None) -> None:
        try:
            self.run(self.warmup_feeds(shapes))
        except Exception as exc:
            raise EngineLoadError(
                f"{self.model_path}: warm-up inference failed ({str(exc).splitlines()[0][:200]})"
            ) from exc

    # -- running

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._net is None:
            raise RuntimeError("SophonEngine.run() before load()")
        desc = self._net.desc
        arrays = []
        for spec in self._inputs:
            if spec.name not in inputs:
                raise ModelContractError(f"{self.model_path}: missing input {spec.name!r}",
                                         f"inputs are {[s.name for s in self._inputs]}")
            arrays.append(np.asarray(inputs[spec.name]))
        n = arrays[0].shape[0] if arrays[0].ndim else 1
        stage = self._stage_for(arrays)
        in_shapes, out_shapes = desc.stages[stage]
        feeds = [_to_device(_pad(a, s[0]) if a.ndim and a.shape[0] < s[0] else a, t, s)
                 for a, t, s in zip(arrays, desc.inputs, in_shapes, strict=True)]
        if self._runtime == "simulator":
            with _SIMULATOR_RUN, _quiet_stdout():  # one simulated chip per process
                raw = self._net.launch(feeds, out_shapes)
        else:
            with self._lock:
                raw = self._net.launch(feeds, out_shapes)
        result = {}
        for spec, tensor, out in zip(self._outputs, desc.outputs, raw, strict=True):
            value = _to_float(out, tensor)
            batch = in_shapes[0][0] if in_shapes[0] else 1
            if n < batch and value.ndim and value.shape[0] == batch:
                value = value[:n]
            result[spec.name] = value
        return result

    def _stage_for(self, arrays: list[np.ndarray]) -> int:
        """The stage (compiled shape set) with the smallest batch that fits the inputs."""
        stages = self._net.desc.stages
        fits = []
        for s, (in_shapes, _) in enumerate(stages):
            ok = all(a.ndim == len(shp) and a.shape[1:] == tuple(shp[1:])
                     and (a.shape[0] if a.ndim else 1) <= (shp[0] if shp else 1)
                     for a, shp in zip(arrays, in_shapes, strict=True))
            if ok:
                fits.append((in_shapes[0][0] if in_shapes[0] else 1, s))
        if not fits:
            want = [tuple(a.shape) for a in arrays]
            have = [st[0] for st in stages]
            raise ModelContractError(
                f"{self.model_path}: input shapes {want} fit none of the bmodel's compiled "
                f"shapes {have}", "the batch may be at most max_batch; other axes are fixed")
        return min(fits)[1]

    @property
    def max_batch(self) -> int | None:
        shape = self._inputs[0].shape if self._inputs else ()
        return shape[0] if shape else 1

    def describe(self) -> str:
        cfg: SophonConfig = self.config  # type: ignore[assignment]
        where = {"sail": f"device {cfg.device_id}, sophon-sail",
                 "bmrt": f"device {cfg.device_id}, libbmrt",
                 "simulator": "TPU-MLIR cmodel simulator"}.get(self._runtime, "not loaded")
        return f"{self.kind} ({cfg.chip.upper()}, {where})"

    def close(self) -> None:
        """Free the runtime instance (the process keeps the device handle)."""
        if self._net is not None:
            self._net.close()
            self._net = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _pad(a: np.ndarray, batch: int) -> np.ndarray:
    pad = np.zeros((batch - a.shape[0], *a.shape[1:]), dtype=a.dtype)
    return np.concatenate([a, pad])


def _to_device(a: np.ndarray, t: _Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """An input in the dtype the bmodel expects. Float data for an INT8/UINT8 input is
    quantised as bmruntime defines input scales (q = round(x * scale) + zero_point,
    saturated; the input scale is 127/threshold, whereas an output scale is the step:
    x = (q - zero_point) * scale)."""
    if t.bm_dtype == _BF16:
        if a.dtype == np.uint16:  # already raw bf16
            return np.ascontiguousarray(a)
        bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    if a.dtype == t.dtype:
        return np.ascontiguousarray(a)
    if t.dtype.kind in "iu" and a.dtype.kind == "f":
        info = np.iinfo(t.dtype)
        scaled = a.astype(np.float32) * np.float32(t.scale if t.scale else 1.0)
        q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + t.zero_point  # half away from 0
        return np.ascontiguousarray(np.clip(q, info.min, info.max).astype(t.dtype))
    return np.ascontiguousarray(a.astype(t.dtype))


def _to_float(out: np.ndarray, t: _Tensor) -> np.ndarray:
    """An output as float32: INT8/UINT8 dequantised with the bmodel's scale/zero point."""
    if t.bm_dtype == _BF16:
        return (out.astype(np.uint32) << 16).view(np.float32)
    if t.dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
        scale = t.scale if t.scale else 1.0
        return ((out.astype(np.float32) - t.zero_point) * np.float32(scale)).astype(np.float32)
    if out.dtype == np.float32:
        return out
    return out.astype(np.float32)
