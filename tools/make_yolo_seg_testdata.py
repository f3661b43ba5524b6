"""Regenerate tests/data/yolo_seg/: a small YOLOv8n-seg ONNX and Ultralytics' masks on it.

Companion of tools/make_yolo_testdata.py (same throw-away venv with CPU torch + ultralytics, same
torchvision shim, same three test images in tests/data/yolo/images, which it must have made
first). NOT part of oko; never runs in CI.

Run (from the repository root)::

    /tmp/ultra-venv/bin/python tools/make_yolo_seg_testdata.py

What it does:

1. yolov8n-seg with Ultralytics' architecture and Segment head (nc=80, nm=32, npr=256), width
   multiple 1/16; random weights (torch.manual_seed(0)), BatchNorm statistics from the three
   letterboxed images, box-branch final convs x2, class-branch biases base + N(0, 1) (base from a
   fixed grid so that every image keeps 10-299 boxes) -- exactly as for the detection models.
2. ONNX export (imgsz=320, opset=17, simplify=True, static): output0 [1, 116, 2100] and output1
   (prototypes) [1, 32, 80, 80].
3. Per image: the raw onnxruntime outputs on the predictor's preprocessed input, then the
   segment predictor's own postprocessing with ``retina_masks=True``:
   ``non_max_suppression(output0, 0.25, 0.7, nc=80)``, ``scale_boxes`` to the original frame,
   ``process_mask_native(protos, coefficients, boxes, orig_shape)`` (masks at original-frame
   resolution), then the predictor's "keep predictions with a non-empty mask" filter.
   Cross-checked against ``YOLO(onnx).predict(..., retina_masks=True)``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_yolo_testdata as base  # noqa: E402  (installs the torchvision shim, imports ultralytics)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.data.augment import LetterBox  # noqa: E402
from ultralytics.utils import YAML  # noqa: E402
from ultralytics.utils import ops as uops  # noqa: E402
from ultralytics.utils.checks import check_yaml  # noqa: E402
from ultralytics.utils.nms import non_max_suppression  # noqa: E402

REPO = base.REPO
IMAGES = REPO / "tests" / "data" / "yolo" / "images"
OUT = REPO / "tests" / "data" / "yolo_seg"
NAME = "yolov8n-seg"
base.MODELS[NAME] = ("v8/yolov8-seg.yaml", 0.33)
IMGSZ, CONF, IOU, MAX_DET = base.IMGSZ, base.CONF, base.IOU, base.MAX_DET
NC = 80


def build_model(work: Path, calib: torch.Tensor) -> YOLO:
    torch.manual_seed(base.SEED)
    yolo = YOLO(str(base.narrow_yaml(NAME, work)), task="segment")
    net = yolo.model
    head = net.model[-1]
    assert type(head).__name__ == "Segment" and head.nc == NC, type(head).__name__
    net.names = YAML.load(check_yaml("coco.yaml"))["names"]
    base.calibrate_batchnorm(net, calib)
    with torch.no_grad():
        for seq in head.cv2:
            seq[-1].weight.mul_(base.BOX_WEIGHT_GAIN)
        offsets = base.CLS_BIAS_SPREAD * torch.randn(
            NC, generator=torch.Generator().manual_seed(base.SEED))
        b = choose_class_bias(net, calib, offsets)
        base.set_class_bias(net, b + offsets)
    print(f"{NAME}: class bias base {b}")
    yolo.class_bias_base = b
    return yolo


def choose_class_bias(net, calib, offsets) -> float:
    best = None
    for b in np.arange(-2.0, -10.01, -0.25):
        base.set_class_bias(net, float(b) + offsets)
        with torch.no_grad():
            out = net(calib)
        preds = out[0] if isinstance(out, (list, tuple)) else out
        preds = preds[0] if isinstance(preds, (list, tuple)) else preds
        kept = [len(d) for d in non_max_suppression(preds, CONF, IOU, max_det=MAX_DET, nc=NC)]
        if base.KEPT_RANGE[0] <= min(kept) and max(kept) <= base.KEPT_RANGE[1] and (
                best is None or min(kept) > best[1]):
            best = (float(b), min(kept))
    assert best is not None
    return best[0]


def reference(session, predictor, img_path: Path) -> dict[str, np.ndarray]:
    img0 = cv2.imread(str(img_path))
    x = predictor.preprocess([img0])
    inp = x.numpy().astype(np.float32)
    raw0, raw1 = session.run(None, {session.get_inputs()[0].name: inp})
    det = non_max_suppression(torch.from_numpy(raw0), conf_thres=CONF, iou_thres=IOU,
                              agnostic=False, max_det=MAX_DET, nc=NC)[0]
    boxes = uops.scale_boxes(x.shape[2:], det[:, :4].clone(), img0.shape)
    masks = uops.process_mask_native(torch.from_numpy(raw1)[0], det[:, 6:], boxes, img0.shape[:2])
    keep = masks.amax((-2, -1)) > 0
    masks, boxes, det = masks[keep], boxes[keep], det[keep]
    lb = LetterBox(IMGSZ, auto=False, stride=32).get_params({"img": img0})
    m = masks.numpy().astype(bool)
    return {
        "raw0": raw0.astype(np.float32),
        "raw1": raw1.astype(np.float32),
        "boxes": boxes.numpy().astype(np.float32),
        "scores": det[:, 4].numpy().astype(np.float32),
        "classes": det[:, 5].numpy().astype(np.int64),
        "masks_packed": np.packbits(m.reshape(len(m), -1), axis=1),
        "mask_shape": np.array(m.shape, dtype=np.int64),
        "dropped_empty": np.array(int((~keep).sum())),
        "conf": np.array(CONF), "iou": np.array(IOU), "max_det": np.array(MAX_DET),
        "orig_shape": np.array(img0.shape[:2], dtype=np.int64),
        "pad": np.array([lb["top"], lb["bottom"], lb["left"], lb["right"]], dtype=np.int64),
        "input": inp,
    }


def check_predictor(yolo: YOLO, img_path: Path, ref: dict) -> dict:
    r = yolo.predict(str(img_path), imgsz=IMGSZ, conf=CONF, iou=IOU, max_det=MAX_DET,
                     device="cpu", verbose=False, retina_masks=True)[0]
    n = len(r.boxes)
    m = np.unpackbits(ref["masks_packed"], axis=1)[:, : int(np.prod(ref["mask_shape"][1:]))]
    ok = n == len(ref["boxes"]) and n > 0
    return {
        "n_predictor": n, "n_manual": len(ref["boxes"]),
        "boxes_max_abs_diff": float(np.abs(r.boxes.xyxy.numpy() - ref["boxes"]).max()) if ok else None,
        "masks_differing_pixels": int(
            (r.masks.data.numpy().astype(bool).reshape(n, -1) != m.astype(bool)).sum()) if ok else None,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images = {p.stem: p for p in sorted(IMAGES.glob("*.jpg"))}
    assert len(images) == 3, "run tools/make_yolo_testdata.py first"
    calib = base.letterboxed_batch(images.values())
    report = {"versions": base.versions(), "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        yolo = build_model(Path(tmp), calib)
        report["bias_base"] = yolo.class_bias_base
        onnx_path = base.export_onnx(yolo, OUT / f"{NAME}-{IMGSZ}.onnx", dynamic=False,
                                     work=Path(tmp))
    report["onnx"] = base.describe_onnx(onnx_path)
    session = base.ort_session(onnx_path)
    pred = YOLO(str(onnx_path), task="segment")
    pred.predict(str(next(iter(images.values()))), imgsz=IMGSZ, conf=CONF, iou=IOU,
                 device="cpu", verbose=False, retina_masks=True)
    for name, path in images.items():
        ref = reference(session, pred.predictor, path)
        chk = check_predictor(pred, path, ref)
        del ref["input"]  # oko's letterbox equals Ultralytics' (tests/test_yolo_decoder.py)
        np.savez_compressed(OUT / f"expected_{NAME}_{name}.npz", **ref)
        m = np.unpackbits(ref["masks_packed"], axis=1)
        report["results"][name] = {
            "boxes": len(ref["boxes"]), "classes": len(np.unique(ref["classes"])),
            "dropped_empty": int(ref["dropped_empty"]),
            "mask_pixels_min_median_max": [int(v) for v in np.percentile(m.sum(1), [0, 50, 100])],
            "predictor": chk,
        }
    report["sizes"] = {p.name: p.stat().st_size for p in sorted(OUT.glob("*")) if p.is_file()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
