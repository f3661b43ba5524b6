"""The model zoo: find manifests by name in known folders, or load a model by path.

Search order for names: folders in ``$OKO_MODELS_PATH`` (``:``-separated), the user's
folder (``$XDG_DATA_HOME/oko/models``, default ``~/.local/share/oko/models``), then the
models bundled with oko. A model folder holds ``manifest.yaml`` and the file it names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from oko.core.errors import ConfigError, ModelNotFoundError, OkoError, UnknownNameError
from oko.models.manifest import MANIFEST_NAME, Manifest, load_manifest
from oko.models.ultralytics_meta import manifest_from_ultralytics

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = "nanodet-coco"


def bundled_models_dir() -> Path:
    """Models shipped with oko: inside the wheel, or models/ of a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "_bundled_models"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "models"


def user_models_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "oko" / "models"


def model_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("OKO_MODELS_PATH", "").split(os.pathsep) if p]
    return [*extra, user_models_dir(), bundled_models_dir()]


@dataclass(frozen=True)
class ZooEntry:
    """A folder that looks like a model: its manifest, or why it could not be read."""

    folder: Path
    manifest: Manifest | None
    error: str | None = None


def scan_zoo() -> list[ZooEntry]:
    """Every model folder in search order; the first of duplicate names wins."""
    entries: list[ZooEntry] = []
    seen: set[str] = set()
    for root in model_dirs():
        if not root.is_dir():
            continue
        for manifest_path in sorted(root.glob(f"*/{MANIFEST_NAME}")):
            try:
                manifest = load_manifest(manifest_path)
            except OkoError as exc:
                entries.append(ZooEntry(manifest_path.parent, None, str(exc)))
                continue
            if manifest.name not in seen:
                seen.add(manifest.name)
                entries.append(ZooEntry(manifest_path.parent, manifest))
    return entries


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or "/" in ref or ref.endswith((".onnx", ".yaml", ".yml")) or Path(ref).exists()


def _manifest_beside(onnx_path: Path) -> Manifest | None:
    """A manifest next to an ONNX file: ``<stem>.yaml`` or ``manifest.yaml`` naming it."""
    for candidate in (onnx_path.with_suffix(".yaml"), onnx_path.with_suffix(".yml"),
                      onnx_path.parent / MANIFEST_NAME):
        if candidate.is_file():
            manifest = load_manifest(candidate)
            if manifest.model_path == onnx_path.resolve():
                return manifest
    return None


def resolve_model(ref: str | Path) -> Manifest:
    """A manifest from a zoo name, a model folder, a manifest file or an ONNX file."""
    ref_str = str(ref)
    if not _looks_like_path(ref_str):
        names = []
        for entry in scan_zoo():
            if entry.manifest is None:
                continue
            if entry.manifest.name == ref_str:
                return entry.manifest
            names.append(entry.manifest.name)
        raise UnknownNameError("model", ref_str, names)
    path = Path(ref_str).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"model path not found: {path}")
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise ModelNotFoundError(f"{path}: folder has no {MANIFEST_NAME}")
        return load_manifest(path / MANIFEST_NAME)
    if path.suffix in (".yaml", ".yml"):
        return load_manifest(path)
    manifest = _manifest_beside(path) or manifest_from_ultralytics(path)
    if manifest is None:
        raise ConfigError(
            f"{path}: no manifest beside this model",
            f"write {path.with_suffix('.yaml').name} (see docs/models.md), or export with "
            "Ultralytics, whose metadata oko reads")
    return manifest
