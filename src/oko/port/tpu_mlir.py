"""TPU-MLIR, Sophgo's compiler, as oko uses it: an isolated toolchain and tool drivers.

TPU-MLIR (PyPI ``tpu-mlir``) is Python 3.10 only and pins old numpy/protobuf, so it
never enters oko's environment. On first use :func:`ensure_toolchain` builds a venv of
its own (``$XDG_CACHE_HOME/oko/toolchains/tpu-mlir-<version>``, or under
``$OKO_TOOLCHAIN_DIR``), applies the fixes the wheel needs, and marks it complete; later
runs (and other processes: a lock file serialises them) reuse it.

The compiler tools run as subprocesses of that venv: :func:`transform`
(``model_transform``), :func:`calibrate` (``run_calibration``), :func:`deploy`
(``model_deploy``) and :func:`run_mlir` (CPU inference of a .mlir, for fidelity checks
while searching mixed precision). Each streams its output to a log file; a failure
becomes one :class:`CompileError` quoting the compiler's own message.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oko.core.errors import OkoError

log = logging.getLogger(__name__)

VERSION = "1.30.2"
# Installed into the toolchain venv. onnx/onnxruntime/onnxsim are pinned to versions that
# accept the wheel's protobuf 3.20.3 pin and gave results identical to its own [onnx]
# extra; flatbuffers is needed by every tool (bmodel code) but is only in the [all] extra;
# setuptools provides pkg_resources, which tpu_mlir/__init__.py imports.
REQUIREMENTS = (
    f"tpu-mlir=={VERSION}",
    "psutil>=5.9",
    "onnx==1.17.0",
    "onnxsim==0.4.36",
    "onnxruntime==1.23.2",
    "flatbuffers==24.12.23",
    "setuptools<81",
)
# Bump when the recipe changes (requirements or fixes): older toolchains are rebuilt.
RECIPE = hashlib.sha256(("fixes-v1|" + "|".join(REQUIREMENTS)).encode()).hexdigest()[:12]
MARKER = "oko-toolchain.json"
# The wheel bundles glibc pieces that clash with the host's loader: every tool dies at
# start ("GLIBC_2.36 not found (required by libexpat.so.1)", "stack smashing detected").
BUNDLED_GLIBC = ("libc.so.6", "libm.so.6", "libpthread.so.0")
# TPU-MLIR imports torch (run_calibration directly, the ONNX path through
# onnxruntime_extensions, which subclasses torch classes on import) but never uses it
# for ONNX models. A stub saves a ~1 GB download; it is not the real torch.
TORCH_STUB = '''"""Stub of torch placed by oko: TPU-MLIR imports torch for ONNX models without using it.

This is not PyTorch. Any attribute is a dummy class, so modules that subclass
torch.autograd.Function / torch.nn.Module / torch.Tensor at import time still load.
"""
import types as _types

__version__ = "0.0.0"


class _Dummy:
    def __init__(self, *args, **kwargs):
        pass


autograd = _types.SimpleNamespace(Function=_Dummy)
nn = _types.SimpleNamespace(Module=_Dummy)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Dummy
'''
PYTHON_HINT = (
    "TPU-MLIR needs Python 3.10: install it (e.g. `pyenv install 3.10`, "
    "`uv python install 3.10`, or your distribution's python3.10 with its venv module) "
    "or point OKO_PYTHON310 at one; alternatively run oko inside Sophgo's tpuc_dev "
    "Docker image (sophgo/tpuc_dev), which has Python 3.10")
LOCK_TIMEOUT_S = 1800.0
NEEDED_GB = 3  # the venv is ~2 GB, pip's download cache ~0.4 GB more
# Ops that end the walk from an output back into the network: the head's last layers.
COMPUTE_OPS = frozenset({"Conv", "Deconv", "MatMul", "Attention", "LSTM", "GRU"})
_NOT_LAYERS = frozenset({"Input", "Weight", "None"})


class ToolchainError(OkoError):
    """The TPU-MLIR toolchain is missing and cannot be installed here."""


class CompileError(OkoError):
    """A TPU-MLIR tool failed on this model; the message quotes the compiler."""


# ---------------------------------------------------------------------------- location


def toolchains_dir() -> Path:
    """Folder holding oko's toolchains: ``$OKO_TOOLCHAIN_DIR`` or the user cache."""
    override = os.environ.get("OKO_TOOLCHAIN_DIR")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "oko" / "toolchains"


def toolchain_root() -> Path:
    return toolchains_dir() / f"tpu-mlir-{VERSION}"


