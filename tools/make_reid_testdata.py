#!/usr/bin/env python3
"""Write a person-ReID ONNX model with random weights, shaped like the ones users bring.

No pretrained ReID weights can be had offline, so the tests and the cross-camera
benchmark use this one as the "ONNX ReID model": the contract of OSNet / BoT / FastReID
exports (input ``images`` [N, 3, 256, 128] RGB normalised with ImageNet mean/std, output
``features`` [N, 512]), a small CNN in between (four stride-2 3x3 convolutions with ReLU,
global average pooling, a linear layer), weights drawn from a fixed seed (He init).
It is a pipeline check, not a model: its embeddings carry little identity.

    python tools/make_reid_testdata.py [--out tests/data/reid/reid-random] [--channels 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
MANIFEST = """\
name: {name}
task: embed
family: reid
file: model.onnx
description: >-
  Random-weight person ReID network with the input/output contract of OSNet/BoT/FastReID
  exports (tools/make_reid_testdata.py, seed {seed}). A pipeline check, not a model.
input:
  width: 128
  height: 256
  layout: NCHW
  color: RGB
  mean: [123.675, 116.28, 103.53]   # ImageNet, on 0-255 pixels
  std: [58.395, 57.12, 57.375]
  resize: stretch
labels: []
outputs: [features]
decode:
  normalize: true
licence: CC0-1.0 (generated)
origin: tools/make_reid_testdata.py
"""


def build(channels: int = 3, dim: int = 512, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    widths = [channels, 16, 32, 64, 128]
    nodes, inits = [], []
    x = "images"
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        b = (0.01 * rng.standard_normal(cout)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"conv{i}.w"), numpy_helper.from_array(b, f"conv{i}.b")]
        nodes.append(helper.make_node("Conv", [x, f"conv{i}.w", f"conv{i}.b"], [f"c{i}"],
                                      kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc = (rng.standard_normal((dim, widths[-1])) * np.sqrt(1.0 / widths[-1])).astype(np.float32)
    inits += [numpy_helper.from_array(fc, "fc.w"),
              numpy_helper.from_array(np.zeros(dim, np.float32), "fc.b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["features"], transB=1))
    graph = helper.make_graph(
        nodes, "reid_random",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", channels, 256, 128])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", dim])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="oko tools/make_reid_testdata.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write(out: Path, channels: int = 3, seed: int = 0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(build(channels, seed=seed), out / "model.onnx")
    (out / "manifest.yaml").write_text(MANIFEST.format(name=out.name, seed=seed))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/data/reid/reid-random")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = write(args.out, args.channels, args.seed)
    print(f"wrote {path}/model.onnx ({(path / 'model.onnx').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
