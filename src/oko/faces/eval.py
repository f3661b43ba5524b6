"""Verification metrics on labelled pairs, and a match threshold calibrated from them.

Pairs come from a text file (``IMAGE_A IMAGE_B LABEL`` per line, whitespace or comma
separated; LABEL is 1/same/true or 0/different/false; paths relative to the file; ``#``
starts a comment) or from a folder of folders (one per person): then every pair of photos
of one person is genuine and every pair across people an impostor.

Reported: accuracy at the model's threshold and the best accuracy over all thresholds;
TAR (true accept rate) at FAR (false accept rate) 1e-3 and 1e-4, where the threshold is
the smallest one accepting at most FAR of the impostor pairs. A FAR below 1 / impostors
cannot be measured: it is reported as such, never extrapolated.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oko.core.errors import ConfigError, SourceError
from oko.faces.enroll import images_in

_TRUE = {"1", "same", "true", "yes", "genuine", "match"}
_FALSE = {"0", "different", "diff", "false", "no", "impostor", "nonmatch"}


@dataclass(frozen=True)
class Pairs:
    a: list[Path]
    b: list[Path]
    same: np.ndarray  # bool (n,)


def read_pairs(path: Path) -> Pairs:
    """Pairs from a pairs file or a folder of per-person folders (see module doc)."""
    if path.is_dir():
        return _pairs_from_folders(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such pairs file or folder")
    a, b, same = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in re.split(r"[,\s]+", line) if p]
        if len(parts) != 3 or parts[2].lower() not in _TRUE | _FALSE:
            raise ConfigError(f"{path}:{number}: expected 'IMAGE_A IMAGE_B LABEL' with LABEL "
                              f"1/0 (same/different), got {line!r}")
        a.append((path.parent / parts[0]).resolve())
        b.append((path.parent / parts[1]).resolve())
        same.append(parts[2].lower() in _TRUE)
    if not a:
        raise ConfigError(f"{path}: no pairs in the file")
    return Pairs(a, b, np.array(same, bool))


def _pairs_from_folders(root: Path) -> Pairs:
    people = {d.name: images_in([d]) for d in sorted(root.iterdir()) if d.is_dir()}
    files = [(name, f) for name, fs in people.items() for f in fs]
    if len(files) < 2:
        raise ConfigError(f"{root}: needs sub-folders (one per person) with at least two "
                          "images in all")
    a, b, same = [], [], []
    for (na, fa), (nb, fb) in itertools.combinations(files, 2):
        a.append(fa)
        b.append(fb)
        same.append(na == nb)
    return Pairs(a, b, np.array(same, bool))


@dataclass(frozen=True)
class TarAtFar:
    far: float
    tar: float | None        # None when the FAR is below what the impostor count can show
    threshold: float | None


@dataclass(frozen=True)
class VerificationReport:
    genuine: int
    impostor: int
    threshold: float
    accuracy: float
    best_accuracy: float
    best_threshold: float
    tar_at_far: list[TarAtFar]
    genuine_scores: np.ndarray
    impostor_scores: np.ndarray

    def calibrated(self, far: float) -> float | None:
        """The threshold for ``far`` (None when it cannot be measured on these pairs)."""
        for item in self.tar_at_far:
            if item.far == far:
                return item.threshold
        return threshold_at_far(self.impostor_scores, far)


def threshold_at_far(impostor: np.ndarray, far: float) -> float | None:
    """Smallest threshold t with (impostor scores >= t) / n <= far (None if n < 1 / far)."""
    n = len(impostor)
    if n == 0 or far * n < 1:
        return None
    allowed = int(np.floor(far * n))  # impostors that may pass
    top = np.sort(impostor)[::-1]
    # Strictly above the (allowed + 1)-th highest impostor score: nudge by one float step.
    return float(np.nextafter(np.float32(top[allowed]), np.float32(np.inf)))


def verification_report(scores: np.ndarray, same: np.ndarray, threshold: float,
                        fars: tuple[float, ...] = (1e-3, 1e-4)) -> VerificationReport:
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    gen, imp = scores[same], scores[~same]
    accuracy = float(((scores >= threshold) == same).mean()) if len(scores) else 0.0
    best_acc, best_t = _best_threshold(scores, same, threshold)
    items = []
    for far in fars:
        t = threshold_at_far(imp, far)
        items.append(TarAtFar(far, None if t is None else float((gen >= t).mean()) if len(gen)
                              else None, t))
    return VerificationReport(int(same.sum()), int((~same).sum()), threshold, accuracy,
                              best_acc, best_t, items, gen, imp)


def _best_threshold(scores: np.ndarray, same: np.ndarray, fallback: float) -> tuple[float, float]:
    """The accuracy-maximising threshold, in one sort: accepting everything from sorted
    position i up is right for the genuine pairs at or above i and the impostors below."""
    n = len(scores)
    if n == 0:
        return 0.0, fallback
    order = np.argsort(scores, kind="stable")
    s, g = scores[order], same[order]
    genuine_from = np.concatenate([np.cumsum(g[::-1])[::-1], [0]])   # genuine at >= i
    impostor_below = np.concatenate([[0], np.cumsum(~g)])            # impostors at < i
    correct = genuine_from + impostor_below                          # cut before position i
    # Only cuts between different scores are thresholds (ties stay on one side).
    valid = np.concatenate([[True], s[1:] > s[:-1], [True]])
    i = int(np.argmax(np.where(valid, correct, -1)))
    t = s[0] - 1e-6 if i == 0 else s[-1] + 1e-6 if i == n else (s[i - 1] + s[i]) / 2
    return float(correct[i] / n), float(t)
