"""Detect, rectify, read: plates in frames to Detections with text, batched per stage.

Per call (a batch of frames): one detector pass over the batch (plus one over the vehicle
crops when plates are also searched inside vehicles); one ``remap`` per frame for all its
plates; the plates of the whole batch read as one line, then, in a second batch, as two
lines where the plate's shape allows it and the first read did not already fit a country
format; a format check per read. Stage times go to ``timings`` as ``detect``,
``rectify`` and ``read`` (and ``vehicles``).

Each plate row carries ``data`` columns ``text`` (native script: Cyrillic for Russia),
``text_latin``, ``format``, ``country``, ``corners`` (4x2, TL TR BR BL), ``char_confidences``
and ``readable``. A plate too small to read, or whose read fits no format or is too
uncertain, keeps its box and corners with ``readable`` false and no text: nothing is
guessed. The detector proposes candidates generously; a read that fits a country's format
confirms a candidate whatever its score (see ``_assemble``). The row ``confidence`` is the
detector's score combined with the read's (1 - (1 - det)(1 - read)): a plate that reads
cleanly is a plate even when a detector trained on other countries' plates was unsure.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from oko.core.detections import Detections
from oko.core.geometry import box_iou
from oko.core.timing import StageTimer
from oko.models.detector import Detector
from oko.plates.classify import FormatClassifier, FormatMatch
from oko.plates.corners import box_corners, edge_lengths, expand
from oko.plates.detector import PlateDetector
from oko.plates.reader import CharRead, PlateReader
from oko.plates.rectify import one_line_sizes, warp


@dataclass(frozen=True)
class ReadSettings:
    margin: tuple[float, float] = (0.08, 0.10)   # read this much around the corners (x, y)
    line_height: int = 48                         # one-line plates are warped this tall
    two_line_size: tuple[int, int] = (128, 64)    # (width, height) of two-line plates
    one_line_min_aspect: float = 3.0              # wider plates are never read as two lines
    two_line_max_aspect: float = 2.4              # narrower ones are always read both ways
    min_width: float = 40.0                       # smaller plates are unreadable (pixels)
    min_height: float = 10.0
    min_confidence: float = 0.5                   # geometric mean per character, after correction
    min_score: float = 0.3                        # detector score for plates no country format confirms
    unreadable_min_score: float = 0.5             # big unread plates below this are dropped


@dataclass(frozen=True)
class PlateRead:
    """The outcome for one detected plate."""

    match: FormatMatch | None
    read: CharRead | None
    lines: int
    crop: np.ndarray | None   # the rectified image that was read (one-line or two-line)
    too_small: bool = False

    @property
    def readable(self) -> bool:
        return self.match is not None


class VehicleSearch:
    """Find plates inside vehicle boxes: each vehicle crop is scaled to ``crop_width`` so its
    plate has about the size the plate detector sees best, whatever the vehicle's distance."""

    def __init__(self, vehicles: Detector, classes: Sequence[str], plates: PlateDetector,
                 crop_width: int = 320, margin: float = 0.1) -> None:
        self.vehicles = vehicles
        self.keep = np.flatnonzero(np.isin(vehicles.labels, list(classes)))
        self.plates = plates
        self.crop_width = crop_width
        self.margin = margin

    def __call__(self, images: Sequence[np.ndarray], timings: MutableMapping[str, float]
                 ) -> list[Detections]:
        with StageTimer(timings, "vehicles"):
            found = [d[np.isin(d.class_id, self.keep)] for d in self.vehicles(images)]
        crops, owners, offsets, scales = [], [], [], []
        for i, (img, dets) in enumerate(zip(images, found, strict=True)):
            h, w = img.shape[:2]
            grow = (dets.xyxy[:, 2:] - dets.xyxy[:, :2]) * self.margin
            boxes = np.concatenate([dets.xyxy[:, :2] - grow, dets.xyxy[:, 2:] + grow], axis=1)
            boxes = np.clip(np.round(boxes), 0, [w, h, w, h]).astype(int)
            for x1, y1, x2, y2 in boxes:
                if x2 - x1 < 16 or y2 - y1 < 16:
                    continue
                s = self.crop_width / (x2 - x1)
                crops.append(cv2.resize(img[y1:y2, x1:x2], None, fx=s, fy=s,
                                        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR))
                owners.append(i)
                offsets.append((x1, y1))
                scales.append(s)
        out: list[list[Detections]] = [[] for _ in images]
        if crops:
            with StageTimer(timings, "detect"):
                per_crop = self.plates(crops)
            for dets, i, (x0, y0), s in zip(per_crop, owners, offsets, scales, strict=True):
                shift = np.array([x0, y0], np.float32)
                out[i].append(Detections(
                    xyxy=dets.xyxy / s + np.tile(shift, 2), confidence=dets.confidence,
                    class_id=dets.class_id, keypoints=dets.keypoints / s + shift))
        return [Detections.concat(parts) if parts else _empty() for parts in out]


