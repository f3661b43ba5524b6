"""Sources, the module runner, annotation and video writing."""

from oko.video.annotate import BoxAnnotator
from oko.video.live import LiveSource, SourceConfig, SourceState
from oko.video.runner import FrameResult, run_module
from oko.video.sources import ImageFolderSource, ImageSource, Source, VideoSource, open_source
from oko.video.writer import VideoWriter

__all__ = ["BoxAnnotator", "FrameResult", "ImageFolderSource", "ImageSource", "LiveSource",
           "Source", "SourceConfig", "SourceState", "VideoSource", "VideoWriter", "open_source",
           "run_module"]
