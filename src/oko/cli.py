"""The `oko` command line. User errors print one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from oko.core.errors import OkoError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="oko: edge video analytics on CPU, GPU and Sophon TPU.")
models_app = typer.Typer(no_args_is_help=True, help="The model zoo.")
app.add_typer(models_app, name="models")


def _add_command_groups() -> None:
    # Each group's file keeps its heavy imports inside its commands: `oko --help` stays fast.
    from oko.faces.cli import app as faces_app
    from oko.reid.cli import app as reid_app
    from oko.road.cli import app as road_app
    from oko.server.cli import app as server_app

    app.add_typer(faces_app, name="faces")
    app.add_typer(reid_app, name="reid")
    app.add_typer(road_app, name="road")
    app.add_typer(server_app, name="server")


_add_command_groups()

console = Console(stderr=True)


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="oko: %(levelname)s: %(message)s", stream=sys.stderr)


@app.command()
def analyze(
    path: Annotated[str, typer.Argument(help="Video file, stream URL, image or image folder.")],
    module: Annotated[str, typer.Option(help="Module to run.")] = "detect",
    model: Annotated[str | None, typer.Option(help="Model name or path (module default if unset).")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine name (default: the model's own).")] = None,
    conf: Annotated[float | None, typer.Option(help="Score threshold override.", min=0, max=1)] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after N frames.", min=1)] = None,
    batch: Annotated[int, typer.Option(help="Frames per inference batch.", min=1)] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")] = False,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o",
        help="Module option KEY=VALUE (YAML value), e.g. gallery=faces.db; repeatable.")] = None,
    track: Annotated[bool | None, typer.Option(
        "--track/--no-track", help="Track objects (OC-SORT) and add the module's per-track "
        "events; default: on for modules that need tracks (reid).")] = None,
) -> None:
    """Run a module over a video or images and print what it finds."""
    from oko.analyze import AnalyzeSummary, write_json
    from oko.modules import create_module
    from oko.video import open_source, run_module
    from oko.video.runner import track_results

    options: dict = _parse_options(option)
    if engine is not None:
        options["engine"] = engine
    if model is not None:
        options["model"] = model
    if conf is not None:
        options["conf_threshold"] = conf
    with open_source(path) as source:  # the cheap check first: a wrong path fails fast
        mod = create_module(module, options)
        model_name = mod.model_name
        results = run_module(source, mod, max_frames=max_frames, batch_size=batch)
        if track if track is not None else mod.wants_tracks:
            results = track_results(results, mod)
        labels = list(mod.labels)
        if as_json:
            write_json(sys.stdout, source, module, model_name, results, labels)
            return
        summary = AnalyzeSummary()
        for result in results:
            summary.add(result, labels)
        summary.record_source(source)
    _print_summary(f"{module} on {path} ({model_name})", summary.to_dict())


def _parse_options(items: list[str] | None) -> dict:
    """``--option KEY=VALUE`` items as a dict; values are YAML (true, 0.5, [a, b], text)."""
    import yaml

    options: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--option {item!r}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return options


def _print_summary(title: str, summary: dict) -> None:
    table = Table(title=title, show_header=False)
    table.add_row("frames", str(summary["frames"]))
    if summary["corrupt_frames"]:
        table.add_row("corrupt frames skipped", str(summary["corrupt_frames"]))
    if summary["missing_frames"]:
        table.add_row("frames missing (truncated)", str(summary["missing_frames"]))
    for label, count in summary["detections_per_label"].items():
        table.add_row(f"  {label}", str(count))
    for kind, count in summary.get("events", {}).items():
        table.add_row(f"{kind} events", str(count))
    for stage, ms in summary["ms_per_frame"].items():
        table.add_row(f"{stage} ms/frame", f"{ms:.2f}")
    Console().print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("oko-demo-output"),
    model: Annotated[str | None, typer.Option(help="Detection model name or path.")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine name (default: the model's own).")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after N frames.", min=1)] = None,
    source: Annotated[str | None, typer.Option(help="Another video instead of the sample.")] = None,
) -> None:
    """Count people crossing a line in the bundled sample video; write MP4 and events."""
    from oko.demo import SAMPLE_VIDEO, run_demo

    result = run_demo(out, source or SAMPLE_VIDEO, model=model, engine=engine,
                      max_frames=max_frames)
    ch = result.channel
    table = Table(title=f"oko demo: {ch['frames_processed']} frames at {result.fps:.1f} fps",
                  show_header=False)
    for label, n in sorted(ch["detections_per_label"].items(), key=lambda kv: -kv[1]["detections"]):
        table.add_row(f"  {label}", f"{n['detections']} detections, {n['tracks']} tracks")
    for line in ch.get("analytics", {}).get("lines", []):
        table.add_row(f"line {line['name']}", f"in {line['in']}, out {line['out']}")
    table.add_row("events", str(ch["events"]))
    if ch["corrupt_frames"]:
        table.add_row("corrupt frames skipped", str(ch["corrupt_frames"]))
    Console().print(table)
    Console().print(f"annotated video: [bold]{result.video}[/]\nevents: [bold]{result.events}[/]")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Pipeline config (YAML).")],
    no_api: Annotated[bool, typer.Option("--no-api", help="Do not start the control API.")] = False,
    api_port: Annotated[int | None, typer.Option(help="Override api.port.", min=0, max=65535)] = None,
) -> None:
    """Run a pipeline config: channels, tracking, zones/lines, sinks, control API."""
    from oko.config import load_config
    from oko.run import run_pipeline

    cfg = load_config(config)
    if api_port is not None:
        cfg = cfg.model_copy(update={"api": cfg.api.model_copy(update={"port": api_port})})
    run_pipeline(cfg, Console(stderr=True), api=not no_api)


@app.command()
def count(
    video: Annotated[str, typer.Argument(help="Video file (or stream URL) to count on.")],
    line: Annotated[list[str], typer.Option(help="X1,Y1,X2,Y2 in pixels; repeat for more lines.")],
    anchor: Annotated[str, typer.Option(help="Box point that crosses the line.")] = "bottom_center",
    classes: Annotated[list[str] | None, typer.Option(help="Count only these labels.")] = None,
    tracker: Annotated[str, typer.Option(help="ocsort or bytetrack.")] = "ocsort",
    model: Annotated[str | None, typer.Option(help="Detection model name or path.")] = None,
    normalized: Annotated[bool, typer.Option(help="Line coordinates are 0..1 fractions.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Count objects crossing lines over a whole video (detection + tracking + lines)."""
    import json

    from oko.count import count_video

    result = count_video(video, line, anchor=anchor, classes=classes, tracker=tracker,
                         model=model, normalized=normalized)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    table = Table(title=f"oko count: {video} ({result['frames']} frames)")
    for col in ("line", "in", "out", "by class"):
        table.add_column(col)
    for ln in result["lines"]:
        by_class = ", ".join(f"{k}: {v['in']}/{v['out']}" for k, v in ln["by_class"].items())
        table.add_row(str(ln["line"]), str(ln["in"]), str(ln["out"]), by_class)
    Console().print(table)
    Console().print(result["direction"])


