"""The SQLite gallery: persistence, duplicates, model refusal, corrupt files."""

import sqlite3

import numpy as np
import pytest

from oko.faces.gallery import Gallery, GalleryError, GalleryModelMismatch


def unit(rng, n, d=8):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def enroll(g, name, vecs, tag):
    return g.enroll(name, vecs, [0.9] * len(vecs), [f"{tag}{i}.jpg" for i in range(len(vecs))],
                    [f"sha-{tag}{i}" for i in range(len(vecs))])


def test_people_persist_with_several_embeddings_each(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "g.db"
    a, b = unit(rng, 3), unit(rng, 2)
    with Gallery.create(path, "m/8d/abc", "m", 8) as g:
        assert enroll(g, "alice", a, "a").added == 3
        assert enroll(g, "bob", b, "b").added == 2
    with Gallery.open(path, readonly=True) as g:
        assert [(p.name, p.embeddings) for p in g.people()] == [("alice", 3), ("bob", 2)]
        loaded = g.load()
        assert (g.model_id, g.dim, len(g)) == ("m/8d/abc", 8, 5)
    assert loaded.matrix.dtype == np.float32 and loaded.matrix.flags.c_contiguous
    np.testing.assert_array_equal(loaded.matrix, np.concatenate([a, b]))  # bit-exact blobs
    assert [loaded.names[i] for i in loaded.person] == ["alice"] * 3 + ["bob"] * 2
    assert loaded.max_per_person == 3
    with Gallery.open(path) as g:
        assert g.remove("alice") == 3
        with pytest.raises(GalleryError, match="no person named 'carol'"):
            g.remove("carol")
        loaded = g.load()
    assert loaded.names == ["bob"] and len(loaded.matrix) == 2


def test_duplicate_enrolment(tmp_path):
    rng = np.random.default_rng(1)
    with Gallery.create(tmp_path / "g.db", "m", "m", 8) as g:
        vecs = unit(rng, 2)
        enroll(g, "alice", vecs, "x")
        again = enroll(g, "alice", vecs, "x")          # same photos, same person: skipped
        assert again.added == 0 and again.duplicates == ["x0.jpg", "x1.jpg"]
        twice = g.enroll("alice", unit(rng, 2), [1, 1], ["y.jpg", "y-copy.jpg"], ["sy", "sy"])
        assert twice.added == 1 and twice.duplicates == ["y-copy.jpg"]
        with pytest.raises(GalleryError, match="already enrolled as 'alice'"):
            enroll(g, "mallory", vecs, "x")            # same photo, someone else: refused
        assert [p.name for p in g.people()] == ["alice"]  # the refused call left nothing
        with pytest.raises(GalleryError, match="must not be empty"):
            enroll(g, "  ", vecs, "y")
        with pytest.raises(GalleryError, match="NaN"):
            enroll(g, "nan", np.full((1, 8), np.nan, np.float32), "z")


def test_another_embedding_model_is_refused(tmp_path):
    path = tmp_path / "g.db"
    Gallery.create(path, "sface/128d/23db6a10a348e41c", "sface", 128).close()
    with Gallery.open(path) as g:
        with pytest.raises(GalleryModelMismatch, match="built with embedding model 'sface'"):
            g.check_model("arcface-r50/512d/0123456789abcdef", "arcface-r50", 512)
        with pytest.raises(GalleryModelMismatch, match="512-d"):
            g.enroll("x", np.zeros((1, 512), np.float32), [1], ["a"], ["h"])
    with pytest.raises(GalleryModelMismatch):
        Gallery.open_or_create(path, "other/128d/ffff", "other", 128)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "plain_sqlite", "bad_blob",
                                    "missing"])
def test_corrupt_or_foreign_files_give_a_clear_error(tmp_path, damage):
    path = tmp_path / "g.db"
    rng = np.random.default_rng(2)
    with Gallery.create(path, "m", "m", 8) as g:
        enroll(g, "alice", unit(rng, 300), "a")
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif damage == "plain_sqlite":
        path.unlink()
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    elif damage == "bad_blob":
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE embeddings SET vector = x'00010203' WHERE id = 7")
    else:
        path.unlink()
    expected = {"garbage": "not a readable oko face gallery",
                "truncated": "malformed", "plain_sqlite": "not an oko face gallery",
                "bad_blob": "embedding 7 is not 8 float32", "missing": "no face gallery here"}
    with pytest.raises(GalleryError, match=expected[damage]), Gallery.open(path) as g:
        g.load()


def test_create_refuses_existing_and_bad_folders(tmp_path):
    Gallery.create(tmp_path / "g.db", "m", "m", 8).close()
    with pytest.raises(GalleryError, match="already exists"):
        Gallery.create(tmp_path / "g.db", "m", "m", 8)
    with pytest.raises(GalleryError, match="does not exist"):
        Gallery.create(tmp_path / "no" / "g.db", "m", "m", 8)


def test_threshold_is_stored_with_the_gallery(tmp_path):
    with Gallery.create(tmp_path / "g.db", "m", "m", 8) as g:
        assert g.threshold is None
        g.set_threshold(0.4123)
    with Gallery.open(tmp_path / "g.db", readonly=True) as g:
        assert g.threshold == pytest.approx(0.4123)
