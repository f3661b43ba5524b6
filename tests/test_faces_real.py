"""Real photos with the vendored YuNet + SFace (tests/data/faces, see its README).

Thresholds are the OpenCV Zoo's published defaults; nothing here was tuned on these photos.
"""

import hashlib
import json

import cv2
import numpy as np
import pytest
import yaml
from conftest import DATA, ROOT

from oko.core.geometry import box_iou
from oko.faces.align import align_faces
from oko.faces.detect import load_face_detector
from oko.faces.embed import load_embedder
from oko.faces.gallery import Gallery
from oko.faces.matcher import GalleryMatcher
from oko.faces.pipeline import FacePipeline, as_bgr, read_image

FACES = DATA / "faces"
GROUPS = sorted(FACES.glob("group*.jpg"))


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline(load_face_detector(), load_embedder(), min_quality=0.25)


def best_face(pipeline, image):
    res = pipeline([image])[0]
    i = res.largest()
    assert i is not None and res.embedded[i]
    return res.embeddings[i]


@pytest.mark.parametrize("name", ["yunet-face", "sface"])
def test_vendored_model_matches_its_manifest_provenance(name):
    folder = ROOT / "models" / name
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    assert digest == manifest["provenance"]["sha256"]
    assert list(folder.glob("LICENSE*"))


def test_every_face_in_the_group_photos_is_found_and_nothing_else(pipeline):
    truth = json.loads((FACES / "faces.json").read_text())
    total = 0
    for path in GROUPS:
        dets = pipeline.detector([read_image(path)])[0]
        centres = np.array(truth[path.name], np.float32)
        inside = ((centres[:, None, 0] > dets.xyxy[None, :, 0])
                  & (centres[:, None, 0] < dets.xyxy[None, :, 2])
                  & (centres[:, None, 1] > dets.xyxy[None, :, 1])
                  & (centres[:, None, 1] < dets.xyxy[None, :, 3]))
        assert (inside.sum(axis=1) == 1).all(), (path.name, "a face missed or found twice")
        assert (inside.sum(axis=0) == 1).all(), (path.name, "a detection on no face")
        assert dets.keypoints.shape == (len(centres), 5, 2)
        # Landmarks lie inside their face box.
        lo, hi = dets.xyxy[:, None, :2], dets.xyxy[:, None, 2:]
        assert ((dets.keypoints >= lo) & (dets.keypoints <= hi)).all()
        total += len(centres)
    assert total == 22


def test_decoder_agrees_with_opencv_face_detector_yn(pipeline):
    # OpenCV's own YuNet implementation, same model file, on the frame as oko scales it
    # (to fit 640 pixels); its boxes are then scaled back like oko's.
    onnx_path = ROOT / "models" / "yunet-face" / "model.onnx"
    for path in GROUPS[:3]:
        image = read_image(path)
        h, w = image.shape[:2]
        r = 640 / max(h, w)
        small = cv2.resize(image, (round(w * r), round(h * r)), interpolation=cv2.INTER_LINEAR)
        ref_det = cv2.FaceDetectorYN.create(str(onnx_path), "", small.shape[1::-1], 0.6, 0.3,
                                            5000)
        _, ref = ref_det.detect(small)
        ref[:, :14] /= r
        ours = pipeline.detector([image])[0]
        assert ref is not None and len(ref) == len(ours)
        ref_boxes = np.c_[ref[:, :2], ref[:, :2] + ref[:, 2:4]]
        pair = box_iou(ours.xyxy, ref_boxes).argmax(axis=1)  # same faces, any order
        assert sorted(pair.tolist()) == list(range(len(ref)))
        ref = ref[pair]
        np.testing.assert_allclose(ours.xyxy, ref_boxes[pair], atol=1.0)
        np.testing.assert_allclose(ours.keypoints, ref[:, 4:14].reshape(-1, 5, 2), atol=1.0)
        np.testing.assert_allclose(ours.confidence, ref[:, 14], atol=1e-4)


def test_alignment_matches_opencv_align_crop(pipeline):
    recognizer = cv2.FaceRecognizerSF.create(str(ROOT / "models" / "sface" / "model.onnx"), "")
    image = read_image(FACES / "obama2.jpg")
    dets = pipeline.detector([image])[0]
    ours = align_faces(image, dets.keypoints)
    for i in range(len(dets)):
        box = np.r_[dets.xyxy[i, :2], dets.xyxy[i, 2:] - dets.xyxy[i, :2],
                    dets.keypoints[i].ravel(), dets.confidence[i]].astype(np.float32)
        theirs = recognizer.alignCrop(image, box[None])
        assert np.abs(theirs.astype(int) - ours[i]).max() <= 1


def test_enrolled_from_one_photo_found_in_another_and_strangers_rejected(pipeline, tmp_path):
    emb = pipeline.embedder
    with Gallery.create(tmp_path / "g.db", emb.model_id, emb.name, emb.dim) as g:
        g.enroll("Barack Obama", best_face(pipeline, read_image(FACES / "obama.jpg"))[None],
                 [1.0], ["obama.jpg"], ["h1"])
        loaded = g.load()
    matcher = GalleryMatcher(loaded, emb.threshold, "exact")
    same = matcher.match(best_face(pipeline, read_image(FACES / "obama2.jpg"))[None])
    assert same.best == ["Barack Obama"]
    assert same.similarity[0, 0] > emb.threshold + 0.2   # measured 0.75 against 0.363
    stranger = matcher.match(best_face(pipeline, read_image(FACES / "biden.jpg"))[None])
    assert stranger.best == [None] and stranger.similarity[0, 0] < emb.threshold - 0.15
    # 22 more strangers: every face of the group photos.
    for path in GROUPS:
        res = pipeline([read_image(path)])[0]
        found = matcher.match(res.embeddings[res.embedded])
        assert found.best == [None] * int(res.embedded.sum()), path.name


def test_bad_images(pipeline):
    obama = read_image(FACES / "obama2.jpg")
    grey = cv2.cvtColor(obama, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(obama, cv2.COLOR_BGR2BGRA)
    ref = best_face(pipeline, obama)
    for variant in (as_bgr(grey), as_bgr(bgra), as_bgr(grey[:, :, None])):
        assert float(best_face(pipeline, variant) @ ref) > 0.8   # same person, other encoding
    # No face at all; a 1x1 and an 8x8 image; a huge one (the photo blown up 5x).
    blank = np.full((480, 640, 3), 200, np.uint8)
    for image in (blank, np.zeros((1, 1, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)):
        res = pipeline([image])[0]
        assert len(res) == 0 and res.embeddings.shape == (0, 128) and res.largest() is None
    huge = cv2.resize(obama, None, fx=5, fy=5, interpolation=cv2.INTER_LINEAR)
    assert huge.shape[0] == 6000
    assert float(best_face(pipeline, huge) @ ref) > 0.9


def test_a_batch_of_frames_gives_the_same_faces_as_one_by_one(pipeline):
    images = [read_image(p) for p in GROUPS[:3]]
    batched = pipeline(images)
    for image, res in zip(images, batched, strict=True):
        alone = pipeline([image])[0]
        np.testing.assert_allclose(res.detections.xyxy, alone.detections.xyxy, atol=1e-4)
        np.testing.assert_allclose(res.embeddings, alone.embeddings, atol=1e-4)


def test_read_image_errors(tmp_path):
    from oko.core.errors import SourceError

    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(SourceError, match="not an image"):
        read_image(tmp_path / "x.jpg")
    with pytest.raises(SourceError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
