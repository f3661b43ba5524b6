"""`oko faces ...`: the persistent face gallery (enroll, list, remove, search, eval).

Heavy imports (models, numpy work) stay inside the commands so that `oko --help` is fast.
User errors raise OkoError subclasses: the CLI prints one line and exits 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from oko.core.errors import OkoError

if TYPE_CHECKING:
    import numpy as np

    from oko.faces.pipeline import FacePipeline

app = typer.Typer(no_args_is_help=True, help="Face gallery: enroll, list, remove, search, eval.")

GalleryOpt = Annotated[Path, typer.Option("--gallery", "-g", help="Gallery file (SQLite).")]
DetectorOpt = Annotated[str, typer.Option("--detector", help="Face detector, name or path.")]
EmbedderOpt = Annotated[str, typer.Option("--embedder", help="Embedding model, name or path.")]
EngineOpt = Annotated[str | None, typer.Option("--engine", help="Engine (default: the model's).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
DEFAULT_GALLERY = Path("faces.db")


def _pipeline(detector: str, embedder: str, engine: str | None,
              min_quality: float) -> FacePipeline:
    from oko.faces.detect import load_face_detector
    from oko.faces.embed import load_embedder
    from oko.faces.pipeline import FacePipeline

    return FacePipeline(load_face_detector(detector, engine), load_embedder(embedder, engine),
                        min_quality)


def _out() -> Console:
    return Console()


@app.command()
def enroll(
    name: Annotated[str, typer.Argument(
        help="The person's name; or, with no IMAGES, a folder of folders named after people.")],
    images: Annotated[list[Path] | None, typer.Argument(help="Photos (or folders of photos).")]
    = None,
    gallery: GalleryOpt = DEFAULT_GALLERY,
    detector: DetectorOpt = "yunet-face",
    embedder: EmbedderOpt = "sface",
    engine: EngineOpt = None,
    min_quality: Annotated[float, typer.Option(
        help="Photos whose face scores lower are not enrolled.", min=0, max=1)] = 0.4,
    as_json: JsonOpt = False,
) -> None:
    """Enroll a person from photos (the largest face of each), creating the gallery if new."""
    from oko.faces.enroll import embed_images, images_in, people_in
    from oko.faces.gallery import Gallery

    people = {name: images_in(images)} if images else people_in(Path(name))
    if not any(people.values()):
        raise OkoError(f"no images given for {name!r}")
    pipeline = _pipeline(detector, embedder, engine, min_quality)
    emb = pipeline.embedder
    if gallery.exists():  # refuse a model mismatch before any photo is processed
        with Gallery.open(gallery, readonly=True) as existing:
            existing.check_model(emb.model_id, emb.name, emb.dim)
    report, totals = [], {}
    with Gallery.open_or_create(gallery, emb.model_id, emb.name, emb.dim) as g:
        for person, files in people.items():
            faces = embed_images(pipeline, files, min_quality)
            ok = [f for f in faces if f.status == "ok"]
            result = g.enroll(person, [f.embedding for f in ok], [f.quality for f in ok],
                              [str(f.path) for f in ok], [f.sha256 for f in ok]) if ok else None
            dup = set(result.duplicates) if result else set()
            for f in faces:
                status = "duplicate" if str(f.path) in dup else (
                    "enrolled" if f.status == "ok" else f.status)
                report.append({"person": person, "image": str(f.path), "status": status,
                               "faces": f.faces, "quality": round(f.quality, 3),
                               "detail": f.detail or (f"{f.faces} faces, took the largest"
                                                      if f.faces > 1 else "")})
            totals[person] = result.added if result else 0
    if as_json:
        print(json.dumps({"gallery": str(gallery), "images": report, "added": totals}))
    else:
        table = Table(title=f"enroll into {gallery}")
        for col in ("person", "image", "status", "quality", "detail"):
            table.add_column(col)
        for r in report:
            table.add_row(r["person"], r["image"], r["status"], f"{r['quality']:.2f}", r["detail"])
        _out().print(table)
    failed = [p for p, n in totals.items()
              if n == 0 and not any(r["person"] == p and r["status"] == "duplicate" for r in report)]
    if failed:
        raise OkoError(f"nothing enrolled for {', '.join(map(repr, failed))}: no usable face in "
                       "the photos", "use sharp, frontal photos; see the table above")


@app.command("list")
def list_people(gallery: GalleryOpt = DEFAULT_GALLERY, as_json: JsonOpt = False) -> None:
    """People in the gallery and how many embeddings each has."""
    import datetime

    from oko.faces.gallery import Gallery

    with Gallery.open(gallery, readonly=True) as g:
        people = g.people()
        head = {"gallery": str(gallery), "model": g.model_name, "model_id": g.model_id,
                "dim": g.dim, "threshold": g.threshold, "embeddings": len(g)}
    if as_json:
        print(json.dumps(head | {"people": [{"name": p.name, "embeddings": p.embeddings,
                                             "created": p.created} for p in people]}))
        return
    table = Table(title=f"{gallery}: {len(people)} people, {head['embeddings']} embeddings "
                        f"({head['model']}, {head['dim']}-d)")
    for col in ("name", "embeddings", "enrolled"):
        table.add_column(col)
    for p in people:
        when = datetime.datetime.fromtimestamp(p.created).strftime("%Y-%m-%d %H:%M")
        table.add_row(p.name, str(p.embeddings), when)
    _out().print(table)


@app.command()
def remove(names: Annotated[list[str], typer.Argument(help="People to remove.")],
           gallery: GalleryOpt = DEFAULT_GALLERY) -> None:
    """Remove people (and all their embeddings) from the gallery."""
    from oko.faces.gallery import Gallery, GalleryError

    with Gallery.open(gallery) as g:
        known = {p.name for p in g.people()}
        unknown = [n for n in names if n not in known]
        if unknown:  # check all first: nothing is removed when one name is wrong
            raise GalleryError(f"{gallery}: no person named {', '.join(map(repr, unknown))}",
                               "see `oko faces list`")
        for n in names:
            count = g.remove(n)
            _out().print(f"removed {n!r} ({count} embeddings)")


@app.command()
def search(
    image: Annotated[Path, typer.Argument(help="A photo; every face in it is searched.")],
    gallery: GalleryOpt = DEFAULT_GALLERY,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="People per face.")] = 3,
    threshold: Annotated[float | None, typer.Option(
        help="Match threshold (default: the gallery's calibrated one, else the model's).")]
    = None,
    index: Annotated[str, typer.Option(help="auto, exact, binary, ivf-sq8, ivf-flat or hnsw.")]
    = "auto",
    detector: DetectorOpt = "yunet-face",
    embedder: EmbedderOpt = "sface",
    engine: EngineOpt = None,
    min_quality: Annotated[float, typer.Option(min=0, max=1,
                                               help="Faces below are not searched.")] = 0.25,
    as_json: JsonOpt = False,
) -> None:
    """Who is in this photo? Top-k people per face, with similarities."""
    from oko.faces.gallery import Gallery
    from oko.faces.matcher import GalleryMatcher
    from oko.faces.pipeline import read_image

    photo = read_image(image)
    pipeline = _pipeline(detector, embedder, engine, min_quality)
    emb = pipeline.embedder
    with Gallery.open(gallery, readonly=True) as g:
        g.check_model(emb.model_id, emb.name, emb.dim)
        loaded = g.load()
        limit = threshold if threshold is not None else (
            g.threshold if g.threshold is not None else emb.threshold)
    matcher = GalleryMatcher(loaded, limit, index)
    res = pipeline([photo])[0]
    rows = [i for i in range(len(res)) if res.embedded[i]]
    found = matcher.match(res.embeddings[rows], top_k) if rows else None
    faces = []
    for i in range(len(res)):
        face = {"bbox": [round(float(v), 1) for v in res.detections.xyxy[i]],
                "score": round(float(res.detections.confidence[i]), 4),
                "quality": round(float(res.quality.score[i]), 3), "matches": [],
                "identity": None}
        if i in rows and found is not None:
            j = rows.index(i)
            face["matches"] = [{"name": n, "similarity": round(float(s), 4)}
                               for n, s in zip(found.names[j], found.similarity[j], strict=True)
                               if n]
            face["identity"] = found.best[j]
        faces.append(face)
    if as_json:
        print(json.dumps({"image": str(image), "gallery": str(gallery), "threshold": limit,
                          "faces": faces}))
        return
    table = Table(title=f"{image}: {len(faces)} faces (threshold {limit:.3f}, "
                        f"{matcher.kind} search over {len(matcher)} embeddings)")
    for col in ("face", "box", "quality", "identity", "top matches"):
        table.add_column(col)
    for n, f in enumerate(faces):
        matches = ", ".join(f"{m['name']} {m['similarity']:.3f}" for m in f["matches"]) or (
            "(not searched: low quality)")
        table.add_row(str(n), " ".join(f"{v:.0f}" for v in f["bbox"]), f"{f['quality']:.2f}",
                      f["identity"] or "-", matches)
    _out().print(table)


@app.command("eval")
def evaluate(
    pairs: Annotated[Path, typer.Argument(
        help="Pairs file (IMAGE_A IMAGE_B 1|0 per line) or a folder of per-person folders.")],
    far: Annotated[float, typer.Option(help="FAR the calibrated threshold is chosen for.")]
    = 1e-3,
    save: Annotated[bool, typer.Option(
        "--save", help="Store the calibrated threshold in --gallery.")] = False,
    gallery: GalleryOpt = DEFAULT_GALLERY,
    detector: DetectorOpt = "yunet-face",
    embedder: EmbedderOpt = "sface",
    engine: EngineOpt = None,
    min_quality: Annotated[float, typer.Option(min=0, max=1)] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Verification accuracy and TAR at FAR 1e-3/1e-4 on labelled pairs; calibrate a threshold."""
    import numpy as np
    from rich.progress import track

    from oko.faces.enroll import embed_images
    from oko.faces.eval import read_pairs, threshold_at_far, verification_report
    from oko.faces.gallery import Gallery

    data = read_pairs(pairs)
    pipeline = _pipeline(detector, embedder, engine, min_quality)
    files = sorted(set(data.a) | set(data.b))
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise OkoError(f"{pairs}: {len(missing)} image(s) not found, e.g. {missing[0]}")
    faces = {}
    for f in track(files, description="embedding", console=Console(stderr=True),
                   disable=as_json or not sys.stderr.isatty()):
        faces[f] = embed_images(pipeline, [f], min_quality)[0]
    usable = [i for i, (a, b) in enumerate(zip(data.a, data.b, strict=True))
              if faces[a].status == "ok" and faces[b].status == "ok"]
    if not usable:
        raise OkoError(f"{pairs}: no pair has a usable face in both images")
    row = {f: i for i, f in enumerate(files)}
    vectors = np.stack([faces[f].embedding if faces[f].status == "ok"
                        else np.zeros(pipeline.embedder.dim, np.float32) for f in files])
    a = np.array([row[data.a[i]] for i in usable])
    b = np.array([row[data.b[i]] for i in usable])
    scores = np.einsum("nd,nd->n", vectors[a], vectors[b]).astype(np.float32)
    same = data.same[usable]
    emb = pipeline.embedder
    report = verification_report(scores, same, emb.threshold)
    calibrated = threshold_at_far(report.impostor_scores.astype(np.float32), far)
    result = {
        "pairs": len(data.same), "scored": len(usable), "genuine": report.genuine,
        "impostor": report.impostor, "images_without_face": sorted(
            str(f) for f, r in faces.items() if r.status != "ok"),
        "model": emb.name, "model_threshold": emb.threshold,
        "accuracy_at_model_threshold": round(report.accuracy, 4),
        "best_accuracy": round(report.best_accuracy, 4),
        "best_threshold": round(report.best_threshold, 6),
        "tar_at_far": [{"far": t.far, "tar": None if t.tar is None else round(t.tar, 4),
                        "threshold": None if t.threshold is None else round(t.threshold, 6)}
                       for t in report.tar_at_far],
        "calibrated_threshold": calibrated, "calibrated_far": far,
        "genuine_similarity": _stats(report.genuine_scores),
        "impostor_similarity": _stats(report.impostor_scores),
    }
    if save:
        if calibrated is None:
            raise OkoError(f"cannot calibrate for FAR {far:g} from {report.impostor} impostor "
                           f"pairs (needs at least {int(np.ceil(1 / far))})")
        with Gallery.open(gallery) as g:
            g.check_model(emb.model_id, emb.name, emb.dim)
            g.set_threshold(calibrated)
        result["saved_to"] = str(gallery)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"face verification on {pairs} ({emb.name})", show_header=False)
    table.add_row("pairs scored", f"{len(usable)} of {len(data.same)} ({report.genuine} genuine, "
                                  f"{report.impostor} impostor)")
    table.add_row(f"accuracy at threshold {emb.threshold:.3f}", f"{report.accuracy:.4f}")
    table.add_row("best accuracy", f"{report.best_accuracy:.4f} at {report.best_threshold:.4f}")
    for t in report.tar_at_far:
        table.add_row(f"TAR at FAR {t.far:g}", "n/a: needs at least "
                      f"{int(np.ceil(1 / t.far))} impostor pairs" if t.tar is None else
                      f"{t.tar:.4f} (threshold {t.threshold:.4f})")
    g_stats, i_stats = result["genuine_similarity"], result["impostor_similarity"]
    table.add_row("genuine similarity", _fmt(g_stats))
    table.add_row("impostor similarity", _fmt(i_stats))
    table.add_row(f"calibrated threshold (FAR {far:g})",
                  "n/a (too few impostor pairs)" if calibrated is None else f"{calibrated:.6f}"
                  + (f", saved to {gallery}" if save else ""))
    _out().print(table)


def _stats(values: np.ndarray) -> dict:
    import numpy as np

    if not len(values):
        return {}
    return {"min": round(float(np.min(values)), 4), "mean": round(float(np.mean(values)), 4),
            "max": round(float(np.max(values)), 4)}


def _fmt(stats: dict) -> str:
    return "-" if not stats else f"min {stats['min']:.3f}  mean {stats['mean']:.3f}  " \
                                 f"max {stats['max']:.3f}"
