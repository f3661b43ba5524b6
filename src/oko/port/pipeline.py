"""`oko port MODEL --target T --precision P --out DIR`.

Stages: prepare (check, fix shapes, simplify) -> calibration set -> compile -> validate
against ONNX Runtime FP32 -> write DIR (artefact, manifest pointing to it, report.json,
report.md). Everything is built in a temporary folder beside DIR and moved into place at
the end, so a failure leaves nothing half-written. A port below the fidelity thresholds
is moved to ``DIR.rejected`` instead (for inspection) and the command fails, unless
``accept_loss``.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from oko.core.errors import ConfigError, OkoError
from oko.engines import create_engine
from oko.engines.base import Engine
from oko.models.adapter import DetectionAdapter
from oko.models.manifest import InputSpec, Layout, Manifest, Task
from oko.models.zoo import resolve_model
from oko.faces import detect as _face_detect  # noqa: F401  (face detector families)
from oko.port import fidelity
from oko.port.base import PortArtifact, PortJob, get_target
from oko.port.calibration import make_tensors, sample_images, split
from oko.port.onnx_prep import PreparedOnnx, parse_input_shapes, prepare_onnx
from oko.port.report import DEFAULT_THRESHOLDS, PortReport, Thresholds

log = logging.getLogger(__name__)

DEFAULT_VALIDATION = Path(__file__).resolve().parent.parent / "data" / "samples" / "vtest.mp4"


class PortFidelityError(OkoError):
    """The compiled model is further from FP32 than the thresholds allow."""


@dataclass
class PortRequest:
    model: str
    target: str
    precision: str
    out: Path
    calib: Path | None = None
    calib_count: int = 64
    val: Path | None = None
    val_count: int = 16
    input_shapes: list[str] = field(default_factory=list)
    min_cosine: float | None = None
    min_euclidean: float | None = None
    min_task: float | None = None
    accept_loss: bool = False
    overwrite: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class StageClock:
    """Shows each stage with a spinner and records its duration."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}
        self._status = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        with self.console.status(f"[bold]{name}[/] ...") as status:
            self._status = status
            yield
        self._status = None
        self.seconds[name] = time.perf_counter() - start
        self.console.print(f"[green]done[/] {name} ({self.seconds[name]:.1f} s)")

    def sub(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"[bold]{text}[/] ...")


def _manifest_for(model: str) -> Manifest | None:
    """The model's manifest, or None for a bare ONNX file oko knows nothing about."""
    try:
        return resolve_model(model)
    except ConfigError as exc:
        if "no manifest beside this model" in str(exc):
            return None
        raise


def _generic_input(shape: tuple[int, ...]) -> InputSpec:
    """For a bare ONNX: stretch, RGB, 0-1 (documented); layout from where the 3 is."""
    if len(shape) != 4:
        raise ConfigError(f"input shape {shape}: oko can only feed 4-D image inputs without a "
                          "manifest", "write a manifest beside the model (docs/models.md)")
    nchw = shape[1] in (1, 3)
    h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    return InputSpec(width=w, height=h, layout=Layout.NCHW if nchw else Layout.NHWC,
                     resize="stretch")


