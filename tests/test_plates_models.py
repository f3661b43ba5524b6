"""The vendored plate models: files match their recorded provenance, manifests match the
graphs, and the recogniser reads a clean rendered plate."""

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from oko.core.errors import ModelContractError
from oko.models import load_detector
from oko.models.recognizer import load_recognizer
from oko.models.zoo import resolve_model
from oko.plates.reader import CtcPlateReader

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("name", ["plate-corners-retina", "ppocr-rec-v4"])
def test_vendored_files_match_their_provenance(name):
    manifest = resolve_model(name)
    data = manifest.model_path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest.provenance["sha256"]
    assert (manifest.model_path.parent / "LICENSE-Apache-2.0.txt").is_file()
    assert "Apache-2.0" in manifest.licence
    readme = (MODELS / "README.md").read_text(encoding="utf-8")
    assert name in readme and manifest.provenance["sha256"] in readme


def test_recogniser_dictionary_matches_the_graph(tmp_path):
    rec = load_recognizer("ppocr-rec-v4")
    assert len(rec.charset) == 6625 and rec.charset[0] == "" and rec.charset[-1] == " "
    # The same graph described with one class too few is refused at load.
    folder = MODELS / "ppocr-rec-v4"
    data = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))
    data["decode"]["append_space"] = False
    data["file"] = str(folder / "model.onnx")
    data["decode"]["dictionary"] = str(folder / "dict.txt")
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ModelContractError, match="6625 classes"):
        load_recognizer(str(tmp_path))


def test_recogniser_reads_a_rendered_plate():
    plate = np.full((60, 280, 3), 235, np.uint8)
    cv2.putText(plate, "A123BC77", (12, 46), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (15, 15, 15), 3)
    read, = CtcPlateReader(load_recognizer("ppocr-rec-v4")).read([plate], [1])
    assert read.text == "A123BC77" and np.all(read.confidences > 0.5)


def test_plate_detector_loads_with_its_contract():
    det = load_detector("plate-corners-retina")
    assert det.labels == ["plate"] and det.adapter.priors.shape == (16800, 4)
    assert det([np.zeros((480, 640, 3), np.uint8)])[0].keypoints.shape[1:] == (4, 2)


def test_lines_of_different_widths_in_separate_calls():
    plate = np.full((60, 280, 3), 235, np.uint8)
    cv2.putText(plate, "A123BC77", (12, 46), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (15, 15, 15), 3)
    short = plate[:, :150].copy()
    rec = load_recognizer("ppocr-rec-v4", batch=1)
    probs = rec([short, plate])
    # One call per line, each only as wide as its line: the shorter sequence is padded
    # with certain blanks, which decode to nothing.
    assert probs.shape[0] == 2 and probs.shape[2] == 6625
    assert np.all(probs[0, -1, rec.blank] == 1.0)
    reads = CtcPlateReader(rec).read([plate, short, plate], [1, 1, 1])
    assert reads[0].text == reads[2].text == "A123BC77"
    assert reads[1].text.startswith("A123") and len(reads[1].text) < 8
