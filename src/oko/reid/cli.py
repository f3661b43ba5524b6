"""`oko reid ...`: person re-identification tools.

Heavy imports stay inside the commands so that `oko --help` is fast. User errors raise
OkoError subclasses: the CLI prints one line and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table


if TYPE_CHECKING:
    import numpy as np

    from oko.reid.embed import PersonEmbedder

app = typer.Typer(no_args_is_help=True, help="Person re-identification: evaluation, search.")

STRIPES = "stripes"


@app.callback()
def _group() -> None:
    """Person re-identification: evaluation and search."""


def _embed(paths: list[Path], embedder: PersonEmbedder, label: str, batch: int) -> np.ndarray:
    import numpy as np
    from rich.progress import track

    from oko.reid.market import load_images

    chunks = []
    starts = range(0, len(paths), batch)
    for s in track(starts, description=f"embedding {label}", console=Console(stderr=True),
                   transient=True, disable=len(starts) < 2):
        chunks.append(embedder(load_images(paths[s:s + batch])))
    return np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)


@app.command("eval")
def evaluate(
    dataset_dir: Annotated[Path, typer.Argument(
        help="Folder in the Market-1501 layout: query/ and bounding_box_test/.")],
    model: Annotated[str, typer.Option(
        help=f"'{STRIPES}' (colour/texture baseline, no weights) or a ReID ONNX model "
             "(zoo name, folder, manifest or .onnx with a manifest beside it).")] = STRIPES,
    batch: Annotated[int, typer.Option(help="Images per embedding batch.", min=1)] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Rank-1, rank-5 and mAP on a folder in the Market-1501 layout.

    Standard protocol: the same person seen by the same camera is left out of the
    gallery, junk images (id -1) are ignored, distractors (0000) stay as negatives.
    """
    from oko.reid.embed import load_person_embedder
    from oko.reid.market import read_market
    from oko.reid.metrics import DISTRACTOR_PID, JUNK_PID, cosine_distance, evaluate_ranking

    embedder = load_person_embedder(model)  # fail before reading thousands of images
    data = read_market(dataset_dir)
    q = _embed(data.query.paths, embedder, "query", batch)
    g = _embed(data.gallery.paths, embedder, "gallery", batch)
    g_pids = data.gallery.pids
    report = evaluate_ranking(cosine_distance(q, g), data.query.pids, g_pids,
                              data.query.camids, data.gallery.camids)
    result = {
        "dataset": str(dataset_dir), "model": model,
        "rank1": report.rank1, "rank5": report.rank5, "mAP": report.mAP,
        "queries": report.num_query, "queries_evaluated": report.num_valid,
        "queries_skipped": report.num_skipped, "gallery": len(g_pids),
        "gallery_junk": int((g_pids == JUNK_PID).sum()),
        "gallery_distractors": int((g_pids == DISTRACTOR_PID).sum()),
    }
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"ReID on {dataset_dir} ({model})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("rank1", "rank5", "mAP"):
        table.add_row(key, f"{100 * result[key]:.2f} %")
    table.add_row("queries evaluated", f"{report.num_valid} of {report.num_query}")
    table.add_row("queries skipped (no valid match)", str(report.num_skipped))
    table.add_row("gallery images", str(result["gallery"]))
    table.add_row("  junk (-1, ignored)", str(result["gallery_junk"]))
    table.add_row("  distractors (0000)", str(result["gallery_distractors"]))
    Console().print(table)


@app.command("search")
def search(
    image: Annotated[Path, typer.Argument(help="Photo of the person (a crop, or a scene: "
                                          "its largest detected person is used).")],
    gallery: Annotated[Path, typer.Option(
        "--gallery", "-g", help="Track store written by the reid module (option gallery=), "
        "or a folder of person crops.")],
    model: Annotated[str | None, typer.Option(
        help="Embedder; default: the store's own (a folder: stripes).")] = None,
    top: Annotated[int, typer.Option(help="How many tracks to list.", min=1)] = 10,
    whole: Annotated[bool, typer.Option(
        "--whole", help="Use the whole image as the person crop (no detection).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Find the stored tracks (or crops) most similar to a photo of a person."""
    from oko.reid.search import search_gallery

    hits = search_gallery(image, gallery, model, top, whole)
    if as_json:
        print(json.dumps(hits.to_dict()))
        return
    table = Table(title=f"{hits.query} in {gallery} ({hits.model_id})")
    for col in ("similarity", "global id", "channel", "track", "seen", "attributes"):
        table.add_column(col)
    for h in hits.rows:
        table.add_row(f"{h['similarity']:.3f}", str(h.get("global_id", "")),
                      str(h.get("channel", "")), str(h.get("track_id", h.get("file", ""))),
                      str(h.get("first_seen", "")), json.dumps(h.get("attributes", {})))
    Console().print(table)
