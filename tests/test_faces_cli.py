"""`oko faces ...` and `oko analyze --module faces` as a user runs them (subprocesses)."""

import json
import shutil

import pytest
from conftest import DATA, assert_user_error, run_oko

from oko.faces.gallery import Gallery

FACES = DATA / "faces"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "faces.db"
    proc = run_oko("faces", "enroll", "Barack Obama", str(FACES / "obama.jpg"), "-g", str(path),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["added"] == {"Barack Obama": 1}
    assert report["images"][0]["status"] == "enrolled"
    return path


@pytest.mark.slow
def test_enroll_list_search_remove(gallery, tmp_path):
    # A folder of folders adds people; an image already enrolled for them is skipped.
    people = tmp_path / "people"
    (people / "Joe Biden").mkdir(parents=True)
    shutil.copy(FACES / "biden.jpg", people / "Joe Biden")
    copy = tmp_path / "g.db"
    shutil.copy(gallery, copy)
    proc = run_oko("faces", "enroll", str(people), "-g", str(copy), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["added"] == {"Joe Biden": 1}
    proc = run_oko("faces", "enroll", "Joe Biden", str(people / "Joe Biden"), "-g", str(copy),
                   "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["images"][0]["status"] == "duplicate"

    listed = json.loads(run_oko("faces", "list", "-g", str(copy), "--json").stdout)
    assert [(p["name"], p["embeddings"]) for p in listed["people"]] == [
        ("Barack Obama", 1), ("Joe Biden", 1)]
    assert listed["model"] == "sface" and listed["dim"] == 128

    found = json.loads(run_oko("faces", "search", str(FACES / "obama2.jpg"), "-g", str(copy),
                               "--json").stdout)
    best = max(found["faces"], key=lambda f: f["quality"])
    assert best["identity"] == "Barack Obama"
    assert [m["name"] for m in best["matches"]] == ["Barack Obama", "Joe Biden"]
    assert found["threshold"] == pytest.approx(0.363)

    proc = run_oko("faces", "remove", "Joe Biden", "Nobody", "-g", str(copy))
    assert_user_error(proc, "no person named 'Nobody'")       # nothing removed then
    assert run_oko("faces", "remove", "Joe Biden", "-g", str(copy)).returncode == 0
    with Gallery.open(copy) as g:
        assert [p.name for p in g.people()] == ["Barack Obama"]


def test_analyze_json_with_a_gallery(gallery):
    proc = run_oko("analyze", str(FACES / "obama2.jpg"), "--module", "faces", "--json",
                   "--option", f"gallery={gallery}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["module"] == "faces" and out["model"].startswith("yunet-face+sface+gender")
    faces = out["frames"][0]["detections"]
    assert any(f["identity"] == "Barack Obama" and f["label"] == "face" for f in faces)
    assert all(len(f["landmarks"]) == 5 for f in faces)


@pytest.mark.slow
def test_user_errors(gallery, tmp_path):
    missing = tmp_path / "none.db"
    assert_user_error(run_oko("faces", "list", "-g", str(missing)), "no face gallery here")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"\x00garbage" * 500)
    assert_user_error(run_oko("faces", "search", str(FACES / "obama2.jpg"), "-g", str(corrupt)),
                      "not a readable oko face gallery")
    other = tmp_path / "other.db"
    Gallery.create(other, "arcface-r50/512d/0123456789abcdef", "arcface-r50", 512).close()
    assert_user_error(run_oko("faces", "enroll", "X", str(FACES / "obama.jpg"), "-g", str(other)),
                      "built with embedding model 'arcface-r50'")
    assert_user_error(run_oko("analyze", str(FACES / "obama2.jpg"), "--module", "faces",
                              "--option", f"gallery={other}"), "arcface-r50")
    # A photo without a face enrols nothing: an error after the report.
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    proc = run_oko("faces", "enroll", "Nobody", str(blank), "-g", str(tmp_path / "new.db"))
    assert_user_error(proc, "nothing enrolled for 'Nobody'")
    assert "no face" in proc.stdout
    assert_user_error(run_oko("faces", "enroll", "X", str(tmp_path / "nope.jpg"), "-g",
                              str(tmp_path / "x.db")), "nope.jpg: no such file")
    # The same photo enrolled as someone else is refused.
    copy = tmp_path / "g.db"
    shutil.copy(gallery, copy)
    assert_user_error(run_oko("faces", "enroll", "Impostor", str(FACES / "obama.jpg"), "-g",
                              str(copy)), "already enrolled as 'Barack Obama'")
    bad_pairs = tmp_path / "pairs.txt"
    bad_pairs.write_text("a.jpg b.jpg perhaps\n")
    assert_user_error(run_oko("faces", "eval", str(bad_pairs)), "pairs.txt:1")


@pytest.mark.slow
def test_eval_on_labelled_pairs(tmp_path):
    pairs = tmp_path / "pairs.txt"
    lines = [f"{FACES / 'obama.jpg'} {FACES / 'obama2.jpg'} 1",
             f"{FACES / 'obama.jpg'} {FACES / 'biden.jpg'} 0",
             f"{FACES / 'obama2.jpg'} {FACES / 'biden.jpg'} 0"]
    lines += [f"{FACES / 'obama.jpg'} {FACES / f'group{i}.jpg'} 0" for i in range(1, 7)]
    pairs.write_text("\n".join(lines) + "\n")
    proc = run_oko("faces", "eval", str(pairs), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["genuine"], out["impostor"]) == (1, 8)
    assert out["accuracy_at_model_threshold"] == 1.0
    assert out["tar_at_far"][0]["tar"] is None      # 8 impostors cannot show FAR 1e-3
    assert out["calibrated_threshold"] is None
    assert out["genuine_similarity"]["min"] > 0.6 > out["impostor_similarity"]["max"]
    assert_user_error(run_oko("faces", "eval", str(pairs), "--save", "-g",
                              str(tmp_path / "g.db")), "cannot calibrate for FAR 0.001")
