#!/usr/bin/env python3
"""Write tiny constructed-weight semantic-segmentation ONNX models with known class maps.

No road-segmentation weights can be had offline, so the tests of ``oko.road.segmentation``
use graphs whose answer is known by construction. Each is a 1x1 convolution with identity
weights on the normalised RGB input, so the logit of class c at a pixel is that pixel's
normalised channel c: class 0 (``road``) where red is highest, 1 (``lane_marking``) where
green is, 2 (``crack``) where blue is. An image of pure colour regions therefore has an
exactly known class map. Three exports, each with a manifest, in tests/data/road/:

- ``seg-logits`` (family ``mmseg``): logits [N, 3, 64, 64] at input resolution (an
  MMSegmentation / mmdeploy DeepLabV3+ or PSPNet export without argmax);
- ``seg-indices`` (family ``mmseg``): the same followed by ``ArgMax(axis=1, keepdims=1)``,
  class indices int64 [N, 1, 64, 64] (mmdeploy's ``with_argmax=True`` export);
- ``segformer`` (family ``segformer``): the same convolution followed by a 4x4 average pool,
  logits [N, 3, 16, 16] at 1/4 of the input (Hugging Face SegFormer's ``logits``), with its
  input/output names ``pixel_values`` / ``logits``.

All take ImageNet mean/std normalisation (on 0-255 pixels) and a dynamic batch axis.

    python tools/make_semseg_testdata.py [--out tests/data/road]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
SIZE = 64
LABELS = ["road", "lane_marking", "crack"]
MANIFEST = """\
name: {name}
task: segment
family: {family}
file: model.onnx
description: >-
  Constructed-weight {what} (tools/make_semseg_testdata.py): a 1x1 identity convolution, so
  class 0 wins where red is highest, 1 where green is, 2 where blue is. A known-answer test
  model, not a road model.
input:
  name: {input}
  width: {size}
  height: {size}
  layout: NCHW
  color: RGB
  mean: [123.675, 116.28, 103.53]   # ImageNet, on 0-255 pixels
  std: [58.395, 57.12, 57.375]
  resize: {resize}
labels: [road, lane_marking, crack]
outputs: [{output}]
decode:
  colors: [[128, 64, 128], [255, 255, 255], [255, 0, 0]]
  ignore_index: 255
licence: CC0-1.0 (generated)
origin: tools/make_semseg_testdata.py
"""

# name: (family, input name, output name, tail ("", "argmax", "pool4"), resize, what)
MODELS = {
    "seg-logits": ("mmseg", "input", "output", "", "stretch",
                   "MMSegmentation-style export, logits at input resolution"),
    "seg-indices": ("mmseg", "input", "output", "argmax", "letterbox",
                    "MMSegmentation/mmdeploy export with argmax, class indices [N, 1, H, W]"),
    "segformer": ("segformer", "pixel_values", "logits", "pool4", "stretch",
                  "Hugging Face SegFormer-style export, logits at 1/4 resolution"),
}


def build(input_name: str, output_name: str, tail: str) -> onnx.ModelProto:
    nc = len(LABELS)
    weight = np.eye(nc, 3, dtype=np.float32).reshape(nc, 3, 1, 1)
    inits = [numpy_helper.from_array(weight, "cls.w"),
             numpy_helper.from_array(np.zeros(nc, np.float32), "cls.b")]
    conv_out = output_name if not tail else "conv"
    nodes = [helper.make_node("Conv", [input_name, "cls.w", "cls.b"], [conv_out],
                              kernel_shape=[1, 1])]
    out_size = SIZE
    out_type = TensorProto.FLOAT
    out_shape: list = ["N", nc, SIZE, SIZE]
    if tail == "argmax":
        nodes.append(helper.make_node("ArgMax", ["conv"], [output_name], axis=1, keepdims=1))
        out_type, out_shape = TensorProto.INT64, ["N", 1, SIZE, SIZE]
    elif tail == "pool4":
        nodes.append(helper.make_node("AveragePool", ["conv"], [output_name],
                                      kernel_shape=[4, 4], strides=[4, 4]))
        out_size = SIZE // 4
        out_shape = ["N", nc, out_size, out_size]
    graph = helper.make_graph(
        nodes, "semseg_constructed",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(output_name, out_type, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="oko tools/make_semseg_testdata.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write(out: Path) -> list[Path]:
    written = []
    for name, (family, inp, outp, tail, resize, what) in MODELS.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(build(inp, outp, tail), folder / "model.onnx")
        (folder / "manifest.yaml").write_text(MANIFEST.format(
            name=name, family=family, input=inp, output=outp, size=SIZE, resize=resize,
            what=what))
        written.append(folder)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/data/road")
    args = parser.parse_args()
    for folder in write(args.out):
        print(f"wrote {folder}/model.onnx ({(folder / 'model.onnx').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
