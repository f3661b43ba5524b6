"""Regenerate tests/data/yolo/: small YOLOv8 / YOLO11 ONNX models and Ultralytics' results on them.

oko decodes Ultralytics detection ONNX (output [1, 4+nc, N]) with its own numpy code. This script
makes reference data with Ultralytics' own code, so that the oko test suite can check its letterbox,
decoder, NMS and box scaling without torch installed. It is NOT part of oko and never runs in CI:
it needs torch and ultralytics, which live in a throw-away virtual environment outside the repo.

Setup (CPU-only torch, pinned through a constraint file so pip never pulls the CUDA wheels)::

    python3.11 -m venv /tmp/ultra-venv
    echo "torch==2.13.0" > /tmp/constraints.txt
    /tmp/ultra-venv/bin/pip install -c /tmp/constraints.txt torch==2.13.0   # torch-2.13.0+cpu
    # ultralytics depends on torchvision, whose PyPI wheels are CUDA builds that cannot load
    # their C++ ops against CPU torch: install ultralytics without deps and add its other deps
    # by hand (see TorchvisionShim).
    /tmp/ultra-venv/bin/pip install -c /tmp/constraints.txt --no-deps ultralytics==8.4.190
    /tmp/ultra-venv/bin/pip install -c /tmp/constraints.txt numpy matplotlib \
        "opencv-python>=4.7" pillow pyyaml requests psutil polars nvidia-ml-py \
        ultralytics-thop ultralytics-platform onnx onnxslim onnxruntime scikit-image
    apt-get install -y opencv-doc   # /usr/share/doc/opencv-doc/examples/data/vtest.avi

Run (from the repository root; takes about a minute on 2 cores)::

    /tmp/ultra-venv/bin/python tools/make_yolo_testdata.py

What it does:

1. Three JPEG test images (quality 90): frames 0 and 400 of OpenCV's vtest.avi (768x576) and
   scikit-image's astronaut cropped to a 333x500 portrait (odd left/right letterbox padding).
2. yolov8n and yolo11n with the real Ultralytics architecture and Detect head (nc=80) but width
   multiple 1/16 to keep the ONNX files small; random weights (torch.manual_seed(0)); BatchNorm
   statistics taken from the three images so activations neither vanish nor explode; box-branch
   output convs scaled x2 so box sizes vary; class-branch biases reset to base + 1.0 * N(0, 1) per
   class, base chosen so that Ultralytics' NMS keeps between 10 and 299 boxes per image.
3. ONNX export with Ultralytics' exporter (imgsz=320, opset=17, simplify=True; static, plus a
   dynamic yolov8n).
4. Per model and image: the predictor's preprocessed input, the raw onnxruntime output,
   Ultralytics' non_max_suppression + scale_boxes results; cross-checked against the full
   Ultralytics predictor on the ONNX file. Then README.md is written from the results.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "yolo"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")

IMGSZ = 320
OPSET = 17
CONF = 0.25
IOU = 0.7
MAX_DET = 300
SEED = 0
JPEG_QUALITY = 90
VTEST_FRAMES = (0, 400)
ASTRONAUT_SIZE = (333, 500)  # (w, h): portrait, odd horizontal padding at 320
WIDTH_MULTIPLE = 0.0625  # Ultralytics 'n' is 0.25; 1/16 keeps each ONNX file around 1.5-2.5 MB
BOX_WEIGHT_GAIN = 2.0  # box-branch final conv weights x2: sharper DFL, varied box sizes
CLS_BIAS_SPREAD = 1.0  # class-branch final conv bias = base + spread * N(0, 1), one value per class
KEPT_RANGE = (10, 299)  # boxes per image after NMS that the chosen base must give

# model name -> (Ultralytics yaml, depth multiple of its 'n' scale)
MODELS = {"yolov8n": ("v8/yolov8.yaml", 0.33), "yolo11n": ("11/yolo11.yaml", 0.50)}


class TorchvisionShim:
    """Stand-in for torchvision, which Ultralytics imports but this venv cannot have.

    The only torchvision wheels on PyPI for Linux x86_64 are CUDA builds (their _C.so links
    libtorch_cuda and libc10_cuda, absent from CPU torch), so torchvision.ops.nms cannot work
    against CPU torch. Ultralytics needs torchvision for two things on this path: its version
    metadata at import (ultralytics/utils/__init__.py) and `import torchvision` in the predictor
    warm-up, after which non_max_suppression() calls torchvision.ops.nms. This shim answers the
    metadata query and provides torchvision.ops.nms as Ultralytics' own pure-torch TorchNMS.nms,
    the fallback its non_max_suppression() uses whenever torchvision is not imported (documented
    by Ultralytics as matching torchvision behaviour exactly). So every NMS here is TorchNMS.nms.
    """

    VERSION = "0.28.0+okoshim"

    @classmethod
    def install(cls) -> None:
        real_version = importlib.metadata.version

        def version(name: str) -> str:
            return cls.VERSION if name == "torchvision" else real_version(name)

        importlib.metadata.version = version
        tv = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")

        def nms(boxes, scores, iou_threshold):
            from ultralytics.utils.nms import TorchNMS

            return TorchNMS.nms(boxes, scores, iou_threshold)

        ops.nms = nms
        tv.ops = ops
        tv.__version__ = cls.VERSION
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.ops"] = ops


# Ultralytics must stay offline and keep its settings out of $HOME; the shim must exist before
# its first import.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "ultralytics-config"))
TorchvisionShim.install()

import onnx
import onnxruntime as ort
import torch
import ultralytics
from ultralytics import YOLO
from ultralytics.data.augment import LetterBox
from ultralytics.utils import YAML
from ultralytics.utils import ops as uops
from ultralytics.utils.checks import check_yaml
from ultralytics.utils.metrics import box_iou
from ultralytics.utils.nms import non_max_suppression

# ----------------------------------------------------------------------------------------- images


def make_images(out_dir: Path) -> dict[str, Path]:
    """Write the three test JPEGs and return {name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {
        f"vtest-{i:04d}": frame for i, frame in zip(VTEST_FRAMES, read_vtest_frames(VTEST_FRAMES))
    }
    images["astronaut"] = make_astronaut()
    paths = {}
    for name, bgr in images.items():
        paths[name] = out_dir / f"{name}.jpg"
        assert cv2.imwrite(str(paths[name]), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return paths


def read_vtest_frames(indices) -> list[np.ndarray]:
    """Decode vtest.avi sequentially (seeking is not always frame-exact), keep the given frames."""
    cap = cv2.VideoCapture(str(VTEST))
    assert cap.isOpened(), f"cannot open {VTEST} (apt-get install opencv-doc)"
    frames, i = {}, 0
    while len(frames) < len(indices):
        ok, frame = cap.read()
        assert ok, f"{VTEST} ended at frame {i}"
        if i in indices:
            frames[i] = frame
        i += 1
    cap.release()
    return [frames[i] for i in indices]


def make_astronaut() -> np.ndarray:
    """scikit-image's astronaut (NASA, public domain), 512x512 RGB -> 2:3 crop -> 333x500 BGR."""
    from skimage import data

    rgb = data.astronaut()[:, 60:401]  # 512 rows x 341 columns
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    return cv2.resize(bgr, ASTRONAUT_SIZE, interpolation=cv2.INTER_AREA)


def letterboxed_batch(paths) -> torch.Tensor:
    """The images as Ultralytics preprocesses them (LetterBox, BGR->RGB, /255): calibration."""
    letterbox = LetterBox(IMGSZ, auto=False, stride=32)
    ims = [letterbox(image=cv2.imread(str(p)))[..., ::-1] for p in paths]
    return torch.from_numpy(np.stack(ims).copy()).permute(0, 3, 1, 2).float() / 255


# ----------------------------------------------------------------------------------------- models


def narrow_yaml(name: str, work: Path) -> Path:
    """Copy Ultralytics' model yaml; only the 'n' scale's width multiple becomes WIDTH_MULTIPLE."""
    src_rel, depth = MODELS[name]
    text = (Path(ultralytics.__file__).parent / "cfg" / "models" / src_rel).read_text()
    text, n = re.subn(r"\n  n: \[[^\]]*\]", f"\n  n: [{depth}, {WIDTH_MULTIPLE}, 1024]", text)
    assert n == 1, f"no 'n' scale in {src_rel}"
    dst = work / f"{name}.yaml"  # the 'n' in the file name selects the scale
    dst.write_text(text)
    return dst


def build_model(name: str, work: Path, calib: torch.Tensor) -> YOLO:
    """Random-weight model with detector-like outputs: varied boxes, about 100 per image."""
    torch.manual_seed(SEED)
    yolo = YOLO(str(narrow_yaml(name, work)), task="detect")
    net = yolo.model
    detect = net.model[-1]
    assert type(detect).__name__ == "Detect" and detect.nc == 80
    # class names as in a COCO-trained export's metadata
    net.names = YAML.load(check_yaml("coco.yaml"))["names"]
    calibrate_batchnorm(net, calib)
    with torch.no_grad():
        for seq in detect.cv2:  # box branch: Conv, Conv, Conv2d(c2, 4*reg_max)
            seq[-1].weight.mul_(BOX_WEIGHT_GAIN)
        offsets = CLS_BIAS_SPREAD * torch.randn(
            detect.nc, generator=torch.Generator().manual_seed(SEED)
        )
        base = choose_class_bias(net, calib, offsets)
        set_class_bias(net, base + offsets)
    print(f"{name}: class bias base {base}, {sum(p.numel() for p in net.parameters())} parameters")
    yolo.class_bias_base = base
    return yolo


def calibrate_batchnorm(net: torch.nn.Module, calib: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of the calibration batch (train pass)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            # cumulative average: after one batch, exactly that batch's statistics
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(calib)
    net.eval()


def set_class_bias(net: torch.nn.Module, bias: torch.Tensor) -> None:
    for seq in net.model[-1].cv3:  # class branch: ..., Conv2d(c3, nc)
        seq[-1].bias.data[:] = bias


def choose_class_bias(net: torch.nn.Module, calib: torch.Tensor, offsets: torch.Tensor) -> float:
    """Base from a fixed grid: every image's NMS count within KEPT_RANGE, largest minimum count."""
    best = None
    for base in np.arange(-2.0, -10.01, -0.25):
        set_class_bias(net, float(base) + offsets)
        with torch.no_grad():
            preds = net(calib)[0]
        kept = [len(d) for d in non_max_suppression(preds, CONF, IOU, max_det=MAX_DET)]
        if (
            KEPT_RANGE[0] <= min(kept)
            and max(kept) <= KEPT_RANGE[1]
            and (best is None or min(kept) > best[1])
        ):
            best = (float(base), min(kept))
    assert best is not None, "no class bias gives the wanted number of boxes"
    return best[0]


def export_onnx(yolo: YOLO, dst: Path, dynamic: bool, work: Path) -> Path:
    """Ultralytics' ONNX exporter (it writes <yaml stem>.onnx into the cwd), then move it to dst."""
    with contextlib.chdir(work):
        f = Path(
            yolo.export(
                format="onnx",
                imgsz=IMGSZ,
                opset=OPSET,
                simplify=True,
                dynamic=dynamic,
                device="cpu",
            )
        )
        shutil.move(f.resolve(), dst)
    return dst


def describe_onnx(path: Path) -> dict:
    model = onnx.load(str(path))

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {
        "inputs": {i.name: dims(i) for i in model.graph.input},
        "outputs": {o.name: dims(o) for o in model.graph.output},
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "bytes": path.stat().st_size,
    }


# -------------------------------------------------------------------------------------- reference


def ort_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def reference(session: ort.InferenceSession, predictor, img_path: Path) -> dict[str, np.ndarray]:
    """Input, raw output and final detections for one image, all by Ultralytics' own functions."""
    img0 = cv2.imread(str(img_path))  # what Ultralytics' image loader does for a file source
    x = predictor.preprocess([img0])  # the predictor's LetterBox + BGR->RGB + /255, NCHW float32
    inp = x.numpy()
    raw = session.run(None, {session.get_inputs()[0].name: inp})[0]
    det = non_max_suppression(
        torch.from_numpy(raw), conf_thres=CONF, iou_thres=IOU, agnostic=False, max_det=MAX_DET
    )[0]
    boxes = uops.scale_boxes(x.shape[2:], det[:, :4].clone(), img0.shape)
    lb = LetterBox(IMGSZ, auto=False, stride=32).get_params({"img": img0})
    return {
        "input": inp.astype(np.float32),
        "raw": raw.astype(np.float32),
        "boxes": boxes.numpy().astype(np.float32),
        "scores": det[:, 4].numpy().astype(np.float32),
        "classes": det[:, 5].numpy().astype(np.int64),
        "conf": np.array(CONF),
        "iou": np.array(IOU),
        "max_det": np.array(MAX_DET),
        "orig_shape": np.array(img0.shape[:2], dtype=np.int64),
        "pad": np.array([lb["top"], lb["bottom"], lb["left"], lb["right"]], dtype=np.int64),
    }


def make_predictor(onnx_path: Path, any_image: Path) -> YOLO:
    """YOLO on the ONNX file; one predict() sets up its predictor (imgsz, letterbox, backend)."""
    yolo = YOLO(str(onnx_path), task="detect")
    yolo.predict(
        str(any_image),
        imgsz=IMGSZ,
        conf=CONF,
        iou=IOU,
        max_det=MAX_DET,
        device="cpu",
        verbose=False,
    )
    return yolo


def check_predictor(yolo: YOLO, img_path: Path, ref: dict) -> dict:
    """Full Ultralytics predictor on the ONNX file vs the manual path: raw output, detections."""
    predictor = yolo.predictor
    raw = predictor.model(torch.from_numpy(ref["input"]))
    raw = (raw[0] if isinstance(raw, (list, tuple)) else raw).numpy()
    r = yolo.predict(
        str(img_path), imgsz=IMGSZ, conf=CONF, iou=IOU, max_det=MAX_DET, device="cpu", verbose=False
    )[0]
    boxes, scores = r.boxes.xyxy.numpy(), r.boxes.conf.numpy()
    classes = r.boxes.cls.numpy().astype(np.int64)
    comparable = len(boxes) == len(ref["boxes"]) > 0

    def max_diff(a, b):
        return float(np.abs(a - b).max()) if comparable else None

    return {
        "raw_max_abs_diff": max_diff(raw, ref["raw"]),
        "n_predictor": len(boxes),
        "n_manual": len(ref["boxes"]),
        "boxes_max_abs_diff": max_diff(boxes, ref["boxes"]),
        "scores_max_abs_diff": max_diff(scores, ref["scores"]),
        "classes_equal": bool(comparable and np.array_equal(classes, ref["classes"])),
    }


def margins(ref: dict) -> dict:
    """How close the data sit to decision boundaries (ties, conf, IoU): for test tolerances."""
    pred = ref["raw"][0].T  # (N, 4 + nc)
    cls_scores = pred[:, 4:]
    best = cls_scores.max(1)
    cand = best > CONF
    top2 = np.sort(cls_scores, 1)[:, -2:]
    out = {
        "candidates": int(cand.sum()),
        "min_abs_score_minus_conf": float(np.abs(best - CONF).min()),
    }
    if cand.any():
        out["min_top1_top2_gap_candidates"] = float((top2[cand, 1] - top2[cand, 0]).min())
    s, c = best[cand], cls_scores[cand].argmax(1)
    key = np.stack([s, c]).T
    out["exact_score_ties_same_class"] = int(len(key) - len(np.unique(key, axis=0)))
    out["exact_score_ties_kept"] = int(len(ref["scores"]) - len(np.unique(ref["scores"])))
    xyxy = uops.xywh2xyxy(torch.from_numpy(pred[cand, :4].copy()))
    iou = box_iou(xyxy, xyxy).numpy()
    same = (c[:, None] == c[None, :]) & ~np.eye(len(c), dtype=bool)
    out["same_class_pairs_iou_gt_thres"] = int((iou[same] > IOU).sum() // 2)
    out["min_abs_iou_minus_thres_same_class"] = (
        float(np.abs(iou[same] - IOU).min()) if same.any() else None
    )
    out["boxes_differing_without_class_offset"] = offset_sensitivity(ref)
    return out


def offset_sensitivity(ref: dict) -> int:
    """How many kept boxes change if each class is NMSed alone, without the class offset.

    Ultralytics separates classes by adding class_id * max_wh (7680) to the float32 coordinates,
    which rounds them (to 1/32 px near class 59) and can flip an IoU sitting next to the threshold.
    Per class, with agnostic=True (no offset) and classes=[k], its own non_max_suppression gives the
    exact-coordinate result.
    """
    raw = torch.from_numpy(ref["raw"])
    dets = [
        non_max_suppression(raw, CONF, IOU, classes=[k], agnostic=True, max_det=MAX_DET)[0]
        for k in range(80)
    ]
    dets = torch.cat(dets)
    dets = dets[dets[:, 4].argsort(descending=True)][:MAX_DET]
    exact = {(float(s), int(c)) for s, c in zip(dets[:, 4], dets[:, 5])}
    stored = {(float(s), int(c)) for s, c in zip(ref["scores"], ref["classes"])}
    return len(stored - exact) + len(exact - stored)


def check_dynamic(static: Path, dynamic: Path, batch: np.ndarray) -> dict:
    """The dynamic-batch export has the same weights: same raw output per image, batched or not."""
    a = np.concatenate([ort_session(static).run(None, {"images": x[None]})[0] for x in batch])
    sess = ort_session(dynamic)
    b1 = np.concatenate([sess.run(None, {"images": x[None]})[0] for x in batch])
    bn = sess.run(None, {"images": batch})[0]
    return {
        "max_abs_diff_single": float(np.abs(a - b1).max()),
        "max_abs_diff_batched": float(np.abs(a - bn).max()),
    }


# ----------------------------------------------------------------------------------------- README

README_TEMPLATE = """\
# YOLOv8 / YOLO11 ONNX reference data

Generated by `tools/make_yolo_testdata.py` (do not edit by hand; re-run the script). The reference
results come from Ultralytics' own code, so oko's numpy decoder can be checked against them
**without torch**.

The models have **random weights** (not trained): their detections mean nothing. They only exercise
the output format, decoding, letterbox, class-aware NMS and box scaling exactly as for a real
Ultralytics export.

## Files

| file | what |
|---|---|
| `yolov8n-320.onnx` | YOLOv8n architecture (width multiple 1/16), static input 1x3x320x320 |
| `yolov8n-320-dynamic.onnx` | same weights, exported with `dynamic=True` |
| `yolo11n-320.onnx` | YOLO11n architecture (width multiple 1/16), static input 1x3x320x320 |
| `images/*.jpg` | test images (JPEG quality 90, written by OpenCV) |
| `expected_<model>_<image>.npz` | reference data for one model and one image |

ONNX graphs (opset {opset}, Ultralytics exporter with `simplify=True`, i.e. onnxslim):

{onnx_table}

The output is `[batch, 4 + 80, anchors]`: rows 0-3 are box centre x, centre y, width, height in
input pixels (of the 320x320 letterboxed frame), rows 4-83 the 80 class scores, already sigmoided;
2100 anchors = 40*40 + 20*20 + 10*10 (strides 8, 16, 32). No objectness row. `dynamic=True` in
this Ultralytics version makes batch, height and width dynamic, not only batch. The ONNX metadata
(`metadata_props`) holds the usual Ultralytics keys (`stride`, `task`, `imgsz`, `names` = the COCO
names, `end2end` = False, ...).

The dynamic file has the same weights as `yolov8n-320.onnx`: its raw output on the stored inputs,
one at a time and as a batch of 3, differs from the static file's by at most {dyn_diff}, so the
yolov8n npz files apply to it too.

## npz keys

| key | dtype, shape | meaning |
|---|---|---|
| `input` | float32 (1, 3, 320, 320) | what Ultralytics' predictor feeds the model |
| `raw` | float32 (1, 84, 2100) | onnxruntime (CPUExecutionProvider) output for `input` |
| `boxes` | float32 (K, 4) | x1, y1, x2, y2 in original-image pixels, after NMS and `scale_boxes` |
| `scores` | float32 (K,) | score of each box (its best class score), descending |
| `classes` | int64 (K,) | class id of each box |
| `conf`, `iou`, `max_det` | scalars | thresholds used: {conf}, {iou}, {max_det} |
| `orig_shape` | int64 (2,) | original image height, width |
| `pad` | int64 (4,) | letterbox padding top, bottom, left, right (Ultralytics' LetterBox) |

Boxes per model and image (K), distinct classes among them, NMS candidates (best score > conf):

{results_table}

## How they were made

{versions}

torchvision is not installed: its only Linux x86_64 wheels on PyPI are CUDA builds whose C++ ops
cannot load with CPU torch. The script registers a stand-in that gives Ultralytics the version
metadata it reads at import, and a `torchvision.ops.nms` that is Ultralytics' own pure-torch
`TorchNMS.nms` (the fallback `non_max_suppression` uses whenever torchvision is not imported;
Ultralytics documents it as matching torchvision). All NMS here is therefore `TorchNMS.nms`.

```
python3.11 -m venv /tmp/ultra-venv
echo "torch==2.13.0" > /tmp/constraints.txt
/tmp/ultra-venv/bin/pip install -c /tmp/constraints.txt torch==2.13.0   # CPU wheel, never CUDA
/tmp/ultra-venv/bin/pip install -c /tmp/constraints.txt --no-deps ultralytics=={ultralytics}
/tmp/ultra-venv/bin/pip install -c /tmp/constraints.txt numpy matplotlib \\
    "opencv-python>=4.7" pillow pyyaml requests psutil polars nvidia-ml-py \\
    ultralytics-thop ultralytics-platform onnx onnxslim onnxruntime scikit-image
apt-get install -y opencv-doc   # vtest.avi
/tmp/ultra-venv/bin/python tools/make_yolo_testdata.py
```

Steps (see the script):

1. Images: frames 0 and 400 of `vtest.avi` (768x576, decoded sequentially with OpenCV) and
   scikit-image's `astronaut` (512x512) cropped to columns 60-400 and resized (INTER_AREA) to a
   333x500 portrait, so the letterbox pads left/right by an odd amount (53 + 54). Both vtest frames
   are padded top/bottom by 40 + 40.
2. Models: `yolov8.yaml` / `yolo11.yaml` from Ultralytics with the `n` scale's width multiple set
   to 0.0625 (depth and max channels unchanged; the Detect head is unchanged: nc=80, reg_max=16).
   `torch.manual_seed(0)`; BatchNorm running statistics set from the three letterboxed images
   (otherwise the random net's activations vanish); box-branch last conv weights x2 (varied box
   sizes); class-branch last conv bias = base + N(0, 1) per class (seeded), base = {bias_bases},
   taken from a fixed grid so that every image keeps 10-299 boxes.
3. `model.export(format="onnx", imgsz=320, opset=17, simplify=True, dynamic=False)`, and once more
   with `dynamic=True` for yolov8n.
4. For each model and image, with Ultralytics' own functions:
   - `input`: the predictor of `YOLO("<model>.onnx")`: `preprocess([cv2.imread(jpg)])`;
   - `raw`: onnxruntime on `input`;
   - `ultralytics.utils.nms.non_max_suppression(torch.from_numpy(raw), conf_thres=0.25,
     iou_thres=0.7, agnostic=False, max_det=300)`, then
     `ultralytics.utils.ops.scale_boxes((320, 320), boxes, img.shape)`.
5. Cross-check: `YOLO("<model>.onnx").predict(jpg, imgsz=320, conf=0.25, iou=0.7)` gives the same
   number of boxes and the same classes as stored, boxes and scores with a max abs difference of
   {pred_diff} (its ONNX backend's raw output on `input`: max abs difference {pred_raw_diff}).

## What Ultralytics {ultralytics} does (the behaviour oko must reproduce)

Letterbox (`ultralytics.data.augment.LetterBox`). The predictor passes `auto=False` for ONNX
(unless `rect=True` is asked for with a dynamic model) and keeps the defaults `scaleup=True`,
`center=True`, pad value 114, `cv2.INTER_LINEAR`. For an image h x w and target 320 x 320:

```
r = min(320 / h, 320 / w)                              # small images are upscaled too
new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)   # Python round: half to even
dw, dh = (320 - new_w) / 2, (320 - new_h) / 2
top, bottom = round(dh - 0.1), round(dh + 0.1)         # odd padding: extra pixel bottom/right
left, right = round(dw - 0.1), round(dw + 0.1)
if (w, h) != (new_w, new_h):
    img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                         value=(114, 114, 114))
```

then HWC uint8 BGR -> NCHW, channels flipped to RGB, `float32 / 255` (a division: multiplying by
`np.float32(1 / 255)` differs in the last bit for 126 of the 256 values).

NMS (`ultralytics.utils.nms.non_max_suppression`, defaults as the predictor calls it):

- candidates: anchors whose best class score is `> conf` (strict);
- `multi_label=False`: one detection per anchor, best class only (`max` over the classes; on an
  exact tie, the lowest class id);
- boxes converted from cx, cy, w, h to `(cx - w/2, cy - h/2, cx + w/2, cy + h/2)` in float32;
- with more than `max_nms=30000` candidates, only the 30000 best go on;
- class-aware NMS by a coordinate offset: boxes `+ class_id * max_wh` with `max_wh = 7680`, in
  float32. The offset coarsens the coordinates for high class ids (float32 spacing is 0.0625 near
  606720 = 79 * 7680), which can flip an IoU next to the threshold. It does in these data: NMS run
  class by class on exact coordinates gives a different result (boxes removed + added) for
  {offset_diffs}. To match Ultralytics exactly, add the same offset in float32 before NMS;
- greedy NMS (`TorchNMS.nms`, same as torchvision): order by score descending
  (`argsort(descending=True)`, no explicit stable flag), keep the best, drop the others whose IoU
  with it is `> iou` (kept if `<=`); IoU = inter / (area_i + area_j - inter), areas
  (x2 - x1) * (y2 - y1), no +1, no eps;
- the result is sorted by score descending and cut to `max_det=300` after NMS;
- a time limit (2 s + 0.05 s per image) stops it with a warning (not reached here).

`scale_boxes((320, 320), boxes, (h, w))` (no `ratio_pad`) recomputes the letterbox, then per axis:

```
gain = min(320 / h, 320 / w)
new_h, new_w = max(round(h * gain), 1), max(round(w * gain), 1)
gain_y, gain_x = new_h / h, new_w / w                  # per-axis gains from the rounded size
pad_x = round((320 - new_w) / 2 - 0.1)                 # = left
pad_y = round((320 - new_h) / 2 - 0.1)                 # = top
x = (x - pad_x) / gain_x;  y = (y - pad_y) / gain_y    # in place, float32
x clipped to [0, w], y to [0, h]                       # w and h, not w - 1
```

## Margins (for test tolerances)

No two candidates of one class have exactly the same score and no two kept boxes either, so the
order is unambiguous. Some values sit close to the thresholds, which matters if oko recomputes
`raw` from its own letterbox instead of using the stored `input`:

{margins_table}

(`abs(score - conf)`: smallest distance of any anchor's best score to 0.25; `abs(IoU - iou)`:
smallest distance to 0.7 of the IoU of two candidates of one class.) Decoding the stored `raw`
reproduces `boxes`, `scores` and `classes` up to float32 rounding (exactly, with the class offset
above). A test that starts from the JPEG with oko's own letterbox should match boxes by IoU and
allow a few flips near these margins. `input` was made from the JPEGs as decoded by OpenCV
{opencv} (`cv2.imread`) and resized by `cv2.resize(INTER_LINEAR)`; another JPEG decoder or resize
can differ by a few grey levels.

## Licences

- `images/vtest-*.jpg`: frames of `samples/data/vtest.avi` from the OpenCV repository (Debian
  package `opencv-doc`, `/usr/share/doc/opencv-doc/examples/data/vtest.avi`). OpenCV is
  Apache-2.0 from 4.5.0 on, BSD-3-Clause before; Debian's copyright file lists the tree as
  Apache-2.0 AND BSD-3-Clause.
- `images/astronaut.jpg`: derived from scikit-image's `astronaut` (Eileen Collins, NASA), public
  domain.
- `*.onnx`: graphs produced by Ultralytics' exporter from Ultralytics' model definitions
  (AGPL-3.0), with random weights made by the script; the files carry Ultralytics'
  `license = AGPL-3.0` metadata entry.
"""


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_readme(report: dict) -> None:
    res = report["results"]
    onnx_rows = [
        [
            f"`{f}`",
            *(f"`{n}` {v}" for n, v in {**d["inputs"], **d["outputs"]}.items()),
            f"{d['bytes'] / 1e6:.2f} MB",
        ]
        for f, d in report["onnx"].items()
    ]
    result_rows = [
        [k, v["boxes"], v["classes"], v["margins"]["candidates"], v["pad_tblr"]]
        for k, v in res.items()
    ]
    margin_rows = [
        [
            k,
            f"{v['margins']['min_abs_score_minus_conf']:.1e}",
            f"{v['margins']['min_abs_iou_minus_thres_same_class']:.1e}",
        ]
        for k, v in res.items()
    ]
    pred = [v["predictor"] for v in res.values()]
    text = README_TEMPLATE.format(
        opset=OPSET,
        onnx_table=table(["file", "input", "output", "size"], onnx_rows),
        dyn_diff=max(report["dynamic_vs_static"].values()),
        conf=CONF,
        iou=IOU,
        max_det=MAX_DET,
        results_table=table(
            ["model/image", "K", "classes", "candidates", "pad t,b,l,r"], result_rows
        ),
        versions="\n".join(f"- {k}: {v}" for k, v in report["versions"].items()),
        ultralytics=report["versions"]["ultralytics"],
        bias_bases=", ".join(f"{k} {v}" for k, v in report["bias_base"].items()),
        pred_diff=max(max(p["boxes_max_abs_diff"], p["scores_max_abs_diff"]) for p in pred),
        pred_raw_diff=max(p["raw_max_abs_diff"] for p in pred),
        offset_diffs=", ".join(
            f"{k} ({n})"
            for k, v in res.items()
            if (n := v["margins"]["boxes_differing_without_class_offset"])
        )
        or "none of them",
        opencv=report["versions"]["opencv-python"],
        margins_table=table(
            ["model/image", "min abs(score - conf)", "min abs(IoU - iou), same class"], margin_rows
        ),
    )
    (OUT / "README.md").write_text(text)


# ------------------------------------------------------------------------------------------- main


def versions() -> dict[str, str]:
    names = [
        "ultralytics",
        "torch",
        "onnx",
        "onnxslim",
        "onnxruntime",
        "opencv-python",
        "numpy",
        "scikit-image",
    ]
    v = {n: importlib.metadata.version(n) for n in names}
    v["torchvision"] = (
        f"not installed (shim {TorchvisionShim.VERSION}, NMS = ultralytics TorchNMS.nms)"
    )
    v["python"] = sys.version.split()[0]
    return v


def process_model(
    name: str, work: Path, images: dict[str, Path], calib: torch.Tensor, report: dict
) -> None:
    """Build, export and evaluate one model; write its npz files and fill its part of the report."""
    yolo = build_model(name, work, calib)
    report["bias_base"][name] = yolo.class_bias_base
    static = export_onnx(yolo, OUT / f"{name}-{IMGSZ}.onnx", dynamic=False, work=work)
    report["onnx"][static.name] = describe_onnx(static)
    session = ort_session(static)
    pred_yolo = make_predictor(static, next(iter(images.values())))
    inputs = []
    for img_name, img_path in images.items():
        ref = reference(session, pred_yolo.predictor, img_path)
        np.savez_compressed(OUT / f"expected_{name}_{img_name}.npz", **ref)
        inputs.append(ref["input"][0])
        report["results"][f"{name}/{img_name}"] = {
            "boxes": len(ref["boxes"]),
            "classes": len(np.unique(ref["classes"])),
            "pad_tblr": ref["pad"].tolist(),
            "predictor": check_predictor(pred_yolo, img_path, ref),
            "margins": margins(ref),
        }
    if name == "yolov8n":
        dyn = export_onnx(yolo, OUT / f"{name}-{IMGSZ}-dynamic.onnx", dynamic=True, work=work)
        report["onnx"][dyn.name] = describe_onnx(dyn)
        report["dynamic_vs_static"] = check_dynamic(static, dyn, np.stack(inputs))


def check_report(report: dict) -> None:
    """The claims README.md makes about the data."""
    for key, r in report["results"].items():
        p, m = r["predictor"], r["margins"]
        assert KEPT_RANGE[0] <= r["boxes"] <= KEPT_RANGE[1], key
        assert p["n_predictor"] == p["n_manual"] and p["classes_equal"], key
        assert p["boxes_max_abs_diff"] <= 1e-4 and p["scores_max_abs_diff"] <= 1e-6, key
        assert m["exact_score_ties_same_class"] == 0 and m["exact_score_ties_kept"] == 0, key
    assert max(report["dynamic_vs_static"].values()) <= 1e-4


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    images = make_images(OUT / "images")
    calib = letterboxed_batch(images.values())
    report = {"versions": versions(), "bias_base": {}, "onnx": {}, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            process_model(name, Path(tmp), images, calib, report)
    check_report(report)
    write_readme(report)
    report["sizes"] = {
        str(p.relative_to(OUT)): p.stat().st_size for p in sorted(OUT.rglob("*")) if p.is_file()
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
