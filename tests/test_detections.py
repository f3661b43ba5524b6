import numpy as np
import pytest

from oko.core import Detections


def make(n: int, **extra) -> Detections:
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 100, (n, 2))
    return Detections(xyxy=np.hstack([xy, xy + 10]), confidence=rng.uniform(size=n),
                      class_id=np.arange(n) % 3, **extra)


def test_dtypes_are_normalised():
    d = make(4)
    assert d.xyxy.dtype == np.float32 and d.confidence.dtype == np.float32
    assert d.class_id.dtype == np.int32
    assert len(Detections.empty()) == 0 and Detections.empty().xyxy.shape == (0, 4)


def test_shape_errors_name_the_field():
    with pytest.raises(ValueError, match=r"Detections.confidence must have shape \(3,\), got \(2,\)"):
        Detections(xyxy=np.zeros((3, 4)), confidence=np.zeros(2))
    with pytest.raises(ValueError, match=r"xyxy must have shape \(n, 4\)"):
        Detections(xyxy=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"data\['plate'\] must have 3 rows"):
        Detections(xyxy=np.zeros((3, 4)), data={"plate": np.array(["a", "b"])})


def test_boolean_mask_int_slice_and_list_keep_rows_aligned():
    d = make(6, data={"tag": np.array(list("abcdef"))})
    sel = d[d.class_id == 1]
    assert sel.data["tag"].tolist() == ["b", "e"]
    np.testing.assert_array_equal(sel.xyxy, d.xyxy[[1, 4]])
    one = d[2]
    assert len(one) == 1 and one.data["tag"].tolist() == ["c"]
    assert d[1:3].class_id.tolist() == [1, 2]
    assert d[[5, 0]].data["tag"].tolist() == ["f", "a"]
    with pytest.raises(IndexError):
        d[np.array([True, False])]


def test_concat_checks_fields_and_data_keys():
    a, b = make(2, data={"k": np.ones(2)}), make(3, data={"k": np.zeros(3)})
    c = Detections.concat([a, Detections.empty(), b])
    assert len(c) == 5 and c.data["k"].tolist() == [1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="data keys differ"):
        Detections.concat([a, make(2)])
    with pytest.raises(ValueError, match="'track_id' is set in some parts only"):
        Detections.concat([make(2).with_track_ids(np.array([1, 2])), make(2)])
    assert len(Detections.concat([])) == 0


def test_copies_do_not_mutate_inputs():
    d = make(3)
    t = d.with_track_ids(np.array([7, 8, -1]))
    assert d.track_id is None and t.track_id.tolist() == [7, 8, -1]
    e = d.with_data(plate=np.array(["x", "y", "z"]))
    assert "plate" not in d.data and e.data["plate"].tolist() == ["x", "y", "z"]


def test_labels_and_derived_values():
    d = Detections(xyxy=[[0, 0, 2, 4], [1, 1, 3, 3]], class_id=[0, 99])
    assert d.labels(["person"]) == ["person", "99"]
    np.testing.assert_allclose(d.area, [8, 4])
    np.testing.assert_allclose(d.centers, [[1, 2], [2, 2]])


def test_event_json_round_trip_with_snapshot():
    from oko.core import Event

    e = Event("line_crossing", "cam1", 12.5, 125, {"track_id": 7, "direction": "in"},
              snapshot=b"\xff\xd8jpeg")
    back = Event.from_json(e.to_json())
    assert back == e
    assert '"snapshot_jpeg"' in e.to_json()
    assert "snapshot_jpeg" not in Event("x", "c", 0.0, 0).to_dict()
