"""`oko road ...`: road-condition tools.

Heavy imports stay inside the commands so that `oko --help` is fast. User errors raise
OkoError subclasses: the CLI prints one line and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# Mirrors oko.road.clean.DEFAULT_CLASSES (not imported here: it pulls in cv2 and numpy).
DEFAULT_CLASSES = ("car", "truck", "bus", "motorcycle", "bicycle", "person")

app = typer.Typer(no_args_is_help=True, help="Road condition: cleanup, analytics.")


@app.callback()
def _group() -> None:
    """Road condition: cleanup and analytics."""


@app.command("clean")
def clean(
    video: Annotated[str, typer.Argument(help="Video file, stream URL or image folder.")],
    out: Annotated[Path, typer.Option("--out", help="Output image (.png, .jpg, ...); its "
                                      "folder must exist.")],
    classes: Annotated[str, typer.Option(
        help="Comma-separated detector labels to remove.")] = ",".join(DEFAULT_CLASSES),
    max_frames: Annotated[int | None, typer.Option(
        help="Read at most N frames of the video.", min=1)] = None,
    model: Annotated[str, typer.Option(help="COCO detector (zoo name or path).")] = "nanodet-coco",
    stride: Annotated[int | None, typer.Option(
        help="Use every K-th frame (default: about 150 frames in all).", min=1)] = None,
    conf: Annotated[float, typer.Option(
        help="Detector score threshold for masking (low: mask more, miss less).",
        min=0, max=1)] = 0.15,
    margin: Annotated[float, typer.Option(
        help="Grow each box by this fraction of its size (twice that downwards, shadows).",
        min=0)] = 0.15,
) -> None:
    """Image of the scene with moving and parked traffic removed (base for road analysis).

    Masks the detected objects in each sampled frame, takes the per-pixel median of the
    unmasked samples, and inpaints what was covered in every frame.
    """
    import time

    import cv2
    import numpy as np

    from oko.core.errors import ConfigError
    from oko.models import load_detector
    from oko.road.clean import clean_background, resolve_classes
    from oko.video import open_source

    names = [c.strip() for c in classes.split(",") if c.strip()]
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: output folder {out.parent} does not exist")
    if not cv2.haveImageWriter(str(out)):
        raise ConfigError(f"{out}: not an image format OpenCV can write",
                          "use .png, .jpg, .bmp, .tif or .webp")
    started = time.perf_counter()
    with open_source(video) as source:
        detector = load_detector(model, conf_threshold=conf)
        resolve_classes(detector.labels, names)  # fail before decoding anything
        result = clean_background((f.image for f in source), detector, names, stride=stride,
                                  frame_count=source.frame_count, max_frames=max_frames,
                                  margin=margin)
    if not cv2.imwrite(str(out), result.image):
        raise ConfigError(f"{out}: could not write the image")
    seconds = time.perf_counter() - started
    console = Console(soft_wrap=True)  # a long path stays on one line
    count = result.coverage_count
    console.print(f"[bold]road clean[/bold]: {result.frames_used} frames used "
                  f"(1 in {result.stride} of {result.frames_read} read), "
                  f"{result.objects_masked} objects masked")
    console.print(f"never seen (inpainted): {100 * result.never_seen_fraction:.2f}% of pixels; "
                  f"free samples per pixel: median {int(np.median(count))}, min {int(count.min())}")
    console.print(f"wrote {out} ({result.image.shape[1]}x{result.image.shape[0]}) "
                  f"in {seconds:.1f} s")
