"""Sophon TPU targets (BM1684X, BM1684): ONNX -> .bmodel through TPU-MLIR.

Preprocessing stays outside the bmodel: the calibration tensors oko hands over are already
normalised with the model's manifest, so they go to ``run_calibration`` as .npz samples
and ``model_transform`` gets no ``--mean/--scale`` (applying them there as well would
normalise twice). The bmodel therefore takes exactly the tensor the ONNX model takes, and
the manifest's preprocessing is unchanged for the ported model.

INT8 does not stop at a failed tolerance. After calibration (on most of the samples)
the target measures every output of the quantised model (TPU-MLIR's CPU interpreter on
the held-out samples) against ONNX Runtime FP32 and, while an output's cosine or
euclidean similarity is below target (job options ``min_cosine``, default 0.99, and
``min_euclidean``, default 0.80, plus a small margin) or the task metric the job can
check is (detection agreement >= 0.95: a YOLO output whose box coordinates still match
keeps a high cosine while its class scores are crushed to zero), keeps more layers in higher
precision (F16 on BM1684X, F32 on BM1684): first the head (YOLO: its last ``/model.N/``
block and the output ops; any model: the ops after each output's last convolution, and
that convolution), then the head plus the first part of the network, its size found by
bisection. The layers kept are listed in the artefact's notes and written as a qtable
beside the bmodel. On BM1684X each rung is tried with symmetric INT8 first, then with
asymmetric activations (zero points: ~6% slower on the chip by the compiler's estimate,
but on NanoDet worst cosine 0.989 instead of 0.984 with the heads in F16); BM1684 has
symmetric INT8 only. Job options: ``mixed_precision=off`` keeps everything INT8 (still
checked and reported); ``qtable=PATH`` uses the user's own TPU-MLIR qtable instead;
``calibration=percentile|kl|mse|max`` picks run_calibration's range method (default
percentile: closest to FP32 on NanoDet); ``asymmetric=auto|true|false``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from oko.core.errors import ConfigError
from oko.port import tpu_mlir
from oko.port.base import PortArtifact, PortJob, PortTarget
from oko.port.tpu_mlir import CompileError

log = logging.getLogger(__name__)

ESTIMATE_SOURCE = "TPU-MLIR compiler profile (estimate)"
# INT8 targets (job options min_cosine / min_euclidean; oko port's INT8 thresholds)
DEFAULT_MIN_COSINE = 0.99
DEFAULT_MIN_EUCLIDEAN = 0.80
# The search aims this much above the targets: it checks only a few held-out samples,
# with TPU-MLIR's interpreter, which is close to but not bit-exact with the chip.
COSINE_MARGIN = 0.002
EUCLIDEAN_MARGIN = 0.02
TASK_MARGIN = 0.01  # detection agreement on a few samples is noisy (YOLOv8n: 0.958 -> 0.949)
EVAL_SAMPLES = 8
BISECTION_STEPS = 4


# ------------------------------------------------------------------------- graph fixes


def fold_neg_inf_pads(onnx_path: Path, out_path: Path) -> list[str]:
    """Fold ``Pad(value=-inf) -> MaxPool`` into the MaxPool's own pads (exact: MaxPool
    pads with -inf). Models converted from TensorFlow carry this pattern, and its -inf
    makes TPU-MLIR's calibration range infinite, which crashes INT8 lowering.

    Writes ``out_path`` and returns the folded Pad names when anything changed.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    folded = []
    for node in list(graph.node):
        if node.op_type != "Pad" or len(node.input) < 3 or node.output[0] in graph_outputs:
            continue
        mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"),
                    b"constant")
        pads_init, value_init = inits.get(node.input[1]), inits.get(node.input[2])
        if mode != b"constant" or pads_init is None or value_init is None:
            continue
        pads, value = numpy_helper.to_array(pads_init), numpy_helper.to_array(value_init)
        users = consumers.get(node.output[0], [])
        rank = len(pads) // 2
        if (not np.all(np.isneginf(value)) or not users or rank < 3
                or any(u.op_type != "MaxPool" for u in users)
                or any(pads[:2]) or any(pads[rank:rank + 2])):
            continue
        spatial = [int(p) for p in (*pads[2:rank], *pads[rank + 2:])]
        for user in users:
            attrs = {a.name: helper.get_attribute_value(a) for a in user.attribute}
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                break
        else:
            for user in users:
                old = [a for a in user.attribute if a.name == "pads"]
                base = list(helper.get_attribute_value(old[0])) if old else [0] * len(spatial)
                for a in old:
                    user.attribute.remove(a)
                user.attribute.append(helper.make_attribute(
                    "pads", [int(a) + b for a, b in zip(base, spatial, strict=True)]))
                user.input[0] = node.input[0]
            graph.node.remove(node)
            folded.append(node.name or node.output[0])
    if folded:
        used = {name for n in graph.node for name in n.input}
        for init in list(graph.initializer):
            if init.name not in used:
                graph.initializer.remove(init)
        onnx.save(model, str(out_path))
    return folded