@dataclass(frozen=True)
class Toolchain:
    """A complete TPU-MLIR venv."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    @property
    def site_packages(self) -> Path:
        found = sorted(glob.glob(str(self.root / "lib" / "python3.*" / "site-packages")))
        return Path(found[0]) if found else self.root / "lib" / "python3.10" / "site-packages"

    @property
    def package_dir(self) -> Path:
        return self.site_packages / "tpu_mlir"

    @property
    def lib_dir(self) -> Path:
        """The compiler's shared libraries, the cmodel simulator's among them."""
        return self.package_dir / "lib"

    def env(self) -> dict[str, str]:
        """Environment for the tools: the venv first on PATH (tools call each other by
        name and run `python3` through `env`), nothing of oko's own interpreter."""
        env = _clean_env()
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("OMP_NUM_THREADS", str(max(1, min(4, os.cpu_count() or 1))))
        return env


def _clean_env() -> dict[str, str]:
    """os.environ without what would leak oko's Python 3.11 into the 3.10 toolchain."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV",
            "LD_PRELOAD", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


def installed_toolchain() -> Toolchain | None:
    """The toolchain when it is completely provisioned with the current recipe."""
    tc = Toolchain(toolchain_root())
    marker = tc.root / MARKER
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if data.get("recipe") != RECIPE or not tc.python.exists():
        return None
    return tc


# ------------------------------------------------------------------------ Python 3.10


def _python_version(exe: str) -> tuple[int, int] | None:
    """(major, minor) of a working interpreter with venv + ensurepip, else None."""
    try:
        out = subprocess.run(
            [exe, "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"],
            check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        major, minor = (int(p) for p in out.stdout.split())
    except ValueError:
        return None
    return major, minor


def _python_candidates() -> Iterator[str]:
    if os.environ.get("OKO_PYTHON310"):
        yield os.environ["OKO_PYTHON310"]
    for name in ("python3.10",):
        found = shutil.which(name)
        if found:
            yield found
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    yield from sorted(glob.glob(str(pyenv_root / "versions" / "3.10*" / "bin" / "python3.10")),
                      reverse=True)
    uv = shutil.which("uv")
    if uv:
        try:
            out = subprocess.run([uv, "python", "find", "3.10"], check=False, capture_output=True,
                                 text=True, timeout=60,
                                 env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
            if out.returncode == 0 and out.stdout.strip():
                yield out.stdout.strip().splitlines()[-1]
        except (OSError, subprocess.SubprocessError):
            pass


def find_python310() -> str | None:
    """A Python 3.10 interpreter able to create venvs: $OKO_PYTHON310, python3.10 on PATH,
    pyenv's versions folder, then ``uv python find 3.10`` (never downloading)."""
    for exe in _python_candidates():
        if _python_version(exe) == (3, 10):
            return exe
        log.debug("not a usable Python 3.10: %s", exe)
    return None


