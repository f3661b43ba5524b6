"""Sophon ports measured in one run: compile times, predicted chip latency, fidelity.

For each model and precision, the model goes through oko's Sophon target exactly as `oko
port` feeds it (fixed-shape, simplified ONNX from ``oko.port.onnx_prep``; calibration
tensors made with the model's own preprocessing), then the bmodel runs in the TPU-MLIR
cmodel simulator through oko's sophon engine and is compared with ONNX Runtime FP32 on
held-out images: cosine and euclidean similarity per output (mean and minimum).

Models:

- ``nanodet``: the bundled ``nanodet-coco`` detector (416x416). Calibration on 32 frames
  of the first half of the sample video (as ``oko port --calib vtest.mp4``); validation
  on frames of the second half, and separately on the repository's three test photos
  (other scenes than the calibration video).
- ``cnn``: the small CNN of tests/test_port_sophon.py (64x64, fixed random weights,
  logits centred on real images), on crops of the same images.

Printed: stage times (transform, calibration, mixed-precision search, deploy), the
compiler's predicted on-chip latency (an estimate, not a measurement), the INT8 search
trials and the layers kept in float, fidelity, and the simulator's seconds per
inference (the simulator is slow by nature; F16 layers simulate 5-10x slower than INT8).

    .venv/bin/python benchmarks/bench_sophon.py [--models nanodet,cnn] [--precisions f32,int8]
        [--target bm1684x] [--val 6] [--json out.json]

F16 is validated on one image per set (it simulates slowly).

One simulated chip per process: run bm1684 and bm1684x in separate invocations.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from oko.engines import create_engine
from oko.engines import sophon as _sophon_engine  # noqa: F401  (registers the engine)
from oko.models.manifest import load_manifest
from oko.port import sophon as _sophon_target  # noqa: F401  (registers the targets)
from oko.port import tpu_mlir
from oko.port.base import PortJob, get_target
from oko.port.calibration import make_tensors, sample_images
from oko.port.onnx_prep import prepare_onnx
from oko.port.sophon import similarity

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_VIDEO = ROOT / "src" / "oko" / "data" / "samples" / "vtest.mp4"
TEST_IMAGES = ROOT / "tests" / "data" / "yolo" / "images"
log = logging.getLogger("bench_sophon")


def video_halves(n_calib: int, n_val: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames, _ = sample_images(SAMPLE_VIDEO, 2 * max(n_calib, n_val))
    half = len(frames) // 2
    calib = frames[:half][:n_calib]
    val = frames[half:][::max(1, half // max(n_val, 1))][:n_val]
    return calib, val


def nanodet_data(n_val: int) -> tuple[Path, dict, np.ndarray, dict[str, np.ndarray], str]:
    manifest = load_manifest(ROOT / "models" / "nanodet-coco" / "manifest.yaml")
    calib_imgs, val_imgs = video_halves(32, n_val)
    photos = [cv2.imread(str(p)) for p in sorted(TEST_IMAGES.glob("*.jpg"))]
    calib = make_tensors(calib_imgs, manifest.input)[0]
    val = {"video frames (2nd half)": make_tensors(val_imgs, manifest.input)[0],
           "test photos": make_tensors(photos, manifest.input)[0]}
    return manifest.model_path, {"family": manifest.family}, calib, val, manifest.name


def cnn_data(n_val: int, work: Path) -> tuple[Path, dict, np.ndarray, dict[str, np.ndarray],
                                               str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_port_sophon import build_cnn, image_tensors, realistic_images

    images = realistic_images()
    onnx_path = build_cnn(work / "small_cnn.onnx", center_on=image_tensors(images, 64, 11, 24))
    return (onnx_path, {"family": ""}, image_tensors(images, 64, 1, 32),
            {"crops": image_tensors(images, 64, 2, n_val)}, "small-cnn")


def fidelity(engine, onnx_path: Path, input_name: str, val: np.ndarray) -> tuple[dict, float]:
    session = ort.InferenceSession(str(onnx_path))
    names = [o.name for o in session.get_outputs()]
    sims: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    seconds = []
    for x in val:
        ref = dict(zip(names, session.run(names, {input_name: x[None]}), strict=True))
        t0 = time.perf_counter()
        got = engine.run({input_name: x[None]})
        seconds.append(time.perf_counter() - t0)
        for n in names:
            sims[n].append(similarity(got[n], ref[n]))
    table = {n: {"cosine_mean": float(np.mean([c for c, _ in v])),
                 "cosine_min": float(np.min([c for c, _ in v])),
                 "euclid_mean": float(np.mean([e for _, e in v])),
                 "euclid_min": float(np.min([e for _, e in v]))} for n, v in sims.items()}
    return table, float(np.median(seconds))


def port_one(model: str, precision: str, target: str, n_val: int, work: Path) -> dict:
    raw, extra, calib, val_sets, name = (nanodet_data(n_val) if model == "nanodet"
                                         else cnn_data(n_val, work))
    if precision == "f16":  # F16 simulates slowly: one image per set
        val_sets = {k: v[:1] for k, v in val_sets.items()}
    shape = tuple(calib.shape[1:])
    prepared = prepare_onnx(raw, work / f"{name}-prepared.onnx", {"*": (1, *shape)})
    input_name = prepared.input_names[0]
    job_dir = work / f"{name}-{target}-{precision}"
    job_dir.mkdir()
    lines: list[str] = []
    job = PortJob(onnx_path=prepared.path, model_name=name, precision=precision,
                  input_names=prepared.input_names, input_shapes=prepared.input_shapes,
                  output_names=prepared.output_names,
                  calibration={input_name: calib} if precision == "int8" else {},
                  work_dir=job_dir, family=extra["family"], log=lines.append,
                  stage=lambda s: log.info("  %s", s))
    t0 = time.perf_counter()
    artifact = get_target(target).compile(job)
    compile_s = time.perf_counter() - t0
    engine = create_engine(artifact.path, artifact.engine)
    tables, sim_times = {}, []
    for label, val in val_sets.items():
        tables[label], sim_s = fidelity(engine, prepared.path, input_name, val)
        sim_times.append(sim_s)
    engine.close()
    return {"model": name, "target": target, "precision": precision,
            "compile_s": round(compile_s, 1), "timings_s": artifact.extra.get("timings_s"),
            "predicted_ms": artifact.estimated_ms, "estimate_source": artifact.estimate_source,
            "bmodel_mb": round(artifact.path.stat().st_size / 1e6, 2),
            "simulator_s_per_inference": round(float(np.median(sim_times)), 2),
            "validation_samples": {k: len(v) for k, v in val_sets.items()},
            "fidelity": tables, "notes": artifact.notes,
            "int8_search": artifact.extra.get("int8_search"),
            "float_layers": artifact.extra.get("float_layers")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="nanodet,cnn")
    ap.add_argument("--precisions", default="f32,int8")
    ap.add_argument("--target", default="bm1684x", choices=["bm1684x", "bm1684"])
    ap.add_argument("--val", type=int, default=6, help="validation images per model")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    tpu_mlir.ensure_toolchain(lambda line: log.info("%s", line))
    log.info("toolchain ready in %.1f s", time.perf_counter() - t0)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_sophon_") as tmp:
        for model in args.models.split(","):
            for precision in args.precisions.split(","):
                log.info("== %s %s %s", model, args.target, precision)
                work = Path(tmp) / f"{model}-{precision}"
                work.mkdir()
                res = port_one(model, precision, args.target, args.val, work)
                results.append(res)
                log.info("compile %.1f s %s; predicted %.3f ms; simulator %.1f s/inference",
                         res["compile_s"], res["timings_s"], res["predicted_ms"] or -1,
                         res["simulator_s_per_inference"])
                for label, table in res["fidelity"].items():
                    log.info("  %s (%d):", label, res["validation_samples"][label])
                    for out, f in table.items():
                        log.info("    %-10s cosine mean %.4f min %.4f | euclid mean %.3f min %.3f",
                                 out, f["cosine_mean"], f["cosine_min"], f["euclid_mean"],
                                 f["euclid_min"])
                for note in res["notes"]:
                    log.info("  note: %s", note)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