def _empty() -> Detections:
    return Detections(xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32),
                      class_id=np.zeros(0, np.int32), keypoints=np.zeros((0, 4, 2), np.float32))


class PlatePipeline:
    def __init__(self, detector: PlateDetector, reader: PlateReader, classifier: FormatClassifier,
                 settings: ReadSettings | None = None, vehicle_search: VehicleSearch | None = None,
                 search_frame: bool = True, merge_iou: float = 0.4) -> None:
        self.detector = detector
        self.reader = reader
        self.classifier = classifier
        self.settings = settings or ReadSettings()
        self.vehicle_search = vehicle_search
        self.search_frame = search_frame
        self.merge_iou = merge_iou

    # ------------------------------------------------------------------ stages
    def detect(self, images: Sequence[np.ndarray], timings: MutableMapping[str, float]
               ) -> list[Detections]:
        parts: list[list[Detections]] = [[] for _ in images]
        if self.search_frame:
            with StageTimer(timings, "detect"):
                for p, d in zip(parts, self.detector(images), strict=True):
                    p.append(d)
        if self.vehicle_search is not None:
            for p, d in zip(parts, self.vehicle_search(images, timings), strict=True):
                p.append(d)
        out = []
        for p in parts:
            if len(p) == 2 and len(p[0]) and len(p[1]):
                # A plate found in the frame keeps the frame's detection (measured: its
                # corners read better); vehicle crops only add plates the frame missed.
                overlap = box_iou(p[1].xyxy, p[0].xyxy).max(axis=1)
                p = [p[0], p[1][overlap <= self.merge_iou]]
            dets = Detections.concat(p)
            out.append(dets if len(dets) else _empty())
        return out

    def rectify(self, image: np.ndarray, corners: np.ndarray,
                margin: tuple[float, float] | None = None
                ) -> tuple[list[np.ndarray], list[np.ndarray | None], np.ndarray, np.ndarray]:
        """(one-line images, two-line images or None, readable-size mask, aspect ratios) for
        the plates of one frame."""
        s = self.settings
        width, height = edge_lengths(corners)
        big = (width >= s.min_width) & (height >= s.min_height)
        grown = expand(corners, *(s.margin if margin is None else margin))
        aspect = width / np.maximum(height, 1e-6)
        one = warp(image, grown, one_line_sizes(aspect, s.line_height))
        maybe_two = np.flatnonzero(aspect < s.one_line_min_aspect)
        two: list[np.ndarray | None] = [None] * len(corners)
        if len(maybe_two) and not self.reader.detects_lines:
            sizes = np.tile(np.array(s.two_line_size, np.int64), (len(maybe_two), 1))
            for k, img in zip(maybe_two, warp(image, grown[maybe_two], sizes), strict=True):
                two[k] = img
        return one, two, big, aspect

    def read(self, one: Sequence[np.ndarray], two: Sequence[np.ndarray | None],
             big: np.ndarray, aspect: np.ndarray) -> list[PlateRead]:
        """Read every readable-size plate as one line; then, in a second batch, as two lines
        the plates whose shape allows it and that are either nearly square or not yet
        confirmed by a country format; keep the interpretation whose format fits better."""
        results = [PlateRead(None, None, 1, None, too_small=not b) for b in big]
        best = np.full(len(one), -1.0)
        first = np.flatnonzero(big)
        self._read_batch([one[i] for i in first], 1, first, results, best)
        second = np.array([i for i in first if two[i] is not None and (
            aspect[i] < self.settings.two_line_max_aspect or not _confirmed(results[i]))],
            np.int64)
        self._read_batch([two[i] for i in second], 2, second, results, best)
        return results

    def _read_batch(self, images: list[np.ndarray], lines: int, owner: np.ndarray,
                    results: list[PlateRead], best: np.ndarray) -> None:
        if not images:
            return
        for read, img, i in zip(self.reader.read(images, [lines] * len(images)), images, owner,
                                strict=True):
            match = self.classifier.classify(read.probs, read.lines) if len(read) else None
            ok = match is not None and _geo_mean(match.confidences) >= self.settings.min_confidence
            score = match.score if ok else -0.5
            if score > best[i]:
                best[i] = score
                results[i] = PlateRead(match if ok else None, read, read.lines, img)

    # ------------------------------------------------------------------ all together
    def __call__(self, images: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> list[Detections]:
        timings = {} if timings is None else timings
        found = self.detect(images, timings)
        with StageTimer(timings, "rectify"):
            rectified = [self.rectify(img, d.keypoints) for img, d in zip(images, found, strict=True)]
        with StageTimer(timings, "read"):
            flat_one = [x for r in rectified for x in r[0]]
            flat_two = [x for r in rectified for x in r[1]]
            flat_big = np.concatenate([r[2] for r in rectified]) if rectified else np.zeros(0, bool)
            aspect = np.concatenate([r[3] for r in rectified]) if rectified else np.zeros(0)
            reads = self.read(flat_one, flat_two, flat_big, aspect)
        out, start = [], 0
        for dets in found:
            out.append(self._assemble(dets, reads[start:start + len(dets)], self.settings))
            start += len(dets)
        return out

    def read_crops(self, crops: Sequence[np.ndarray]) -> list[PlateRead]:
        """Read images that are already plates (upright, tightly cropped)."""
        parts = [self.rectify(c, box_corners([[0, 0, c.shape[1], c.shape[0]]]), (0.0, 0.0))
                 for c in crops]
        return self.read([p[0][0] for p in parts], [p[1][0] for p in parts],
                         np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]))

    @staticmethod
    def _assemble(dets: Detections, reads: Sequence[PlateRead], s: ReadSettings) -> Detections:
        """Plate rows with text columns, for the candidates that are plates.

        The detector proposes candidates generously; a read that fits a country's format
        confirms one whatever its score (badges and stickers rarely fit a template). Reads
        of no country (the generic format) and plates too small to read need ``min_score``;
        plates big enough that could not be read need ``unreadable_min_score``.
        """
        country = np.array([r.readable and r.match.format.country != "*" for r in reads], bool)
        need = np.array([s.min_score if (r.readable or r.too_small) else s.unreadable_min_score
                         for r in reads], np.float32)
        keep = country.reshape(-1) | (dets.confidence >= need.reshape(-1))
        dets, reads = dets[keep], [r for r, k in zip(reads, keep, strict=True) if k]
        n = len(dets)
        text, latin, fmt, country = (np.empty(n, object) for _ in range(4))
        confs = np.empty(n, object)
        readable = np.zeros(n, bool)
        score = dets.confidence.astype(np.float32).copy()
        for i, r in enumerate(reads):
            m = r.match
            confs[i] = m.confidences.round(4) if m is not None else np.zeros(0, np.float32)
            if m is None:
                continue
            text[i], latin[i], fmt[i] = m.text, m.text_latin, m.format.name
            country[i] = None if m.format.country == "*" else m.format.country
            readable[i] = True
            score[i] = 1.0 - (1.0 - score[i]) * (1.0 - _geo_mean(m.confidences))
        return Detections(
            xyxy=dets.xyxy, confidence=score, class_id=np.zeros(n, np.int32),
            data={"text": text, "text_latin": latin, "format": fmt, "country": country,
                  "corners": dets.keypoints.round(1).astype(np.float32), "char_confidences": confs,
                  "readable": readable})


def _confirmed(result: PlateRead) -> bool:
    """The read fits a country's format (not only the generic one)."""
    return result.match is not None and result.match.format.country != "*"


def _geo_mean(values: np.ndarray) -> float:
    if not len(values):
        return 0.0
    return float(np.exp(np.log(np.maximum(values, 1e-6)).mean()))