@app.command()
def track(
    det: Annotated[Path, typer.Option(help="MOTChallenge detections (frame,id,x,y,w,h,score,...).")],
    out: Annotated[Path, typer.Option(help="MOTChallenge tracks to write.")],
    tracker: Annotated[str, typer.Option(help="ocsort or bytetrack.")] = "ocsort",
    fps: Annotated[float, typer.Option(help="Frame rate of the sequence.", min=0.1)] = 30.0,
) -> None:
    """Track MOTChallenge detections and write MOTChallenge tracks (for evaluation)."""
    from oko.track.mot import track_mot_file

    stats = track_mot_file(det, out, tracker, fps)
    Console().print(f"{stats['frames']} frames, {stats['tracks']} tracks, {stats['boxes']} boxes "
                    f"-> {out} ({stats['frames'] / max(stats['time'], 1e-9):.0f} frames/s)")


@app.command()
def port(
    model: Annotated[str, typer.Argument(help="ONNX file, or zoo model / folder with a manifest.")],
    target: Annotated[str, typer.Option(help="bm1684x, bm1684, openvino or onnxruntime.")],
    precision: Annotated[str, typer.Option(help="f32, f16 (where the target has it) or int8.")],
    out: Annotated[Path, typer.Option(help="Output folder (artefact, manifest, reports).")],
    calib: Annotated[Path | None, typer.Option(help="Folder of images or a video (int8).")] = None,
    calib_count: Annotated[int, typer.Option(help="Calibration frames sampled.", min=2)] = 64,
    val: Annotated[Path | None, typer.Option(help="Held-out images or video for validation.")] = None,
    val_count: Annotated[int, typer.Option(help="Validation frames sampled.", min=1)] = 16,
    input_shape: Annotated[list[str] | None, typer.Option(
        help="Fixed input shape, [NAME=]1,3,640,640; repeat per input.")] = None,
    min_cosine: Annotated[float | None, typer.Option(help="Per-output cosine threshold.")] = None,
    min_euclidean: Annotated[float | None, typer.Option(help="Euclidean similarity threshold.")] = None,
    min_task: Annotated[float | None, typer.Option(help="Task metric threshold.")] = None,
    accept_loss: Annotated[bool, typer.Option(help="Keep the port even below thresholds.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    option: Annotated[list[str] | None, typer.Option(
        help="Target option KEY=VALUE (YAML value), e.g. keep_head_float=true; repeatable.")] = None,
) -> None:
    """Compile a model for a target, validate it against ONNX Runtime FP32, write a report."""
    from oko.port.pipeline import PortRequest, port_model
    options = _parse_options(option)
    report = port_model(PortRequest(
        model=model, target=target, precision=precision, out=out, calib=calib,
        calib_count=calib_count, val=val, val_count=val_count, input_shapes=input_shape or [],
        min_cosine=min_cosine, min_euclidean=min_euclidean, min_task=min_task,
        accept_loss=accept_loss, overwrite=overwrite, options=options), Console(stderr=True))
    from rich.markdown import Markdown

    Console().print(Markdown(report.markdown()))
    Console().print(f"written: [bold]{out}[/] (manifest.yaml, {report.artefact}, report.md, report.json)")