def _median_ms(engine: Engine, feeds: dict[str, np.ndarray], runs: int) -> float:
    engine.run(feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.run(feeds)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _run_each(engine: Engine, name: str, tensors: np.ndarray) -> list[dict[str, np.ndarray]]:
    return [engine.run({name: tensors[i:i + 1]}) for i in range(len(tensors))]


def port_model(req: PortRequest, console: Console | None = None) -> PortReport:
    console = console or Console(stderr=True)
    target = get_target(req.target)
    target.check_precision(req.precision)
    target.check_available()
    out = req.out.resolve()
    if out.exists() and any(out.iterdir()) and not req.overwrite:
        raise ConfigError(f"{out}: output folder exists and is not empty", "use --overwrite")
    if req.precision == "int8" and req.calib is None:
        raise ConfigError("--calib is required for int8: a folder of images or a video "
                          "like the scenes the model will see")
    manifest = _manifest_for(req.model)
    source_onnx = manifest.model_path if manifest is not None else Path(req.model).resolve()
    if source_onnx.suffix.lower() != ".onnx":
        raise ConfigError(f"{source_onnx}: oko port takes ONNX models")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    clock = StageClock(console)
    try:
        return _port(req, target, manifest, source_onnx, work, out, clock, console)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _port(req: PortRequest, target, manifest: Manifest | None, source_onnx: Path, work: Path,
          out: Path, clock: StageClock, console: Console) -> PortReport:
    shapes = parse_input_shapes(req.input_shapes)
    default_shape = None
    if manifest is not None:
        spec = manifest.input
        default_shape = ((1, 3, spec.height, spec.width) if spec.layout == Layout.NCHW
                         else (1, spec.height, spec.width, 3))
    with clock.stage("prepare ONNX"):
        prepared = prepare_onnx(source_onnx, work / "prepared.onnx", shapes, default_shape)
    input_name = prepared.input_names[0]
    spec = manifest.input if manifest is not None else _generic_input(prepared.input_shapes[input_name])

    with clock.stage("calibration set"):
        calib_images: list[np.ndarray] = []
        if req.calib is not None:
            calib_images, calib_names = sample_images(req.calib, req.calib_count)
        if req.val is not None:
            val_images, val_names = sample_images(req.val, req.val_count)
            val_source = str(req.val)
        elif calib_images:
            calib_idx, val_idx = split(len(calib_images))
            val_images = [calib_images[i] for i in val_idx]
            calib_images = [calib_images[i] for i in calib_idx]
            val_source = f"{req.calib} (held-out split)"
        else:
            val_images, _ = sample_images(DEFAULT_VALIDATION, req.val_count)
            val_source = f"{DEFAULT_VALIDATION.name} (bundled sample; pass --val for your scenes)"
        calib_tensors, calib_geoms = (make_tensors(calib_images, spec) if calib_images
                                      else (None, []))
        val_tensors, val_geoms = make_tensors(val_images, spec)

    job = PortJob(
        onnx_path=prepared.path, model_name=manifest.name if manifest else source_onnx.stem,
        precision=req.precision, input_names=prepared.input_names,
        input_shapes=prepared.input_shapes, output_names=prepared.output_names,
        calibration={input_name: calib_tensors} if calib_tensors is not None else {},
        work_dir=work / "build", mean=tuple(spec.mean), scale=tuple(1 / s for s in spec.std),
        pixel_format=spec.color.value.lower(), family=manifest.family if manifest else "",
        options=req.options, log=lambda line: log.info("%s", line), stage=clock.sub,
        task_check=_calibration_task_check(manifest, prepared, calib_geoms),
        task_target=_task_threshold(req, manifest))
    job.work_dir.mkdir()
    with clock.stage(f"compile for {req.target} {req.precision}"):
        artifact = target.compile(job)

    with clock.stage("validate against ONNX Runtime FP32"):
        report = _validate(req, manifest, prepared, artifact, val_tensors, val_geoms, clock)
        report.validation = {"source": val_source, "samples": len(val_images)}
        report.calibration = {"source": str(req.calib) if req.calib else None,
                              "samples": len(calib_images)}

    report.stage_seconds = dict(clock.seconds)
    report.check()
    publish = work / "out"
    publish.mkdir()
    shutil.copy2(artifact.path, publish / artifact.path.name)
    for extra in artifact.extra.get("files", []):  # e.g. OpenVINO's .bin beside the .xml
        shutil.copy2(extra, publish / Path(extra).name)
    if manifest is not None:
        _copy_model_companions(manifest, publish)
    new_manifest = _ported_manifest(manifest, source_onnx, artifact, req, prepared)
    (publish / "manifest.yaml").write_text(new_manifest)
    report.write(publish)
    if out.exists():
        shutil.rmtree(out)
    if report.passed or req.accept_loss:
        publish.rename(out)
        return report
    rejected = out.with_name(out.name + ".rejected")
    shutil.rmtree(rejected, ignore_errors=True)
    publish.rename(rejected)
    raise PortFidelityError(
        f"port below fidelity thresholds: {'; '.join(report.failures)}",
        f"report in {rejected}; pass --accept-loss to keep it anyway")


def _validate(req: PortRequest, manifest: Manifest | None, prepared: PreparedOnnx,
              artifact: PortArtifact, val_tensors: np.ndarray, val_geoms: list,
              clock: StageClock) -> PortReport:
    input_name = prepared.input_names[0]
    shape = prepared.input_shapes[input_name]
    clock.sub("ONNX Runtime FP32 reference")
    reference_engine = create_engine(prepared.path, "onnxruntime", {input_name: shape})
    clock.sub(f"{artifact.engine.get('kind')} engine on the compiled model")
    candidate_engine = create_engine(artifact.path, artifact.engine, {input_name: shape})
    reference = _run_each(reference_engine, input_name, val_tensors)
    candidate_raw = _run_each(candidate_engine, input_name, val_tensors)
    candidate = [fidelity.align_outputs(r, c) for r, c in zip(reference, candidate_raw, strict=True)]
    outputs = fidelity.compare_outputs(reference, candidate)
    task = _task_fidelity(manifest, reference_engine, reference, candidate, val_geoms)

    runs = 1 if artifact.engine.get("kind") == "sophon" else 20  # the simulator is slow
    feeds = {input_name: val_tensors[:1]}
    speed: dict[str, Any] = {
        "fp32_host_ms": _median_ms(reference_engine, feeds, 20),
        "host_ms": _median_ms(candidate_engine, feeds, runs),
        "estimated_ms": artifact.estimated_ms, "estimate_source": artifact.estimate_source,
    }
    if artifact.engine.get("kind") == "sophon":
        speed["host_note"] = "the TPU-MLIR cmodel simulator on this CPU, not the chip's speed"
    else:
        speed["speedup_vs_fp32"] = speed["fp32_host_ms"] / speed["host_ms"]
    t = DEFAULT_THRESHOLDS[req.precision]
    thresholds = Thresholds(req.min_cosine if req.min_cosine is not None else t.min_cosine,
                            req.min_euclidean if req.min_euclidean is not None else t.min_euclidean,
                            _task_threshold(req, manifest))
    return PortReport(
        model=manifest.name if manifest else prepared.path.stem, source=str(req.model),
        target=req.target, precision=req.precision, artefact=artifact.path.name,
        size_mb=sum(Path(p).stat().st_size for p in [artifact.path, *artifact.extra.get("files", [])])
        / 1e6, engine=artifact.engine,
        input_shapes={k: list(v) for k, v in prepared.input_shapes.items()},
        calibration={}, validation={}, outputs=outputs, task=task, thresholds=thresholds,
        stage_seconds={}, speed=speed, notes=list(artifact.notes))


def _copy_model_companions(manifest: Manifest, publish: Path) -> None:
    """Files the model folder holds besides the model and its manifest (a recogniser's
    dictionary, licence texts): the ported manifest refers to them by the same names."""
    folder = manifest.model_path.parent
    if not (folder / "manifest.yaml").is_file():
        return  # a bare ONNX file: nothing belongs to it
    for path in folder.iterdir():
        if (path.is_file() and path.name != "manifest.yaml" and path != manifest.model_path
                and path.suffix not in (".onnx", ".bmodel", ".xml", ".bin")
                and not (publish / path.name).exists()):
            shutil.copy2(path, publish / path.name)


def _task_threshold(req: PortRequest, manifest: Manifest | None) -> float:
    """--min-task, else the precision's default (classifiers: at least 0.98 top-1)."""
    if req.min_task is not None:
        return req.min_task
    default = DEFAULT_THRESHOLDS[req.precision].min_task
    return max(default, 0.98) if manifest is not None and manifest.task == Task.CLASSIFY else default


def _calibration_task_check(manifest: Manifest | None, prepared: PreparedOnnx, geoms: list):
    """The job's ``task_check``: task metric of outputs of calibration samples by index."""
    if manifest is None or not geoms:
        return None
    reference_engine: Engine | None = None

    def check(reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]],
              indices: list[int]) -> float | None:
        nonlocal reference_engine
        if reference_engine is None:  # built on first use: only searching targets need it
            name = prepared.input_names[0]
            reference_engine = create_engine(prepared.path, "onnxruntime",
                                             {name: prepared.input_shapes[name]})
        task = _task_fidelity(manifest, reference_engine, reference, candidate,
                              [geoms[i] for i in indices])
        return task.value if task is not None else None

    return check


