"""Port target ``onnxruntime``: f32 as is, f16, static QDQ INT8 close to FP32 on real frames."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from oko.core import ConfigError
from oko.engines import create_engine
from oko.port import get_target
from oko.port.onnxruntime import OnnxRuntimeTarget, fold_pad_into_maxpool, output_tail

from port_cases import DetectorCase, nanodet_case


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> DetectorCase:
    return nanodet_case(tmp_path_factory.mktemp("nanodet"))


def test_registered():
    target = get_target("onnxruntime")
    assert isinstance(target, OnnxRuntimeTarget)
    assert target.precisions == ("f32", "f16", "int8")


def test_f32_is_the_prepared_onnx_as_is(case, tmp_path):
    art = OnnxRuntimeTarget().compile(case.job("f32", tmp_path))
    assert art.engine == {"kind": "onnxruntime"}
    assert art.path.read_bytes() == case.prepared.path.read_bytes()


@pytest.mark.slow
def test_int8_stays_close_to_fp32_on_held_out_frames(case, tmp_path):
    art = OnnxRuntimeTarget().compile(case.job("int8", tmp_path))
    assert art.path == tmp_path / "model.onnx" and art.engine == {"kind": "onnxruntime"}
    graph = onnx.load(str(art.path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 30 and "Pad" not in ops  # Pad(-inf) folded
    # the detector's output tail (Split, Sigmoid, Reshape, Transpose) runs in float
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type == "Sigmoid":
            assert producer[node.input[0]].op_type == "Split"
    outputs, task = case.fidelity(create_engine(art.path, art.engine))
    # measured on this split: cosine 0.9965-0.9988 per output, F1 0.956 (P 0.970, R 0.942)
    for name, fid in outputs.items():
        assert fid.cosine_mean >= 0.99, (name, fid)
    assert task.value >= 0.95, task


@pytest.mark.slow
def test_int8_options_reach_the_quantiser(case, tmp_path):
    art = OnnxRuntimeTarget().compile(case.job("int8", tmp_path, keep_head_float=True,
                                               calibration="percentile"))
    assert "percentile" in " ".join(art.notes)
    assert {"Conv_73", "Conv_78", "Conv_83"} <= set(art.extra["float_nodes"])
    graph = onnx.load(str(art.path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    head = [n for n in graph.node if n.name == "Conv_73"]
    assert head and head[0].input[1] not in producer  # weights: a float initializer, no DQ


def test_f16_halves_the_weights_and_keeps_float32_io(case, tmp_path):
    art = OnnxRuntimeTarget().compile(case.job("f16", tmp_path))
    model = onnx.load(str(art.path))
    weights = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert weights and all(w.data_type == TensorProto.FLOAT16 for w in weights)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    outputs, task = case.fidelity(create_engine(art.path, art.engine))
    assert min(f.cosine_mean for f in outputs.values()) >= 0.9999
    assert task.value >= 0.99


def test_output_tail_of_a_detector(case):
    tail, last = output_tail(onnx.load(str(case.prepared.path)).graph)
    assert last == ["Conv_73", "Conv_78", "Conv_83"]
    assert {"Sigmoid_86", "Sigmoid_90", "Sigmoid_94"} <= set(tail)
    assert not any(name.startswith("Conv") for name in tail)


def test_pad_minus_inf_before_maxpool_folds_exactly():
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    value = numpy_helper.from_array(np.array(-np.inf, np.float32), "value")
    graph = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads", "value"], ["padded"], name="pad"),
         helper.make_node("MaxPool", ["padded"], ["y"], name="pool", kernel_shape=[3, 3],
                          strides=[2, 2])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [pads, value])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = -np.abs(np.random.default_rng(0).standard_normal((1, 2, 9, 9))).astype(np.float32)

    def run(m):
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x})[0]

    before = run(model)
    assert fold_pad_into_maxpool(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MaxPool"]
    assert not model.graph.initializer
    np.testing.assert_array_equal(run(model), before)


def test_bad_requests_are_config_errors(case, tmp_path):
    target = OnnxRuntimeTarget()
    job = case.job("int8", tmp_path / "a")
    job.calibration = {}
    with pytest.raises(ConfigError, match="needs calibration data"):
        target.compile(job)
    with pytest.raises(ConfigError, match="calibrationn"):
        target.compile(case.job("int8", tmp_path / "b", calibrationn="minmax"))
    with pytest.raises(ConfigError, match="no node named 'Conv_999'"):
        target.compile(case.job("int8", tmp_path / "c", exclude=["Conv_999"]))
    with pytest.raises(ConfigError, match="has no bf16"):
        target.check_precision("bf16")