# -------------------------------------------------------------------------- fidelity


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(cosine, euclidean similarity) as TPU-MLIR and oko report them."""
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    cos = float(x @ y / (nx * ny)) if nx > 0 and ny > 0 else float(nx == ny)
    mid = np.linalg.norm((x + y) / 2)
    euc = float(1 - np.linalg.norm(x - y) / mid) if mid > 0 else float(nx == ny)
    return cos, euc


@dataclass
class Trial:
    """One INT8 configuration tried: which layers stayed in float, and how it scored."""

    label: str
    layers: list[str]
    types: dict[str, str] = field(default_factory=dict)  # layer -> mode when not the default
    asymmetric: bool = False  # INT8 with zero points (BM1684X only)
    task: float | None = None  # the job's task metric vs FP32 (None: not checked)
    cosine: dict[str, float] = field(default_factory=dict)  # output -> worst over samples
    euclid: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return min(self.cosine.values()) if self.cosine else -1.0

    @property
    def worst_euclid(self) -> float:
        return min(self.euclid.values()) if self.euclid else -1.0

    def meets(self, cosine: float, euclid: float, task: float = 0.0) -> bool:
        return (self.worst >= cosine and self.worst_euclid >= euclid
                and (self.task is None or self.task >= task))

    def summary(self) -> dict[str, object]:
        return {"label": self.label, "float_layers": len(self.layers),
                "asymmetric": self.asymmetric, "task": self.task,
                "min_cosine": {k: round(v, 5) for k, v in self.cosine.items()},
                "min_euclid": {k: round(v, 5) for k, v in self.euclid.items()}}


def _closeness(trial: Trial) -> tuple[float, float, float]:
    """Sort key: how close a trial came (task metric first, then cosine, then euclidean)."""
    return (round(trial.task, 3) if trial.task is not None else 1.0, round(trial.worst, 4),
            round(trial.worst_euclid, 3))


# --------------------------------------------------------------------------- targets


class SophonTarget(PortTarget):
    """A Sophon chip; subclasses name it, its precisions and its higher float type."""

    chip: ClassVar[str]
    float_type: ClassVar[str]  # precision of layers kept out of INT8

    def check_available(self) -> None:
        tpu_mlir.check_host()

    def check_precision(self, precision: str) -> None:
        if precision == "f16" and "f16" not in self.precisions:
            raise ConfigError(f"target {self.name} has no f16 precision: the "
                              f"{self.chip.upper()} has no FP16 units",
                              "choose f32 or int8 (int8 keeps sensitive layers in F32)")
        super().check_precision(precision)

    def compile(self, job: PortJob) -> PortArtifact:
        self.check_precision(job.precision)
        int8_plan = _int8_plan(job.options) if job.precision == "int8" else None
        if job.precision == "int8":
            _calibration_plan(job.options, self.chip)  # bad options fail before any work
        timings: dict[str, float] = {}
        started = time.monotonic()
        job.stage("toolchain")
        tc = tpu_mlir.ensure_toolchain(job.log, job.stage)
        timings["toolchain_s"] = time.monotonic() - started

        work = Path(job.work_dir)
        logs = work / "logs"
        name = re.sub(r"\W+", "_", job.model_name).strip("_") or "model"
        notes: list[str] = []
        onnx_path = Path(job.onnx_path)
        folded = fold_neg_inf_pads(onnx_path, work / f"{name}_tpu.onnx")
        if folded:
            onnx_path = work / f"{name}_tpu.onnx"
            notes.append(f"folded Pad(-inf) into the next MaxPool: {', '.join(folded)}")

        mlir_dir = work / "mlir"
        mlir_dir.mkdir(parents=True, exist_ok=True)
        shapes = [job.input_shapes[n] for n in job.input_names]
        job.stage("model_transform")
        t0 = time.monotonic()
        mlir = tpu_mlir.transform(tc, onnx_path, name, shapes, mlir_dir,
                                  logs / "model_transform.log")
        timings["transform_s"] = time.monotonic() - t0
        job.log(f"model_transform: {mlir.name} in {timings['transform_s']:.1f} s")

        bmodel = work / f"{name}_{self.chip}_{job.precision}.bmodel"
        extra: dict[str, object] = {"chip": self.chip, "timings_s": timings}
        if job.precision == "int8":
            self._compile_int8(job, tc, mlir, onnx_path, bmodel, timings, notes, extra,
                               int8_plan)
        else:
            job.stage(f"model_deploy {job.precision.upper()}")
            t0 = time.monotonic()
            tpu_mlir.deploy(tc, mlir, job.precision.upper(), self.chip, bmodel,
                            logs / "model_deploy.log")
            timings["deploy_s"] = time.monotonic() - t0
        estimated = tpu_mlir.predicted_ms(mlir_dir)
        timings["total_s"] = time.monotonic() - started
        for key, value in timings.items():
            timings[key] = round(value, 2)
        job.log(f"{bmodel.name}: predicted {estimated} ms on {self.chip.upper()}; "
                f"timings {timings}")
        return PortArtifact(
            path=bmodel,
            engine={"kind": "sophon", "chip": self.chip,
                    "input_names": list(job.input_names),
                    "output_names": list(job.output_names)},
            estimated_ms=estimated,
            estimate_source=ESTIMATE_SOURCE if estimated is not None else "",
            notes=notes, extra=extra)

    # ---------------------------------------------------------------------- INT8

    def _compile_int8(self, job: PortJob, tc: tpu_mlir.Toolchain, mlir: Path, onnx_path: Path,
                      bmodel: Path, timings: dict[str, float], notes: list[str],
                      extra: dict[str, object], plan: tuple[str, Path | None]) -> None:
        logs = Path(job.work_dir) / "logs"
        samples = self._write_samples(job, mlir.parent / "calibration")
        calib, held_out = split_samples(samples)
        method, asymmetric = _calibration_plan(job.options, self.chip)
        job.stage(f"run_calibration ({len(calib)} samples, {method})")
        t0 = time.monotonic()
        table = tpu_mlir.calibrate(tc, mlir, calib, mlir.parent, logs / "run_calibration.log",
                                   method)
        timings["calibration_s"] = time.monotonic() - t0
        job.log(f"run_calibration: {len(calib)} samples in {timings['calibration_s']:.1f} s")

        t0 = time.monotonic()
        min_cos = float(job.options.get("min_cosine", DEFAULT_MIN_COSINE))
        min_euc = float(job.options.get("min_euclidean", DEFAULT_MIN_EUCLIDEAN))
        search = MixedPrecisionSearch(
            tc, mlir, table, self.chip, self.float_type, held_out,
            _onnx_outputs(onnx_path, held_out, job.output_names), list(job.output_names),
            logs / "int8_search.log", job, _calibration_indices(job, held_out))
        mode, user_qtable = plan
        if user_qtable is not None:
            chosen = search.trial(f"qtable {user_qtable.name}", *_read_qtable(user_qtable),
                                  asymmetric=asymmetric is True)
        elif mode == "off":
            chosen = search.trial("pure INT8 (mixed precision off)", [],
                                  asymmetric=asymmetric is True)
        else:
            chosen = search.run(job.family, min(min_cos + COSINE_MARGIN, (1 + min_cos) / 2),
                                min(min_euc + EUCLIDEAN_MARGIN, (1 + min_euc) / 2),
                                [False, True] if asymmetric is None else [asymmetric],
                                min(job.task_target + TASK_MARGIN, 1.0))
        timings["mixed_precision_search_s"] = time.monotonic() - t0
        qtable = None
        if chosen.layers:
            qtable = bmodel.with_suffix(".qtable")
            qtable.write_text(
                f"# op_name quantize_mode: layers oko kept out of INT8 ({chosen.label})\n"
                + "".join(f"{n} {chosen.types.get(n, self.float_type)}\n"
                          for n in chosen.layers))
        job.stage("model_deploy INT8" + (" (mixed precision)" if qtable else ""))
        t0 = time.monotonic()
        tpu_mlir.deploy(tc, mlir, "INT8", self.chip, bmodel, logs / "model_deploy.log",
                        calibration_table=table, qtable=qtable,
                        extra_args=["--asymmetric"] if chosen.asymmetric else [])
        timings["deploy_s"] = time.monotonic() - t0
        extra["calibration_method"] = method
        extra["calibration_table"] = str(table)
        extra["asymmetric"] = chosen.asymmetric
        notes.append(f"INT8 {'asymmetric' if chosen.asymmetric else 'symmetric'} activations, "
                     f"ranges from {method} calibration on {len(calib)} samples")

        extra["int8_search"] = [t.summary() for t in search.trials]
        extra["float_layers"] = list(chosen.layers)
        extra["float_type"] = self.float_type
        if qtable is not None:
            extra["qtable"] = str(qtable)
        total = len(search.graph.op_type)
        if chosen.layers:
            listed = ", ".join(chosen.layers[:10])
            more = f" and {len(chosen.layers) - 10} more" if len(chosen.layers) > 10 else ""
            kinds = "/".join(sorted({chosen.types.get(n, self.float_type)
                                     for n in chosen.layers}))
            notes.append(f"mixed precision ({chosen.label}): {len(chosen.layers)} of {total} "
                         f"layers kept in {kinds}: {listed}{more}")
        else:
            notes.append(f"all {total} layers INT8: every output met the targets without "
                         "mixed precision")
        scores = ", ".join(f"{k} {v:.4f}/{chosen.euclid[k]:.3f}" for k, v in chosen.cosine.items())
        task = f"; task metric {chosen.task:.3f}" if chosen.task is not None else ""
        notes.append(f"INT8 check on {len(held_out)} held-out calibration samples (TPU-MLIR "
                     f"CPU interpreter vs ONNX Runtime FP32), worst cosine/euclidean similarity "
                     f"per output: {scores}{task}")
        if not chosen.meets(min_cos, min_euc):
            notes.append(f"INT8 targets (cosine {min_cos}, euclidean {min_euc}) not reached "
                         f"even with {len(chosen.layers)} layers in {self.float_type} (worst "
                         f"cosine {chosen.worst:.4f}); consider --precision "
                         f"{'f16' if 'f16' in self.precisions else 'f32'}")

    def _write_samples(self, job: PortJob, folder: Path) -> list[Path]:
        """One .npz per calibration sample, each with the compiled batch size."""
        if not job.calibration:
            raise CompileError(f"int8 for {self.chip} needs calibration data",
                               "give calibration images or a video")
        missing = [n for n in job.input_names if n not in job.calibration]
        if missing:
            raise CompileError(f"calibration data has no tensor for input(s) {missing}")
        folder.mkdir(parents=True, exist_ok=True)
        batch = {n: int(job.input_shapes[n][0]) if job.input_shapes[n] else 1
                 for n in job.input_names}
        count = min(len(job.calibration[n]) for n in job.input_names)
        groups = max(1, count // max(batch.values()))
        paths = []
        for g in range(groups):
            arrays = {}
            for n in job.input_names:
                data = np.asarray(job.calibration[n])
                idx = [(g * batch[n] + k) % len(data) for k in range(batch[n])]
                arrays[n] = np.ascontiguousarray(data[idx], dtype=np.float32).reshape(
                    job.input_shapes[n])
            path = folder / f"sample_{g:04d}.npz"
            np.savez(path, **arrays)
            paths.append(path)
        return paths


def _calibration_indices(job: PortJob, samples: Sequence[Path]) -> list[int] | None:
    """Which calibration tensors the sample files hold (batch-1 models only)."""
    if any((job.input_shapes[n][:1] or (1,))[0] != 1 for n in job.input_names):
        return None
    return [int(p.stem.rsplit("_", 1)[1]) for p in samples]


def _calibration_plan(options: dict, chip: str) -> tuple[str, bool | None]:
    """(range method, asymmetric: True/False, or None to let the search choose)."""
    method = str(options.get("calibration", "percentile")).lower()
    if method not in tpu_mlir.CALIBRATION_METHODS:
        raise ConfigError(f"option calibration={options['calibration']!r}",
                          f"use one of {', '.join(tpu_mlir.CALIBRATION_METHODS)}")
    raw = str(options.get("asymmetric", "auto")).lower()
    asym = {"auto": None, "true": True, "yes": True, "1": True, "false": False, "no": False,
            "0": False}.get(raw, "bad")
    if asym == "bad":
        raise ConfigError(f"option asymmetric={options['asymmetric']!r}", "use auto, true or false")
    if chip != "bm1684x":
        if asym is True:
            raise ConfigError(f"option asymmetric=true: {chip.upper()} has symmetric INT8 only")
        asym = False  # TPU-MLIR refuses asymmetric INT8 for BM1684
    return method, asym


def _int8_plan(options: dict) -> tuple[str, Path | None]:
    """("auto" | "off", user qtable) from the job options, checked before any work."""
    mode = str(options.get("mixed_precision", "auto")).lower()
    mode = {"false": "off", "no": "off", "0": "off", "true": "auto", "yes": "auto",
            "1": "auto"}.get(mode, mode)
    if mode not in ("auto", "off"):
        raise ConfigError(f"option mixed_precision={options['mixed_precision']!r}",
                          "use auto or off")
    qtable = Path(options["qtable"]) if options.get("qtable") else None
    if qtable is not None:
        _read_qtable(qtable)
    for key in ("min_cosine", "min_euclidean"):
        if key in options:
            try:
                value = float(options[key])
            except (TypeError, ValueError):
                value = -1.0
            if not 0 < value <= 1:
                raise ConfigError(f"option {key}={options[key]!r}", "a number in (0, 1]")
    return mode, qtable


def _read_qtable(path: str | Path) -> tuple[list[str], dict[str, str]]:
    """Layer names and modes of a TPU-MLIR qtable ("op_name mode" lines, # comments)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"option qtable={path}: cannot read it ({exc.strerror})") from exc
    layers, types = [], {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            layers.append(parts[0])
            types[parts[0]] = parts[1].upper()
    if not layers:
        raise ConfigError(f"option qtable={path}: no 'op_name mode' lines")
    return layers, types


def split_samples(samples: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(calibration, held-out check) samples: every 4th sample (at most EVAL_SAMPLES) is
    held out when there are at least 12; fewer are all used for both."""
    samples = list(samples)
    if len(samples) >= 12:
        held = samples[3::4][:EVAL_SAMPLES]
        return [p for p in samples if p not in held], held
    picks = np.unique(np.linspace(0, len(samples) - 1, min(EVAL_SAMPLES, len(samples)))
                      .round().astype(int))
    return samples, [samples[i] for i in picks]


class MixedPrecisionSearch:
    """Find a small set of layers to keep in float so every output meets the target.

    Each trial lowers the model to a quantised tpu .mlir (no bmodel) and runs it on CPU
    with TPU-MLIR's interpreter (bit-exact with the chip, ~100x faster than the
    simulator), comparing each output with ONNX Runtime FP32. Rungs: pure INT8; the
    model's head (YOLO: its last ``/model.N/`` block; any model: the ops after the last
    convolution of each output and that convolution); then the head plus the first
    fraction f of the network, f found by bisection (quantisation error of early layers
    spreads to every output); finally everything in float.
    """

    def __init__(self, tc: tpu_mlir.Toolchain, mlir: Path, table: Path, chip: str,
                 float_type: str, samples: list[Path], references: list[list[np.ndarray]],
                 output_names: list[str], log_path: Path, job: PortJob,
                 sample_indices: list[int] | None = None) -> None:
        """``sample_indices``: calibration indices of ``samples`` for ``job.task_check``."""
        self.tc, self.mlir, self.table, self.chip = tc, mlir, table, chip
        self.sample_indices = sample_indices
        self.float_type, self.samples, self.references = float_type, samples, references
        self.output_names, self.log_path, self.job = output_names, log_path, job
        self.graph = tpu_mlir.MlirGraph.parse(mlir.read_text())
        self.trials: list[Trial] = []

    def run(self, family: str, cosine: float, euclid: float,
            asymmetric: Sequence[bool] = (False,), task: float = 0.0) -> Trial:
        """``asymmetric``: the INT8 modes to try (symmetric first: cheaper on the chip);
        ``task``: the least task metric (when the job can check one)."""
        ops = list(self.graph.op_type)
        head = self.graph.head(depth=1)
        if family.lower().startswith("yolo") and self.graph.module_block():
            head = self._ordered([*self.graph.module_block(), *self.graph.head(depth=0)])
        label_head = "YOLO head block" if family.lower().startswith("yolo") else "output heads"
        head_trials = []
        for label, layers in (("pure INT8", []), (label_head, head)):
            for asym in asymmetric:
                trial = self.trial(label + (", asymmetric" if asym else ""), layers,
                                   asymmetric=asym)
                if trial.meets(cosine, euclid, task):
                    return trial
                if layers:
                    head_trials.append(trial)
        # Go on in the mode whose head trial came closest.
        asym = max(head_trials, key=_closeness).asymmetric
        suffix = ", asymmetric" if asym else ""
        passed: Trial | None = None
        lo, hi = 0.0, 1.0
        for _ in range(BISECTION_STEPS):
            frac = (lo + hi) / 2
            count = round(frac * len(ops))
            trial = self.trial(f"{label_head} + first {count} of {len(ops)} layers{suffix}",
                               self._ordered([*ops[:count], *head]), asymmetric=asym)
            if trial.meets(cosine, euclid, task):
                passed, hi = trial, frac
            else:
                lo = frac
        if passed is not None:
            return passed
        everything = self.trial("all layers in float", ops)  # mode irrelevant: nothing INT8
        return everything if everything.meets(cosine, euclid, task) else self.best()

    def best(self) -> Trial:
        return max(self.trials, key=lambda t: (*_closeness(t), -len(t.layers)))

    def trial(self, label: str, layers: list[str], types: dict[str, str] | None = None,
              asymmetric: bool = False) -> Trial:
        """Score INT8 with ``layers`` in float (``types``: per-layer mode, default F16/F32)."""
        for done in self.trials:
            if (done.layers == layers and done.types == (types or {})
                    and done.asymmetric == asymmetric):
                return done
        self.job.stage(f"INT8 check: {label}")
        trial = Trial(label, layers, types=dict(types or {}), asymmetric=asymmetric)
        qtable = None
        if layers:
            qtable = self.mlir.parent / f"{self.mlir.stem}_trial_qtable"
            qtable.write_text("".join(f"{n} {trial.types.get(n, self.float_type)}\n"
                                      for n in layers))
        tpu = tpu_mlir.deploy(self.tc, self.mlir, "INT8", self.chip,
                              self.mlir.parent / "trial.bmodel", self.log_path,
                              calibration_table=self.table, qtable=qtable, tpu_mlir_only=True,
                              extra_args=["--asymmetric"] if asymmetric else [])
        outputs = tpu_mlir.run_mlir(self.tc, tpu, self.samples, self.mlir.parent,
                                    self.log_path)
        for k, name in enumerate(self.output_names):
            sims = [similarity(got[k].reshape(ref[k].shape), ref[k])
                    for got, ref in zip(outputs, self.references, strict=True)]
            trial.cosine[name] = min(s[0] for s in sims)
            trial.euclid[name] = min(s[1] for s in sims)
        if self.job.task_check is not None and self.sample_indices is not None:
            named = [dict(zip(self.output_names, (g.reshape(r.shape) for g, r in
                                                  zip(got, ref, strict=True)), strict=True))
                     for got, ref in zip(outputs, self.references, strict=True)]
            refs = [dict(zip(self.output_names, ref, strict=True)) for ref in self.references]
            trial.task = self.job.task_check(refs, named, self.sample_indices)
        self.trials.append(trial)
        task = f", task metric {trial.task:.3f}" if trial.task is not None else ""
        self.job.log(f"INT8 {label}: {len(layers)} layers in {self.float_type}, worst cosine "
                     f"{trial.worst:.4f} ({min(trial.cosine, key=trial.cosine.get)}), worst "
                     f"euclidean similarity {trial.worst_euclid:.3f}{task}")
        return trial

    def _ordered(self, names: Iterable[str]) -> list[str]:
        wanted = set(names)
        return [n for n in self.graph.op_type if n in wanted]


def _onnx_outputs(onnx_path: Path, samples: Sequence[Path],
                  output_names: Sequence[str]) -> list[list[np.ndarray]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    results = []
    for path in samples:
        with np.load(path) as data:
            feeds = {n: data[n] for n in names}
        results.append(session.run(list(output_names), feeds))
    return results


class BM1684XTarget(SophonTarget):
    name = "bm1684x"
    chip = "bm1684x"
    precisions = ("f32", "f16", "int8")
    float_type = "F16"
    description = "Sophon BM1684X TPU (SE7, SE9 boxes; AIBOX): .bmodel through TPU-MLIR"


class BM1684Target(SophonTarget):
    name = "bm1684"
    chip = "bm1684"
    precisions = ("f32", "int8")  # BM1684 has no F16 units
    float_type = "F32"
    description = "Sophon BM1684 TPU (SE5 boxes): .bmodel through TPU-MLIR"