def _task_fidelity(manifest: Manifest | None, reference_engine: Engine,
                   reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]],
                   geoms: list) -> fidelity.TaskFidelity | None:
    if manifest is None:
        return None
    first = list(reference[0])[0]
    if manifest.task == Task.DETECT:
        from oko.models.adapter import adapter_for

        adapter: DetectionAdapter = adapter_for(manifest, reference_engine.inputs(),
                                                reference_engine.outputs())
        ref = [adapter.postprocess(o, [g])[0] for o, g in zip(reference, geoms, strict=True)]
        cand = [adapter.postprocess(o, [g])[0] for o, g in zip(candidate, geoms, strict=True)]
        return fidelity.detection_agreement(ref, cand)
    if manifest.task == Task.CLASSIFY:
        return fidelity.top1_agreement([r[first] for r in reference], [c[first] for c in candidate])
    if manifest.task == Task.EMBED:
        return fidelity.embedding_agreement([r[first] for r in reference],
                                            [c[first] for c in candidate])
    if manifest.task == Task.SEGMENT:
        return fidelity.miou_agreement([r[first] for r in reference], [c[first] for c in candidate])
    return None


def _ported_manifest(manifest: Manifest | None, source_onnx: Path, artifact: PortArtifact,
                     req: PortRequest, prepared: PreparedOnnx) -> str:
    import yaml

    provenance = {"tool": "oko port", "source": str(source_onnx), "target": req.target,
                  "precision": req.precision, "notes": artifact.notes}
    if manifest is not None:
        data = manifest.model_dump(mode="json", exclude={"path"})
        data["name"] = f"{manifest.name}-{req.target}-{req.precision}"
    else:
        shape = prepared.input_shapes[prepared.input_names[0]]
        spec = _generic_input(shape)
        data = {"name": f"{source_onnx.stem}-{req.target}-{req.precision}", "task": "classify",
                "family": "none", "input": spec.model_dump(mode="json")}
    data["file"] = artifact.path.name
    data["engine"] = artifact.engine
    data["provenance"] = provenance
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