@models_app.command("list")
def models_list() -> None:
    """Models oko can find by name, with task, family, input and licence."""
    from oko.models import scan_zoo

    table = Table(title="oko models")
    for col in ("name", "task", "family", "input", "classes", "licence", "folder"):
        table.add_column(col)
    for entry in scan_zoo():
        m = entry.manifest
        if m is None:
            table.add_row(f"[red]{entry.folder.name}[/]", "invalid", "", "", "", "", entry.error or "")
            continue
        table.add_row(m.name, m.task.value, m.family, f"{m.input.width}x{m.input.height}",
                      str(len(m.label_names)), m.licence, str(entry.folder))
    Console().print(table)


@app.command()
def engines() -> None:
    """Engines oko can run models on."""
    from oko.engines import engine_names

    for name in engine_names():
        Console().print(name)


@app.command()
def bench(
    model: Annotated[str | None, typer.Argument(help="Detection model name or path.")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine name (default: the model's own).")] = None,
    frames: Annotated[int, typer.Option(help="Frames to measure.", min=10)] = 100,
    source: Annotated[str | None, typer.Option(help="Video to decode (default: the sample).")] = None,
    threads: Annotated[list[int] | None, typer.Option(
        help="Engine CPU threads; repeat to compare (default: all cores, and all but one).",
        min=1)] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes for the throughput table, e.g. 1,4,8.")] = "1",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Where the time goes (pre/infer/post), pipeline vs raw engine, batches, and for a
    ported model its speed ratio and fidelity against the FP32 original, in one run."""
    import json
    import os
    from dataclasses import asdict

    from oko.bench import (bench_batches, bench_detector, compare_with_original, decode_frames,
                           print_batches, print_comparison, print_reports)
    from oko.demo import SAMPLE_VIDEO
    from oko.models import DEFAULT_DETECTOR, load_detector

    try:
        batches = sorted({int(b) for b in batch.split(",")})
    except ValueError as exc:
        raise typer.BadParameter(f"--batch {batch!r}: expected sizes like 1,4,8") from exc
    cores = os.cpu_count() or 1
    settings: list[int | None] = list(threads) if threads else [None] + ([cores - 1] if cores > 1 else [])
    model = model or DEFAULT_DETECTOR
    video = source or SAMPLE_VIDEO
    reports, batch_tables = [], {}
    for n_threads in settings:
        engine_cfg: dict | None = None
        if engine is not None or n_threads:
            engine_cfg = {"kind": engine or "onnxruntime"} | ({"threads": n_threads} if n_threads else {})
        reports.append(bench_detector(model, engine_cfg, video, frames))
        if batches != [1]:
            images, _ = decode_frames(video, frames)
            batch_tables[reports[-1].threads] = bench_batches(
                load_detector(model, engine_cfg), images, batches)
    comparison = compare_with_original(load_detector(model, engine),
                                       decode_frames(video, min(frames, 30))[0])
    if as_json:
        print(json.dumps({
            "reports": [asdict(r) | {"ratio": r.ratio, "detector_ratio": r.detector_ratio}
                        for r in reports],
            "batches": {k: [asdict(b) for b in v] for k, v in batch_tables.items()},
            "ported_vs_original": comparison}, indent=2))
        return
    console = Console()
    print_reports(reports, console)
    for threads_label, results in batch_tables.items():
        print_batches(results, console, f"batches, engine threads: {threads_label}")
    if comparison is not None:
        print_comparison(comparison, console)


def main() -> None:
    try:
        app()
    except OkoError as exc:
        print(f"oko: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("oko: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