def check_host() -> None:
    """Raise ToolchainError unless TPU-MLIR can run here (or is already installed)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ToolchainError(
            f"TPU-MLIR runs on x86_64 Linux only (this is {sys.platform}/{platform.machine()})",
            "compile on an x86_64 Linux machine or in Sophgo's tpuc_dev Docker image")
    if installed_toolchain() is None and find_python310() is None:
        raise ToolchainError("no Python 3.10 interpreter found to install TPU-MLIR "
                             f"{VERSION} into {toolchain_root()}", PYTHON_HINT)


# ------------------------------------------------------------------------ provisioning


@contextlib.contextmanager
def _file_lock(path: Path, on_wait: Callable[[], None],
               timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        waited = False
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    on_wait()
                    waited = True
                if time.monotonic() > deadline:
                    raise ToolchainError(
                        f"timed out after {timeout_s:.0f} s waiting for another process "
                        f"installing TPU-MLIR (lock {path})",
                        "if no oko process is running, delete the lock file") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_toolchain(log_line: Callable[[str], None] = lambda line: None,
                     stage: Callable[[str], None] = lambda name: None) -> Toolchain:
    """The provisioned toolchain, installing it first if needed (~80 s, ~2 GB, once).

    ``log_line`` receives progress lines, ``stage`` the current step for a progress display.
    """
    tc = installed_toolchain()
    if tc is not None:
        return tc
    check_host()
    root = toolchain_root()
    lock = root.with_name(root.name + ".lock")

    def waiting() -> None:
        msg = f"waiting for another process installing TPU-MLIR ({lock})"
        log.info(msg)
        log_line(msg)
        stage("toolchain: waiting for another install")

    with _file_lock(lock, waiting):
        tc = installed_toolchain()  # the other process may have finished it
        if tc is not None:
            return tc
        python = find_python310()
        if python is None:
            raise ToolchainError(f"no Python 3.10 interpreter found to install TPU-MLIR "
                                 f"{VERSION} into {root}", PYTHON_HINT)
        return _provision(root, python, log_line, stage)


def _provision(root: Path, python: str, log_line: Callable[[str], None],
               stage: Callable[[str], None]) -> Toolchain:
    log_path = root.with_name(root.name + ".install.log")
    started = time.monotonic()

    def say(msg: str) -> None:
        log.info(msg)
        log_line(msg)

    if root.exists():
        say(f"removing incomplete toolchain {root}")
        shutil.rmtree(root)
    free_gb = shutil.disk_usage(root.parent).free / 2**30
    if free_gb < NEEDED_GB:
        raise ToolchainError(f"installing TPU-MLIR needs about {NEEDED_GB} GB free in "
                             f"{root.parent} ({free_gb:.1f} GB free)",
                             "free some space or set OKO_TOOLCHAIN_DIR to a larger disk")
    env = _clean_env()
    with open(log_path, "w") as log_file:
        stage("toolchain: creating Python 3.10 venv")
        say(f"installing TPU-MLIR {VERSION} into {root} with {python} (once; ~2 GB, "
            f"about 1-2 minutes; log: {log_path})")
        _run_logged([python, "-m", "venv", str(root)], log_file, None,
                    "creating the toolchain venv failed", env=env)
        tc = Toolchain(root)
        stage(f"toolchain: pip install tpu-mlir=={VERSION}")
        _run_logged([str(tc.python), "-m", "pip", "install", "--disable-pip-version-check",
                     "--progress-bar", "off", *REQUIREMENTS], log_file, _pip_progress(say),
                    f"pip could not install tpu-mlir=={VERSION}", env=env)
        stage("toolchain: applying fixes")
        notes = _apply_fixes(tc)
        for note in notes:
            say(note)
            log_file.write(note + "\n")
        stage("toolchain: checking the tools start")
        log_file.flush()
        _run_logged([str(tc.bin_dir / "model_transform"), "--help"], log_file, None,
                    "the installed TPU-MLIR tools do not start", env=tc.env())
    seconds = time.monotonic() - started
    (root / MARKER).write_text(json.dumps({
        "tool": "tpu-mlir", "version": VERSION, "recipe": RECIPE,
        "requirements": list(REQUIREMENTS), "python": python,
        "seconds": round(seconds, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }, indent=2))
    say(f"TPU-MLIR {VERSION} ready in {seconds:.0f} s at {root}")
    return tc


def _pip_progress(say: Callable[[str], None]) -> Callable[[str], None]:
    def on_line(line: str) -> None:
        if line.startswith(("Collecting ", "Successfully installed")):
            say("pip: " + line.strip()[:160])
    return on_line


def _run_logged(cmd: Sequence[str], log_file, on_line: Callable[[str], None] | None,
                failure: str, env: dict[str, str] | None = None) -> None:
    log_file.write("$ " + " ".join(cmd) + "\n")
    log_file.flush()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=env)
    except OSError as exc:
        raise ToolchainError(f"{failure}: {exc}", PYTHON_HINT) from exc
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        log_file.write(line)
        tail = (tail + [line.rstrip()])[-40:]
        if on_line:
            on_line(line)
    if proc.wait() != 0:
        log_file.flush()
        reason = _pip_reason(tail)
        raise ToolchainError(f"{failure}: {reason}",
                             f"full log: {log_file.name}; PyPI must be reachable "
                             "(pip honours PIP_INDEX_URL)")


def _pip_reason(tail: list[str]) -> str:
    for line in reversed(tail):
        if line.startswith("ERROR:") or "Error" in line:
            return line.strip()[:300]
    return next((ln.strip() for ln in reversed(tail) if ln.strip()), "no output")[:300]


def _apply_fixes(tc: Toolchain) -> list[str]:
    notes = []
    third_party = tc.lib_dir / "third_party"
    moved = tc.root / "oko-moved-glibc"
    for name in BUNDLED_GLIBC:
        src = third_party / name
        if src.exists():
            moved.mkdir(exist_ok=True)
            shutil.move(str(src), moved / name)
            notes.append(f"fix: moved the wheel's bundled {name} out of the library path")
    stub = tc.site_packages / "torch.py"
    if not (tc.site_packages / "torch").exists() and not stub.exists():
        stub.write_text(TORCH_STUB)
        notes.append("fix: added a torch stub (TPU-MLIR imports torch without using it)")
    return notes


# -------------------------------------------------------------------------- the tools


def run_tool(tc: Toolchain, tool: str, args: Sequence[str], cwd: Path, log_path: Path,
             *, python_script: bool = False) -> str:
    """Run one TPU-MLIR tool in ``cwd``, output streamed to ``log_path``; returns the output.

    ``python_script`` runs ``tool`` (a script path) with the toolchain's Python instead.
    Raises CompileError quoting the compiler when it fails.
    """
    cmd = [str(tc.python), tool, *args] if python_script else [str(tc.bin_dir / tool), *args]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.debug("running %s (log %s)", " ".join(cmd), log_path)
    chunks: list[str] = []
    with open(log_path, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=tc.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            chunks.append(line)
        code = proc.wait()
    output = "".join(chunks)
    name = Path(tool).stem
    if code != 0:
        raise CompileError(f"{name} failed: {explain_failure(output)}", f"log: {log_path}")
    return output


_FAILURE_PATTERNS = (
    (re.compile(r"Op not support:\s*\{(?P<ops>[^}]+)\}"), "unsupported ONNX operator(s): {ops}"),
    (re.compile(r"(?P<ops>\w+) Op not support now"), "unsupported ONNX operator(s): {ops}"),
    (re.compile(r"Warning: inf in calibration result.*?op name: (?P<op>\S+)"),
     "calibration found an infinite range at {op}"),
    (re.compile(r"(?m)^.*\berror: .*$"), "{0}"),
    (re.compile(r"Assertion `(?P<what>.+?)' failed"), "compiler assertion failed: {what}"),
    (re.compile(r"(?m)^(?:\w+\.)*(?:\w*Error|\w*Exception): (?!\[!Error\]).*$"), "{0}"),
)


def explain_failure(output: str) -> str:
    """The most telling line of a failed tool's output (an unsupported op, an error)."""
    for pattern, template in _FAILURE_PATTERNS:
        found = pattern.search(output)
        if found:
            groups = {k: v.replace("'", "").strip() for k, v in found.groupdict().items()}
            return template.format(found.group(0).strip(), **groups)[:400]
    lines = [ln.strip() for ln in output.splitlines()
             if ln.strip() and not ln.lstrip().startswith(("#", "File ", "[Running]"))]
    return lines[-1][:400] if lines else "no output"


