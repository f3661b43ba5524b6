#!/usr/bin/env python3
"""Write a small random-weight semantic segmentation net shaped like a DeepLab/PSPNet export.

For porting checks (``oko port`` on a segmentation model, mIoU agreement of INT8 vs FP32):
an encoder of three stride-2 3x3 convolutions with BatchNorm folded in and ReLU, a 1x1
classifier to 5 classes at 1/8 resolution and a bilinear Resize back to the input size,
as MMSegmentation exports it (logits [N, 5, 128, 128]). Weights from a fixed seed (He
init); biases spread so that every class wins somewhere on natural images. It is a
graph with the operator mix of real segmentation models, not a road model.

    python tools/make_segnet_random.py [--out tests/data/road/segnet-random]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
LABELS = ["road", "lane_marking", "crack", "pothole", "snow"]
MANIFEST = """\
name: segnet-random
task: segment
family: mmseg
file: model.onnx
description: >-
  Random-weight encoder + 1x1 classifier + bilinear upsampling, MMSegmentation-style
  logits (tools/make_segnet_random.py, seed 0). A porting check, not a road model.
input:
  name: input
  width: 128
  height: 128
  layout: NCHW
  color: RGB
  mean: [123.675, 116.28, 103.53]
  std: [58.395, 57.12, 57.375]
  resize: stretch
labels: [road, lane_marking, crack, pothole, snow]
outputs: [output]
licence: CC0-1.0 (generated)
origin: tools/make_segnet_random.py
"""


def build(seed: int = 0, size: int = 128) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    widths = [3, 16, 32, 64]
    nodes, inits = [], []
    x = "input"
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        b = (0.05 * rng.standard_normal(cout)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"enc{i}.w"), numpy_helper.from_array(b, f"enc{i}.b")]
        nodes += [helper.make_node("Conv", [x, f"enc{i}.w", f"enc{i}.b"], [f"c{i}"],
                                   kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    n = len(LABELS)
    cls_w = (rng.standard_normal((n, widths[-1], 1, 1)) * np.sqrt(1.0 / widths[-1])).astype(
        np.float32)
    inits += [numpy_helper.from_array(cls_w, "cls.w"),
              numpy_helper.from_array(np.linspace(-0.2, 0.2, n).astype(np.float32), "cls.b"),
              numpy_helper.from_array(np.array([], np.float32), "roi"),
              numpy_helper.from_array(np.array([1, 1, 8, 8], np.float32), "scales")]
    nodes += [helper.make_node("Conv", [x, "cls.w", "cls.b"], ["low"]),
              helper.make_node("Resize", ["low", "roi", "scales"], ["output"], mode="linear",
                               coordinate_transformation_mode="half_pixel")]
    graph = helper.make_graph(
        nodes, "segnet_random",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="oko tools/make_segnet_random.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/data/road/segnet-random")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    onnx.save(build(), args.out / "model.onnx")
    (args.out / "manifest.yaml").write_text(MANIFEST)
    print(f"wrote {args.out}/model.onnx ({(args.out / 'model.onnx').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
