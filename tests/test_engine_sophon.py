"""Sophon engine: config, bmodel header, quantised I/O, batches and several inputs.

Slow tests compile with the real TPU-MLIR toolchain and run in its cmodel simulator (see
test_port_sophon.py for the fidelity tests of whole ports).
"""

from __future__ import annotations

import struct

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from oko.core.errors import ConfigError, EngineLoadError, ModelContractError, ModelNotFoundError
from oko.engines import create_engine, engine_names, parse_engine_config
from oko.engines import sophon as eng
from oko.port import tpu_mlir
from oko.port.base import PortJob, get_target
from oko.port.sophon import similarity

from test_port_sophon import build_cnn, image_tensors, realistic_images


def fake_bmodel(path, chip: str = "BM1684X"):
    """A bmodel header and a minimal flatbuffer Model table with only its chip field."""
    name = chip.encode()
    fb = bytearray()
    fb += struct.pack("<I", 16)  # root table offset
    fb += struct.pack("<HHHHHH", 12, 8, 0, 0, 0, 4)  # vtable: fields 0-2 absent, chip at +4
    fb += struct.pack("<i", 16 - 4)  # table: soffset back to the vtable
    fb += struct.pack("<I", 4)  # chip: uoffset to the string right after
    fb += struct.pack("<I", len(name)) + name + b"\0"
    head = struct.pack("<IIIQ", eng.BMODEL_MAGIC, 64, len(fb), 0).ljust(64, b"\0")
    path.write_bytes(head + bytes(fb))
    return path


def test_engine_is_registered_and_config_is_strict():
    assert "sophon" in engine_names()
    cfg = parse_engine_config({"kind": "sophon", "chip": "bm1684", "device_id": 1})
    assert (cfg.chip, cfg.device_id, cfg.runtime) == ("bm1684", 1, "auto")
    with pytest.raises(ConfigError, match="chip"):
        parse_engine_config({"kind": "sophon", "chip": "bm1688"})
    with pytest.raises(ConfigError, match="devce_id"):
        parse_engine_config({"kind": "sophon", "devce_id": 0})
    with pytest.raises(ConfigError, match="device_id"):
        parse_engine_config({"kind": "sophon", "device_id": -1})


def test_bmodel_header_names_the_chip(tmp_path):
    assert eng.bmodel_chip(fake_bmodel(tmp_path / "a.bmodel", "BM1684X")) == "bm1684x"
    assert eng.bmodel_chip(fake_bmodel(tmp_path / "b.bmodel", "BM1684")) == "bm1684"
    (tmp_path / "c.bmodel").write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(EngineLoadError, match="not a .bmodel file"):
        eng.bmodel_chip(tmp_path / "c.bmodel")


def test_wrong_chip_and_missing_file_fail_before_any_runtime_loads(tmp_path):
    path = fake_bmodel(tmp_path / "m.bmodel", "BM1684")
    with pytest.raises(EngineLoadError, match="compiled for BM1684, but the engine is set up "
                                              "for BM1684X"):
        create_engine(path, {"kind": "sophon", "chip": "bm1684x"})
    with pytest.raises(ModelNotFoundError):
        create_engine(tmp_path / "nope.bmodel", "sophon")


def test_simulator_without_toolchain_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OKO_TOOLCHAIN_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(eng, "_SIMULATOR", {})
    monkeypatch.setattr(eng, "device_present", lambda: False)
    with pytest.raises(EngineLoadError, match="no Sophon device here and no TPU-MLIR toolchain") as err:
        create_engine(fake_bmodel(tmp_path / "m.bmodel"), "sophon")
    assert "oko port --target bm1684x" in str(err.value)


def test_quantised_io_conversions():
    # bmruntime: input scale multiplies (127/threshold), output scale is the step
    t_in = eng._Tensor("x", np.dtype(np.int8), 2, scale=20.0, zero_point=0)
    x = np.array([-10.0, -0.024, 0.025, 1.0, 6.35, 7.0], np.float32)
    q = eng._to_device(x, t_in, x.shape)
    assert q.dtype == np.int8 and q.tolist() == [-128, 0, 1, 20, 127, 127]
    t8 = eng._Tensor("y", np.dtype(np.int8), 2, scale=0.05, zero_point=0)
    assert eng._to_float(q, t8).tolist() == pytest.approx([-6.4, 0, 0.05, 1.0, 6.35, 6.35])
    tu8 = eng._Tensor("y", np.dtype(np.uint8), 3, scale=0.5, zero_point=10)
    assert eng._to_float(np.array([10, 12], np.uint8), tu8).tolist() == [0.0, 1.0]
    f16 = eng._Tensor("h", np.dtype(np.float16), 1, 1.0, 0)
    assert eng._to_device(x, f16, x.shape).dtype == np.float16
    bf16 = eng._Tensor("b", np.dtype(np.uint16), 8, 1.0, 0)
    y = np.array([1.0, -2.5, 3.140625], np.float32)
    assert eng._to_float(eng._to_device(y, bf16, y.shape), bf16).tolist() == [1.0, -2.5, 3.140625]