def _shape_arg(shapes: Sequence[Sequence[int]]) -> str:
    return "[" + ",".join("[" + ",".join(str(int(d)) for d in s) + "]" for s in shapes) + "]"


def transform(tc: Toolchain, onnx_path: Path, name: str, input_shapes: Sequence[Sequence[int]],
              work_dir: Path, log_path: Path) -> Path:
    """ONNX -> top-level .mlir (F32). No preprocessing is fused: the .mlir, and every
    .bmodel made from it, takes the same normalised tensors as the ONNX model."""
    mlir = work_dir / f"{name}.mlir"
    try:
        run_tool(tc, "model_transform", [
            "--model_name", name, "--model_def", str(onnx_path),
            "--input_shapes", _shape_arg(input_shapes), "--mlir", mlir.name,
        ], work_dir, log_path)
    except CompileError as exc:
        found = re.search(r"unsupported ONNX operator\(s\): (.+)$", exc.message)
        if found:
            raise CompileError(
                f"TPU-MLIR {VERSION} cannot convert {_name_nodes(onnx_path, found.group(1))}",
                "replace the operator(s) in the ONNX export, or use another target; "
                f"log: {log_path}") from exc
        raise
    if not mlir.is_file():
        raise CompileError(f"model_transform wrote no {mlir.name}", f"log: {log_path}")
    return mlir


def _name_nodes(onnx_path: Path, op_list: str) -> str:
    """'Det' -> "operator Det (node 'det_0')": the ONNX nodes of each unsupported type."""
    ops = [o.strip() for o in op_list.split(",") if o.strip()]
    import onnx

    try:
        graph_nodes = list(onnx.load(str(onnx_path), load_external_data=False).graph.node)
    except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError):
        graph_nodes = []  # the names are a courtesy; the op types are the message
    parts = []
    for op in ops:
        nodes = [n.name or n.output[0] for n in graph_nodes if n.op_type == op]
        shown = ", ".join(repr(n) for n in nodes[:3]) + (", ..." if len(nodes) > 3 else "")
        parts.append(f"{op} (node {shown})" if nodes else op)
    return ("operator " if len(ops) == 1 else "operators ") + "; ".join(parts)


