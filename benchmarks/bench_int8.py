"""INT8 vs FP32 on this CPU, for ONNX Runtime and OpenVINO, measured in one run.

Models, each ported with oko's own targets (``oko.port.onnxruntime``, ``oko.port.openvino``)
from a fixed-shape, onnxslim-simplified ONNX, as ``oko port`` feeds them:

- detector: the bundled ``nanodet-coco`` (416x416). Calibration on 33 frames of the first
  half of the sample video, fidelity on 20 held-out frames of the second half: output
  cosine vs ONNX Runtime FP32 and detection agreement (F1, precision and recall of the
  INT8 boxes at IoU 0.5, same class, FP32 boxes as truth: ``oko.port.fidelity``);
- classifiers: MobileNetV2 with real ImageNet weights (tools/make_mobilenetv2_onnx.py,
  built on first use into ~/.cache/oko) and a ResNet-50 graph built here with constructed
  weights (architecture-correct; its speed is real, its top-1 agreement only a sanity
  check since the weights recognise nothing). Calibration on one half of a set of real
  images (opencv-doc samples, scikit-learn and matplotlib sample images, video frames),
  top-1 agreement and logit cosine on crops and flips of the other half.

Timing: batch 1, the same thread count for every engine, engines interleaved round-robin
(so other load on the machine hits all of them alike), median and best ms per inference.
Ratios (FP32 ms / INT8 ms, from the medians; from the best times in brackets) come from
the same run.

Sophon (when the TPU-MLIR toolchain is provisioned, or with ``--sophon``): each model is
also compiled by oko's ``bm1684x`` and ``bm1684`` targets at F32 and INT8 (same
calibration tensors, automatic mixed precision) and the compiler's predicted on-chip
latency is printed next to the CPU numbers: an estimate from TPU-MLIR's profile, not a
measurement (no chip here), with the INT8 model's worst output cosine from TPU-MLIR's
interpreter on held-out calibration samples. benchmarks/bench_sophon.py runs the bmodels
themselves in the simulator.

    .venv/bin/python benchmarks/bench_int8.py [--threads 2] [--runs 40] [--skip-resnet]
        [--sophon | --no-sophon]
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oko.engines import create_engine
from oko.engines import openvino as _openvino  # noqa: F401  (registers the engine)
from oko.port import onnxruntime as _port_ort  # noqa: F401  (registers the target)
from oko.port import openvino as _port_ov  # noqa: F401  (registers the target)
from oko.port.base import PortArtifact, PortJob, get_target
from oko.port.fidelity import cosine, detection_agreement
from oko.port.onnx_prep import prepare_onnx

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_VIDEO = ROOT / "src" / "oko" / "data" / "samples" / "vtest.mp4"
log = logging.getLogger("bench_int8")

F16 = "ov f16 (hint auto)"
VARIANTS = [  # (label, target, precision, engine overrides)
    ("ort f32", "onnxruntime", "f32", {}),
    ("ort int8", "onnxruntime", "int8", {}),
    ("ov f32", "openvino", "f32", {}),
    ("ov int8", "openvino", "int8", {}),
    ("ov int8 (hint auto)", "openvino", "int8", {"precision_hint": "auto"}),
    (F16, "openvino", "f16", {}),
]


@dataclass
class Model:
    name: str
    onnx: Path
    input_name: str
    calib: np.ndarray
    held: np.ndarray
    outputs: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- data
def video_frames(every: int, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    from oko.video.sources import VideoSource

    frames = []
    with VideoSource(str(SAMPLE_VIDEO)) as source:
        for i, frame in enumerate(source):
            if stop is not None and i >= stop:
                break
            if i >= start and (i - start) % every == 0:
                frames.append(frame.image)
    return frames


def real_images() -> list[np.ndarray]:
    """Distinct real photos and scenes found on this machine (BGR uint8)."""
    import cv2

    site = Path(np.__file__).resolve().parents[1]
    paths = sorted(glob.glob("/usr/share/doc/opencv-doc/examples/data/*.jpg")
                   + glob.glob("/usr/share/doc/opencv-doc/examples/data/*.png"))
    paths = [p for p in paths if not Path(p).stem.startswith(("left", "right"))
             or Path(p).stem in ("left01", "right01")]  # 26 near-identical chessboards
    paths += sorted(glob.glob(str(site / "sklearn/datasets/images/*.jpg")))
    paths += sorted(glob.glob(str(site / "matplotlib/mpl-data/sample_data/*.jpg")))
    paths += sorted(glob.glob(str(ROOT / "tests/data/yolo/images/*.jpg")))
    images = []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is not None and min(img.shape[:2]) >= 64:
            images.append(img)
    return images


def classifier_views(images: list[np.ndarray]) -> np.ndarray:
    """Centre crop, four corner-biased crops and their mirror images of each image."""
    sys.path.insert(0, str(ROOT / "tools"))
    from make_mobilenetv2_onnx import preprocess

    views = []
    for img in images:
        h, w = img.shape[:2]
        s = int(min(h, w) * 0.8)
        crops = [img] + [img[y:y + s, x:x + s] for y, x in
                         ((0, 0), (0, w - s), (h - s, 0), (h - s, w - s))]
        views += crops + [c[:, ::-1] for c in crops]
    return preprocess(views)


def fixed_shape(src: Path, input_name: str, shape: tuple[int, ...], out: Path) -> Path:
    """What `oko port` hands a target: shapes fixed, onnxslim-simplified (its own stage 1)."""
    return prepare_onnx(src, out, {input_name: shape}).path


# ---------------------------------------------------------------------- models
def nanodet(tmp: Path) -> tuple[Model, object, list]:
    from oko.models import resolve_model
    from oko.models.preprocess import InputPreprocessor

    manifest = resolve_model("nanodet-coco")
    pre = InputPreprocessor(manifest.input)
    calib, _ = pre(video_frames(7, 0, 225))
    held_frames = video_frames(11, 230)
    held, geoms = pre(held_frames)
    onnx_path = fixed_shape(manifest.model_path, "images", (1, 3, 416, 416), tmp / "nanodet.onnx")
    return Model("nanodet-coco", onnx_path, "images", calib, held), manifest, geoms


def mobilenetv2(tmp: Path, calib: np.ndarray, held: np.ndarray, path: Path | None) -> Model:
    sys.path.insert(0, str(ROOT / "tools"))
    import make_mobilenetv2_onnx as tool

    path = path or tool.DEFAULT_OUT
    if not path.is_file():
        log.info("building %s with tools/make_mobilenetv2_onnx.py", path)
        tool.main(["--out", str(path)])
    onnx_path = fixed_shape(path, "input", (1, 3, 224, 224), tmp / "mobilenetv2.onnx")
    return Model("mobilenetv2 (ImageNet weights)", onnx_path, "input", calib, held)


def build_resnet50(out: Path, seed: int = 0) -> Path:
    """ResNet-50 v1.5 (torchvision layout, BatchNorm folded) with constructed weights.

    He-initialised convolutions, the last convolution of each residual branch scaled by
    0.2 and per-channel biases keep activations in a trained network's range, so
    quantisation sees realistic distributions; the weights recognise nothing.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def conv(x: str, cin: int, cout: int, k: int, stride: int, relu: bool,
             gain: float = 1.0) -> str:
        name = f"conv{len(nodes)}"
        w = rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k)) * gain
        w = w.astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.w"),
                      numpy_helper.from_array(b, f"{name}.b")])
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name,
                                      kernel_shape=[k, k], strides=[stride] * 2, pads=[k // 2] * 4))
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    x = conv("input", 3, 64, 7, 2, True)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], name="pool", kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = "pool", 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            s = stride if i == 0 else 1
            y = conv(x, cin, width, 1, 1, True)
            y = conv(y, width, width, 3, s, True)
            y = conv(y, width, width * 4, 1, 1, False, gain=0.2)
            short = conv(x, cin, width * 4, 1, s, False) if i == 0 else x
            add = f"add{len(nodes)}"
            nodes += [helper.make_node("Add", [y, short], [add], name=add),
                      helper.make_node("Relu", [add], [f"{add}.relu"], name=f"{add}.relu")]
            x, cin = f"{add}.relu", width * 4
    fc_w = (rng.standard_normal((1000, 2048)) * np.sqrt(1 / 2048)).astype(np.float32)
    inits += [numpy_helper.from_array(fc_w, "fc.w"),
              numpy_helper.from_array(np.zeros(1000, np.float32), "fc.b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1),
              helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "resnet50",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(out))
    return out


# ---------------------------------------------------------------------- porting
def port(model: Model, target: str, precision: str, tmp: Path) -> PortArtifact:
    work = Path(tempfile.mkdtemp(prefix=f"{target}-{precision}-", dir=tmp))
    job = PortJob(onnx_path=model.onnx, model_name=model.name, precision=precision,
                  input_names=[model.input_name],
                  input_shapes={model.input_name: (1, *model.calib.shape[1:])},
                  output_names=model.outputs,
                  calibration={model.input_name: model.calib} if precision == "int8" else {},
                  work_dir=work, log=lambda line: log.debug("%s", line))
    start = time.perf_counter()
    artifact = get_target(target).compile(job)
    log.info("%s %s %s: compiled in %.1f s; %s", model.name, target, precision,
             time.perf_counter() - start, "; ".join(artifact.notes))
    return artifact


def load_variants(model: Model, tmp: Path, threads: int, variants: list) -> dict[str, Callable]:
    runners, artifacts = {}, {}
    for label, target, precision, overrides in variants:
        if (target, precision) not in artifacts:
            artifacts[target, precision] = port(model, target, precision, tmp)
        artifact = artifacts[target, precision]
        engine = create_engine(artifact.path, {**artifact.engine, "threads": threads, **overrides},
                               {model.input_name: (1, *model.calib.shape[1:])})
        runners[label] = engine.run
    return runners


def interleaved_ms(runners: dict[str, Callable], model: Model,
                   runs: int) -> dict[str, tuple[float, float]]:
    """Median and best ms per batch-1 inference, engines interleaved round-robin."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in range(runs + 3):
        feed = {model.input_name: model.held[r % len(model.held)][None]}
        for label, run in runners.items():
            start = time.perf_counter()
            run(feed)
            if r >= 3:  # first rounds warm caches
                times[label].append((time.perf_counter() - start) * 1e3)
    return {k: (float(np.median(v)), float(np.min(v))) for k, v in times.items()}


def outputs_of(run: Callable, model: Model) -> list[dict[str, np.ndarray]]:
    return [run({model.input_name: model.held[i][None]}) for i in range(len(model.held))]


# ---------------------------------------------------------------------- report
def run_model(model: Model, tmp: Path, args: argparse.Namespace,
              score: Callable[[dict[str, list], dict[str, list]], dict[str, dict]]) -> dict:
    import onnx

    model.outputs = [o.name for o in onnx.load(str(model.onnx)).graph.output]
    runners = load_variants(model, tmp, args.threads, VARIANTS)
    ms = interleaved_ms(runners, model, args.runs)
    outs = {label: outputs_of(run, model) for label, run in runners.items()}
    ref = outs["ort f32"]
    rows = {}
    for label in runners:
        cos = {name: [cosine(o[name], r[name]) for o, r in zip(outs[label], ref, strict=True)]
               for name in model.outputs}
        rows[label] = {"ms": ms[label][0], "ms_best": ms[label][1],
                       "cosine_mean": {n: float(np.mean(c)) for n, c in cos.items()},
                       "cosine_min": {n: float(np.min(c)) for n, c in cos.items()}}
    for label, extra in score(outs, ref).items():
        rows[label].update(extra)
    for label, row in rows.items():
        if label not in ("ort f32", "ov f32"):
            fp32 = ms[label.split()[0] + " f32"]
            row["speedup_vs_f32"] = fp32[0] / ms[label][0]
            row["speedup_best_vs_f32"] = fp32[1] / ms[label][1]
    return rows


SOPHON_VARIANTS = [("bm1684x", "f32"), ("bm1684x", "int8"), ("bm1684", "f32"), ("bm1684", "int8")]


def sophon_rows(model: Model, tmp: Path) -> dict:
    """Predicted on-chip ms per Sophon target and precision (compile only)."""
    from oko.port import sophon as _port_sophon  # noqa: F401  (registers the targets)

    rows = {}
    for target, precision in SOPHON_VARIANTS:
        start = time.perf_counter()
        artifact = port(model, target, precision, tmp)
        row = {"estimated_ms": artifact.estimated_ms,
               "compile_s": round(time.perf_counter() - start, 1)}
        if precision == "int8":
            chosen = artifact.extra["int8_search"]
            final = next((t for t in chosen if t["float_layers"] == len(
                artifact.extra["float_layers"]) and t["asymmetric"] == artifact.extra[
                "asymmetric"]), chosen[-1])
            row |= {"float_layers": len(artifact.extra["float_layers"]),
                    "float_type": artifact.extra["float_type"],
                    "asymmetric": artifact.extra["asymmetric"],
                    "interpreter_min_cosine": min(final["min_cosine"].values())}
        rows[f"{target} {precision}"] = row
    for target in ("bm1684x", "bm1684"):
        f32, int8 = rows[f"{target} f32"]["estimated_ms"], rows[f"{target} int8"]["estimated_ms"]
        if f32 and int8:
            rows[f"{target} int8"]["speedup_vs_f32"] = f32 / int8
    return rows


def print_sophon(title: str, rows: dict) -> None:
    print(f"\n## {title}: Sophon, compiler-predicted on-chip latency (estimate)\n")
    print("| target | est. ms/frame on chip | F32/INT8 | layers kept in float | worst output "
          "cosine (TPU-MLIR interpreter, held-out calibration samples) | compile s |")
    print("|---|---|---|---|---|---|")
    for label, row in rows.items():
        est = f"{row['estimated_ms']:.2f}" if row["estimated_ms"] else "n/a"
        speed = f"{row['speedup_vs_f32']:.2f}x" if "speedup_vs_f32" in row else ""
        kept = (f"{row['float_layers']} in {row['float_type']}"
                + (", asymmetric INT8" if row.get("asymmetric") else "")
                if "float_layers" in row else "")
        cos = f"{row['interpreter_min_cosine']:.4f}" if "interpreter_min_cosine" in row else ""
        print(f"| {label} | {est} | {speed} | {kept} | {cos} | {row['compile_s']} |")


def print_summary(report: dict) -> None:
    """One line per model: every INT8 speed ratio and fidelity figure of this run."""
    print("\n## Summary (one run): INT8 vs FP32\n")
    print("| model | ORT INT8 speed-up | ORT INT8 fidelity | OpenVINO INT8 speed-up "
          "| OpenVINO INT8 fidelity | BM1684X est. ms F32 -> INT8 | BM1684 est. ms F32 -> INT8 |")
    print("|---|---|---|---|---|---|---|")

    def fid(row: dict) -> str:
        if "f1" in row:
            return f"F1 {row['f1']:.3f}"
        return f"top-1 {row['top1']:.3f}" if "top1" in row else ""

    def chip(rows: dict, target: str) -> str:
        f32, int8 = rows.get(f"{target} f32"), rows.get(f"{target} int8")
        if not f32 or not int8 or not f32["estimated_ms"] or not int8["estimated_ms"]:
            return "n/a"
        return (f"{f32['estimated_ms']:.2f} -> {int8['estimated_ms']:.2f} "
                f"({f32['estimated_ms'] / int8['estimated_ms']:.1f}x)")

    for name, rows in report.items():
        if name.endswith("/sophon"):
            continue
        sophon = report.get(f"{name}/sophon", {})
        ort, ov = rows["ort int8"], rows["ov int8"]
        print(f"| {name} | {ort['speedup_vs_f32']:.2f}x | {fid(ort)} | {ov['speedup_vs_f32']:.2f}x "
              f"| {fid(ov)} | {chip(sophon, 'bm1684x')} | {chip(sophon, 'bm1684')} |")


def print_rows(title: str, rows: dict, metric: str) -> None:
    print(f"\n## {title}\n")
    print(f"| engine | ms median (best), batch 1 | FP32/this | {metric} "
          "| output cosine vs ORT FP32 (mean / min) |")
    print("|---|---|---|---|---|")
    for label, row in rows.items():
        cos = ", ".join(f"{n} {row['cosine_mean'][n]:.4f}/{row['cosine_min'][n]:.4f}"
                        for n in row["cosine_mean"])
        speed = (f"{row['speedup_vs_f32']:.2f}x ({row['speedup_best_vs_f32']:.2f}x)"
                 if "speedup_vs_f32" in row else "1")
        print(f"| {label} | {row['ms']:.1f} ({row['ms_best']:.1f}) | {speed} "
              f"| {row.get(metric, '')} | {cos} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for every engine")
    parser.add_argument("--runs", type=int, default=40, help="timed inferences per engine")
    parser.add_argument("--classifier", type=Path, help="MobileNetV2 ONNX (default: build it)")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--sophon", action=argparse.BooleanOptionalAction, default=None,
                        help="also compile for BM1684X/BM1684 (default: when the TPU-MLIR "
                             "toolchain is provisioned)")
    args = parser.parse_args()
    if args.sophon is None:
        from oko.port import tpu_mlir

        args.sophon = tpu_mlir.installed_toolchain() is not None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("nncf", "openvino"):
        logging.getLogger(name).setLevel(logging.WARNING)
    report: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="oko-bench-int8-") as tmpdir:
        tmp = Path(tmpdir)
        from oko.models.adapter import adapter_for

        det_model, manifest, geoms = nanodet(tmp)
        engine = create_engine(det_model.onnx, {"kind": "onnxruntime", "threads": args.threads})
        adapter = adapter_for(manifest, engine.inputs(), engine.outputs())

        def detections(outs: dict[str, list], ref: list) -> dict[str, dict]:
            truth = [adapter.postprocess(r, [g])[0] for r, g in zip(ref, geoms, strict=True)]
            scores = {}
            for label, got in outs.items():
                dets = [adapter.postprocess(o, [g])[0] for o, g in zip(got, geoms, strict=True)]
                agreement = detection_agreement(truth, dets)
                d = agreement.details
                scores[label] = {
                    "detections": f"F1 {agreement.value:.3f} (P {d['precision']:.3f} R "
                                  f"{d['recall']:.3f}, {d['ported_boxes']} vs "
                                  f"{d['fp32_boxes']} boxes)",
                    "f1": agreement.value, "precision": d["precision"], "recall": d["recall"]}
            return scores

        report["nanodet"] = run_model(det_model, tmp, args, detections)
        print_rows(f"nanodet-coco 416, {len(det_model.held)} held-out frames, "
                   f"{len(det_model.calib)} calibration frames, {args.threads} threads",
                   report["nanodet"], "detections")
        if args.sophon:
            report["nanodet/sophon"] = sophon_rows(det_model, tmp)
            print_sophon("nanodet-coco 416", report["nanodet/sophon"])

        images = real_images()
        views = classifier_views(images[0::2])
        frames = classifier_views(video_frames(45))[::10]
        calib = np.concatenate([views[::3], frames])[:64]
        held = classifier_views(images[1::2])

        def top1(outs: dict[str, list], ref: list) -> dict[str, dict]:
            logits = np.concatenate([r["logits"] for r in ref])
            truth = logits.argmax(1)
            prob = np.exp(logits - logits.max(1, keepdims=True))
            sure = (prob / prob.sum(1, keepdims=True)).max(1) >= 0.5
            scores = {}
            for label, got in outs.items():
                same = np.concatenate([o["logits"] for o in got]).argmax(1) == truth
                scores[label] = {
                    "top1 agreement": f"{same.mean():.3f} (where FP32 p>=0.5: "
                                      f"{same[sure].mean():.3f}, {sure.sum()} of {len(same)})",
                    "top1": float(same.mean()), "top1_confident": float(same[sure].mean())}
            return scores

        mnv2 = mobilenetv2(tmp, calib, held, args.classifier)
        report["mobilenetv2"] = run_model(mnv2, tmp, args, top1)
        print_rows(f"MobileNetV2 224, ImageNet weights, {len(held)} views of "
                   f"{len(images[1::2])} images, {len(calib)} calibration views",
                   report["mobilenetv2"], "top1 agreement")
        if args.sophon:
            report["mobilenetv2/sophon"] = sophon_rows(mnv2, tmp)
            print_sophon("MobileNetV2 224", report["mobilenetv2/sophon"])
        if not args.skip_resnet:
            r50 = Model("resnet50 (constructed weights)",
                        fixed_shape(build_resnet50(tmp / "r50-src.onnx"), "input", (1, 3, 224, 224),
                                    tmp / "resnet50.onnx"), "input", calib, held)
            report["resnet50"] = run_model(r50, tmp, args, top1)
            print_rows("ResNet-50 224, constructed weights (speed is real; agreement only a "
                       "sanity check)", report["resnet50"], "top1 agreement")
            if args.sophon:
                report["resnet50/sophon"] = sophon_rows(r50, tmp)
                print_sophon("ResNet-50 224", report["resnet50/sophon"])
        print_summary(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
