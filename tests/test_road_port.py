"""A segmentation model goes through `oko port` like the others; the report's task metric
is mIoU agreement of the ported model with FP32 on held-out frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SAMPLE_VIDEO, run_oko

SEGNET = Path(__file__).parent / "data" / "road" / "segnet-random"


def _port(tmp_path: Path, target: str) -> dict:
    out = tmp_path / target
    proc = run_oko("port", str(SEGNET), "--target", target, "--precision", "int8",
                   "--out", str(out), "--calib", str(SAMPLE_VIDEO), "--calib-count", "24")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def test_segmentation_ports_to_onnxruntime_int8_with_miou_agreement(tmp_path):
    report = _port(tmp_path, "onnxruntime")
    assert report["passed"]
    assert report["task"]["metric"] == "mIoU agreement vs FP32"
    assert 0.95 <= report["task"]["value"] <= 1.0


@pytest.mark.slow
def test_segmentation_ports_to_bm1684x_int8_with_miou_agreement(tmp_path):
    report = _port(tmp_path, "bm1684x")
    assert report["passed"] and report["target"] == "bm1684x"
    assert report["task"]["metric"] == "mIoU agreement vs FP32"
    assert report["task"]["value"] >= 0.95
    # the ported model loads back as a segmenter and answers with the same labels
    from oko.road.segmentation import load_segmenter

    seg = load_segmenter(tmp_path / "bm1684x")
    assert list(seg.labels) == ["road", "lane_marking", "crack", "pothole", "snow"]