# oko's names for run_calibration's range methods ("kl" is the tool's own default).
CALIBRATION_METHODS = {"percentile": "use_percentile9999", "kl": "use_kl", "mse": "use_mse",
                       "max": "use_max"}


def calibrate(tc: Toolchain, mlir: Path, samples: Sequence[Path], work_dir: Path,
              log_path: Path, method: str = "percentile") -> Path:
    """Activation ranges from preprocessed samples (one .npz per sample).

    ``method`` is one of CALIBRATION_METHODS. The 99.99th percentile is the default: on
    NanoDet it left the outputs closer to FP32 than KL (worst cosine 0.984 vs 0.979 with
    the heads in F16), MSE (0.973) or max (0.964).
    """
    data_list = work_dir / "calibration_list.txt"
    data_list.write_text("".join(f"{p}\n" for p in samples))
    table = work_dir / f"{mlir.stem}_{method}_cali_table"
    run_tool(tc, "run_calibration", [
        mlir.name, "--data_list", str(data_list), "--input_num", str(len(samples)),
        "--cali_method", CALIBRATION_METHODS[method], "-o", table.name,
    ], work_dir, log_path)
    _check_calibration_table(table, log_path)
    return table


def _check_calibration_table(table: Path, log_path: Path) -> None:
    if not table.is_file():
        raise CompileError(f"run_calibration wrote no {table.name}", f"log: {log_path}")
    for line in table.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            try:
                finite = np.isfinite(float(parts[1]))
            except ValueError:
                continue
            if not finite:
                raise CompileError(
                    f"calibration found an infinite range at {parts[0]}",
                    "a layer produces inf (e.g. a Pad with -inf not followed by MaxPool); "
                    "fix the ONNX model or port at f16/f32")


def deploy(tc: Toolchain, mlir: Path, quantize: str, chip: str, model: Path, log_path: Path,
           *, calibration_table: Path | None = None, qtable: Path | None = None,
           tpu_mlir_only: bool = False, extra_args: Sequence[str] = ()) -> Path:
    """Lower ``mlir`` to ``chip`` at ``quantize`` (F32/F16/INT8) and write ``model``.

    Runs in the .mlir's folder (the .mlir refers to its weight file by relative name).
    Validation is skipped: oko validates the artefact itself. ``tpu_mlir_only`` stops at
    the quantised tpu .mlir (kept, with its weights) for fast CPU fidelity checks.
    Returns the .bmodel, or the tpu .mlir when ``tpu_mlir_only``.
    """
    work_dir = mlir.parent
    for stale in ("compiler_profile_0.txt", "_0.dat"):
        (work_dir / stale).unlink(missing_ok=True)
    args = ["--mlir", mlir.name, "--quantize", quantize, "--processor", chip,
            "--model", str(model), "--skip_validation"]
    if calibration_table is not None:
        args += ["--calibration_table", str(calibration_table)]
    if qtable is not None:
        args += ["--quantize_table", str(qtable)]
    if tpu_mlir_only:
        args += ["--not_gen_bmodel", "--debug"]
    run_tool(tc, "model_deploy", [*args, *extra_args], work_dir, log_path)
    if tpu_mlir_only:
        found = sorted(work_dir.glob(f"{mlir.stem}_{chip}_{quantize.lower()}*_tpu.mlir"),
                       key=lambda p: p.stat().st_mtime)
        if not found:
            raise CompileError(f"model_deploy wrote no tpu .mlir for {quantize}",
                               f"log: {log_path}")
        return found[-1]
    if not model.is_file():
        raise CompileError(f"model_deploy wrote no {model.name}", f"log: {log_path}")
    return model


def predicted_ms(work_dir: Path) -> float | None:
    """On-chip latency the compiler predicts for the last deploy in ``work_dir``.

    BM1684X writes ``compiler_profile_0.txt``, BM1684 ``_0.dat``; each holds
    ``runtime: X ms`` lines (one per subnet: summed).
    """
    for name in ("compiler_profile_0.txt", "_0.dat"):
        path = work_dir / name
        if path.is_file():
            values = re.findall(r"runtime:\s*([0-9.eE+-]+)\s*ms", path.read_text(errors="replace"))
            if values:
                return float(sum(float(v) for v in values))
    return None


