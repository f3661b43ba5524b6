import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from oko.core import SourceError
from oko.video import ImageFolderSource, ImageSource, VideoSource, open_source


def test_video_file_yields_bgr_frames_with_timestamps(sample_video):
    with open_source(sample_video, channel_id="cam1") as src:
        assert isinstance(src, VideoSource)
        assert src.fps == pytest.approx(10.0)
        frames = list(itertools.islice(src, 12))
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (576, 768, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].channel_id == "cam1"
    assert frames[11].timestamp == pytest.approx(1.1, abs=1e-6)


def test_image_and_folder_sources(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    single = open_source(tmp_path / "b.png")
    assert isinstance(single, ImageSource)
    (frame,) = list(single)
    assert frame.image[0, 0].tolist() == [0, 0, 255]
    folder = open_source(tmp_path)
    assert isinstance(folder, ImageFolderSource)
    frames = list(folder)
    assert [f.index for f in frames] == [0, 1]
    assert folder.stats.corrupt == 1  # broken.png skipped and counted


def test_missing_and_empty_inputs_raise_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match="empty.mp4: file is empty"):
        open_source(tmp_path / "empty.mp4")
    (tmp_path / "d").mkdir()
    with pytest.raises(SourceError, match="folder has no images"):
        open_source(tmp_path / "d")
    (tmp_path / "fake.mp4").write_text("hello, I am text\n" * 100)
    with pytest.raises(SourceError, match="fake.mp4: not a readable video"):
        open_source(tmp_path / "fake.mp4")
    (tmp_path / "fake.jpg").write_text("hello")
    with pytest.raises(SourceError, match="fake.jpg: not a readable image"):
        open_source(tmp_path / "fake.jpg")


def corrupt_copy(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    n = len(data)
    for off in (n // 3, n // 2, 2 * n // 3):
        data[off:off + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def test_corrupt_frames_mid_video_are_skipped_and_counted(sample_video, tmp_path):
    src = open_source(corrupt_copy(sample_video, tmp_path / "corrupt.mp4"))
    n = sum(1 for _ in src)
    assert src.stats.corrupt > 0
    assert n + src.stats.corrupt + src.stats.missing >= 440
    assert n > 400


def test_truncated_video_ends_early_and_reports_missing_frames(sample_video, tmp_path):
    data = sample_video.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.5)])
    src = open_source(tmp_path / "cut.mp4")
    n = sum(1 for _ in src)
    assert 100 < n < 450
    assert src.stats.missing == 450 - n - src.stats.corrupt