# ------------------------------------------------------------------------- slow tests


@pytest.fixture(scope="module")
def toolchain():
    return tpu_mlir.ensure_toolchain()


def two_input_model(path):
    """image (B,3,32,32) and offset (B,8) -> score (B,8), map (B,8,16,16), batch 2."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1] * 4,
                         strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["map"]),
        helper.make_node("GlobalAveragePool", ["map"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Add", ["flat", "offset"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes, "two_inputs",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [2, 3, 32, 32]),
         helper.make_tensor_value_info("offset", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [2, 8]),
         helper.make_tensor_value_info("map", TensorProto.FLOAT, [2, 8, 16, 16])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
def test_two_inputs_batch_two_and_partial_batches(toolchain, tmp_path):
    onnx_path = two_input_model(tmp_path / "two.onnx")
    job = PortJob(onnx_path=onnx_path, model_name="two", precision="f32",
                  input_names=["image", "offset"],
                  input_shapes={"image": (2, 3, 32, 32), "offset": (2, 8)},
                  output_names=["score", "map"], calibration={}, work_dir=tmp_path / "w")
    job.work_dir.mkdir()
    artifact = get_target("bm1684x").compile(job)
    engine = create_engine(artifact.path, artifact.engine)
    assert engine.max_batch == 2
    assert [(s.name, s.shape) for s in engine.inputs()] == [("image", (2, 3, 32, 32)),
                                                          ("offset", (2, 8))]
    assert [(s.name, s.shape) for s in engine.outputs()] == [("score", (2, 8)),
                                                           ("map", (2, 8, 16, 16))]
    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    offset = rng.standard_normal((2, 8)).astype(np.float32)
    ref = ort.InferenceSession(str(onnx_path)).run(None, {"image": image, "offset": offset})
    got = engine.run({"image": image, "offset": offset})
    np.testing.assert_allclose(got["score"], ref[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["map"], ref[1], rtol=1e-4, atol=1e-4)
    one = engine.run({"image": image[:1], "offset": offset[:1]})  # padded to 2, cut back
    assert one["score"].shape == (1, 8) and one["map"].shape == (1, 8, 16, 16)
    np.testing.assert_allclose(one["score"], ref[0][:1], rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelContractError, match="fit none of the bmodel's compiled shapes"):
        engine.run({"image": np.zeros((3, 3, 32, 32), np.float32),
                    "offset": np.zeros((3, 8), np.float32)})
    with pytest.raises(ModelContractError, match="missing input 'offset'"):
        engine.run({"image": image})
    # without names in the config the engine reports TPU-MLIR's own output names
    raw = create_engine(artifact.path, {"kind": "sophon"})
    assert [s.name for s in raw.outputs()] != ["score", "map"]
    with pytest.raises(EngineLoadError, match="names 1 outputs but the bmodel has 2"):
        create_engine(artifact.path, {"kind": "sophon", "output_names": ["score"]})


@pytest.mark.slow
def test_int8_inputs_and_outputs_are_quantised_with_the_bmodel_scales(toolchain, tmp_path):
    images = realistic_images()
    onnx_path = build_cnn(tmp_path / "cnn.onnx", center_on=image_tensors(images, 64, 11, 16))
    work = tmp_path / "w"
    work.mkdir()
    mlir = tpu_mlir.transform(toolchain, onnx_path, "cnn", [(1, 3, 64, 64)], work, work / "t.log")
    samples = []
    for i, x in enumerate(image_tensors(images, 64, 1, 16)):
        samples.append(work / f"s{i}.npz")
        np.savez(samples[-1], input=x[None])
    table = tpu_mlir.calibrate(toolchain, mlir, samples, work, work / "c.log")
    bmodel = tpu_mlir.deploy(toolchain, mlir, "INT8", "bm1684x", work / "q.bmodel",
                             work / "d.log", calibration_table=table,
                             extra_args=["--quant_input", "--quant_output"])
    engine = create_engine(bmodel, {"kind": "sophon", "output_names": ["logits", "features"]})
    desc = engine._net.desc
    assert [t.dtype for t in desc.inputs] == [np.dtype(np.int8)]
    assert [t.dtype for t in desc.outputs] == [np.dtype(np.int8), np.dtype(np.uint8)]  # ReLU
    assert all(t.scale > 0 for t in desc.inputs + desc.outputs)
    assert all(s.dtype == np.float32 for s in engine.inputs() + engine.outputs())
    session = ort.InferenceSession(str(onnx_path))
    for x in image_tensors(images, 64, 2, 6):
        ref = session.run(None, {"input": x[None]})
        got = engine.run({"input": x[None]})
        assert got["logits"].dtype == np.float32
        assert similarity(got["logits"], ref[0])[0] >= 0.98
        assert similarity(got["features"], ref[1])[0] >= 0.98