_RUN_MLIR_SCRIPT = r'''
import sys, numpy as np
import tpu_mlir  # noqa: F401  (sets the tool paths)
import pymlir
mlir, out_path, in_paths = sys.argv[1], sys.argv[2], sys.argv[3:]
pymlir.set_mem_mode("value_mem")
module = pymlir.module()
module.load(mlir)
results = {}
for i, path in enumerate(in_paths):
    data = np.load(path)
    for name in module.input_names:
        x = data[name]
        module.set_tensor(name, x.astype(np.float32), x.shape)
    module.invoke(True)
    for j, name in enumerate(module.output_names):
        results[f"{i}/{j}"] = np.array(module.get_tensor(name), dtype=np.float32)
np.savez(out_path, **results)
'''


def run_mlir(tc: Toolchain, mlir: Path, samples: Sequence[Path], work_dir: Path,
             log_path: Path) -> list[list[np.ndarray]]:
    """Outputs (in the model's output order) of a .mlir run on CPU for each sample .npz."""
    script = work_dir / "oko_run_mlir.py"
    script.write_text(_RUN_MLIR_SCRIPT)
    out = work_dir / f"{mlir.stem}_eval_outputs.npz"
    out.unlink(missing_ok=True)
    run_tool(tc, str(script), [mlir.name, str(out), *map(str, samples)], mlir.parent, log_path,
             python_script=True)
    with np.load(out) as data:
        n_out = 1 + max(int(k.split("/")[1]) for k in data.files)
        return [[data[f"{i}/{j}"] for j in range(n_out)] for i in range(len(samples))]


# ------------------------------------------------------------------------- mlir graph


@dataclass
class MlirGraph:
    """Ops of a top-level TPU-MLIR .mlir: name, type and producers, plus the outputs."""

    op_type: dict[str, str] = field(default_factory=dict)  # op name -> type ("Conv")
    inputs: dict[str, list[str]] = field(default_factory=dict)  # op name -> producer names
    outputs: list[str] = field(default_factory=list)  # op names, in model output order

    @classmethod
    def parse(cls, text: str) -> MlirGraph:
        locs = dict(re.findall(r'^(#loc\d+) = loc\("([^"]*)"\)', text, re.MULTILINE))
        value_op: dict[str, str] = {}
        graph = cls()
        op_re = re.compile(
            r'^\s*(%[\w]+)(?::\d+)?\s*=\s*"top\.(\w+)"\(([^)]*)\).*loc\((#loc\d+|"[^"]*")\)\s*$')
        for line in text.splitlines():
            found = op_re.match(line)
            if found:
                value, op_type, operands, loc = found.groups()
                name = locs.get(loc, loc.strip('"'))
                value_op[value] = name
                if op_type in _NOT_LAYERS:
                    continue
                graph.op_type[name] = op_type
                graph.inputs[name] = [value_op[v] for v in re.findall(r"(%\w+)", operands)
                                      if v in value_op]
                continue
            ret = re.match(r"^\s*return\s+([^:]*)", line)
            if ret:
                graph.outputs = [value_op[v] for v in re.findall(r"(%\w+)", ret.group(1))
                                 if v in value_op]
        return graph

    def head(self, depth: int) -> list[str]:
        """Ops from each output back through ``depth`` compute layers (Conv, MatMul...);
        ``depth=0`` gives only the ops after the last compute layer (Sigmoid, Concat...)."""
        keep: dict[str, None] = {}
        stack = [(name, 0) for name in self.outputs]
        seen: set[tuple[str, int]] = set()
        while stack:
            name, crossed = stack.pop()
            if (name, crossed) in seen or name not in self.op_type:
                continue
            seen.add((name, crossed))
            if self.op_type[name] in COMPUTE_OPS:
                if depth == 0:
                    continue
                keep[name] = None
                crossed += 1
                if crossed >= depth:
                    continue
            else:
                keep[name] = None
            stack.extend((src, crossed) for src in self.inputs.get(name, []))
        return [n for n in self.op_type if n in keep]  # in graph order

    def module_block(self, pattern: str = r"^/model\.(\d+)/") -> list[str]:
        """Ops of the last numbered block (YOLO's detection head: ``/model.22/...``)."""
        numbered = [(int(m.group(1)), n) for n in self.op_type
                    if (m := re.match(pattern, n))]
        if not numbered:
            return []
        last = max(i for i, _ in numbered)
        return [n for i, n in numbered if i == last]
