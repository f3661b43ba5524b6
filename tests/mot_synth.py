"""Seeded synthetic MOT sequences: ground truth and detections in MOTChallenge layout.

No benchmark video is available offline, so the tracker tests and benchmark generate
their data. A sequence has about ``objects`` people-sized boxes on a 1920x1080 frame:

* motion: constant velocity with occasional turns (a few degrees per frame for one to
  two seconds), speed changes and stops; mostly left-right traffic so paths cross;
* entering and leaving: objects start at the left/right edge (a few appear inside the
  frame, as from a doorway) and leave when they walk out (a few vanish inside it, as
  through a door); the population is refilled;
* perspective: boxes lower in the frame are larger (closer to the camera);
* occlusion: a box is covered by boxes whose bottom edge is lower (closer); visibility
  is the uncovered fraction, sampled on a grid inside the box;
* detector: ~10 % misses when visible, more when occluded, none below 15 % visibility;
  corner noise ~3 % of the box size (more when occluded); scores ~0.85 for visible
  objects, falling to 0.2-0.5 for occluded ones; false positives (Poisson, mostly low
  scores).

Arrays: ``gt`` rows ``frame, id, x, y, w, h, visibility`` (frame 1-based);
``dets`` rows ``frame, -1, x, y, w, h, score``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class SynthConfig:
    frames: int = 300
    fps: float = 30.0
    width: int = 1920
    height: int = 1080
    objects: int = 20
    miss_rate: float = 0.10
    false_positives: float = 1.5  # mean per frame
    box_noise: float = 0.03       # corner noise, fraction of box size
    inside_births: float = 0.15   # fraction of new objects appearing inside the frame
    door_exits: float = 0.002     # chance per object and frame of leaving inside the frame


@dataclass(frozen=True)
class SynthSequence:
    gt: np.ndarray
    dets: np.ndarray
    config: SynthConfig
    seed: int

    @property
    def frames(self) -> int:
        return self.config.frames

    def frame_dets(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per frame (0-based list): detections as (xyxy float32 (n, 4), scores (n,))."""
        return _split(self.dets, self.frames, lambda r: (_xyxy(r), r[:, 6].astype(np.float32)))

    def frame_gt(self, min_visibility: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per frame: ground truth (ids (n,), xywh (n, 4)) with visibility at least given."""
        gt = self.gt[self.gt[:, 6] >= min_visibility]
        return _split(gt, self.frames, lambda r: (r[:, 1].astype(np.int64), r[:, 2:6]))


def _xyxy(rows: np.ndarray) -> np.ndarray:
    out = rows[:, 2:6].astype(np.float32).copy()
    out[:, 2:] += out[:, :2]
    return out


def _split(rows: np.ndarray, frames: int, fn: Callable[[np.ndarray], T]) -> list[T]:
    order = np.argsort(rows[:, 0], kind="stable")
    rows = rows[order]
    bounds = np.searchsorted(rows[:, 0], np.arange(1, frames + 2))
    return [fn(rows[bounds[i]:bounds[i + 1]]) for i in range(frames)]


class _World:
    """Objects alive now, as parallel arrays (state advanced one frame at a time)."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.next_id = 1
        self.ids = np.zeros(0, np.int64)
        self.pos = np.zeros((0, 2))       # bottom-centre x, y
        self.heading = np.zeros(0)
        self.speed = np.zeros(0)          # px / frame at unit scale
        self.target_speed = np.zeros(0)
        self.turn = np.zeros(0)           # rad / frame while turning
        self.turn_left = np.zeros(0, np.int64)
        self.size = np.zeros(0)           # height at unit scale
        self.aspect = np.zeros(0)         # width / height

    def scale(self, y: np.ndarray) -> np.ndarray:
        # Perspective: half size at the top of the frame, full size at the bottom.
        return 0.5 + 0.5 * np.clip(y / self.cfg.height, 0.0, 1.2)

    def spawn(self, n: int, first: bool) -> None:
        cfg, rng = self.cfg, self.rng
        if n <= 0:
            return
        inside = rng.random(n) < (1.0 if first else cfg.inside_births)
        from_left = rng.random(n) < 0.5
        y = rng.uniform(0.35, 1.0, n) * cfg.height
        size = rng.uniform(160, 300, n)
        aspect = rng.uniform(0.35, 0.5, n)
        w_half = size * self.scale(y) * aspect / 2
        x = np.where(from_left, -w_half + 1, cfg.width + w_half - 1)
        x = np.where(inside, rng.uniform(0.05, 0.95, n) * cfg.width, x)
        heading = np.where(from_left, 0.0, np.pi) + rng.normal(0, 0.25, n)
        speed = rng.uniform(1.0, 6.0, n)
        self.ids = np.concatenate([self.ids, np.arange(self.next_id, self.next_id + n)])
        self.next_id += n
        self.pos = np.concatenate([self.pos, np.stack([x, y], 1)])
        self.heading = np.concatenate([self.heading, heading])
        self.speed = np.concatenate([self.speed, speed])
        self.target_speed = np.concatenate([self.target_speed, speed])
        self.turn = np.concatenate([self.turn, np.zeros(n)])
        self.turn_left = np.concatenate([self.turn_left, np.zeros(n, np.int64)])
        self.size = np.concatenate([self.size, size])
        self.aspect = np.concatenate([self.aspect, aspect])

    def step(self) -> None:
        rng, n = self.rng, len(self.ids)
        # Turn events: a steady turn for 1-2 s, then straight again.
        start = (self.turn_left == 0) & (rng.random(n) < 0.01)
        self.turn[start] = rng.normal(0, 0.03, start.sum())
        self.turn_left[start] = rng.integers(30, 60, start.sum())
        self.heading += np.where(self.turn_left > 0, self.turn, 0.0)
        self.turn_left = np.maximum(self.turn_left - 1, 0)
        # Speed changes (some stop for a while) approached smoothly.
        change = rng.random(n) < 0.01
        new_speed = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(1.0, 7.0, n))
        self.target_speed = np.where(change, new_speed, self.target_speed)
        self.speed += 0.05 * (self.target_speed - self.speed)
        # Keep vertical drift inside the walkable band by reflecting the heading.
        s = self.speed * self.scale(self.pos[:, 1])
        self.pos += np.stack([np.cos(self.heading), np.sin(self.heading)], 1) * s[:, None]
        lo, hi = 0.3 * self.cfg.height, 1.05 * self.cfg.height
        bounce = (self.pos[:, 1] < lo) | (self.pos[:, 1] > hi)
        self.heading[bounce] = -self.heading[bounce]
        self.pos[:, 1] = np.clip(self.pos[:, 1], lo, hi)

    def boxes(self) -> np.ndarray:
        """xyxy (n, 4) of all objects (not clipped)."""
        h = self.size * self.scale(self.pos[:, 1])
        w = h * self.aspect
        x, y = self.pos[:, 0], self.pos[:, 1]
        return np.stack([x - w / 2, y - h, x + w / 2, y], 1)

    def drop_gone(self) -> None:
        b = self.boxes()
        gone = (b[:, 2] < 0) | (b[:, 0] > self.cfg.width)
        gone |= self.rng.random(len(gone)) < self.cfg.door_exits
        keep = ~gone
        for name in ("ids", "pos", "heading", "speed", "target_speed", "turn", "turn_left",
                     "size", "aspect"):
            setattr(self, name, getattr(self, name)[keep])


def _visibility(xyxy: np.ndarray, grid: int = 8) -> np.ndarray:
    """Uncovered fraction of each box; boxes with a lower bottom edge are in front."""
    n = len(xyxy)
    if n == 0:
        return np.zeros(0)
    u = (np.arange(grid) + 0.5) / grid
    gx = xyxy[:, None, 0] + (xyxy[:, None, 2] - xyxy[:, None, 0]) * u  # (n, g)
    gy = xyxy[:, None, 1] + (xyxy[:, None, 3] - xyxy[:, None, 1]) * u
    px = np.repeat(gx, grid, axis=1)[:, :, None]  # (n, g*g, 1)
    py = np.tile(gy, (1, grid))[:, :, None]
    inside = ((px >= xyxy[None, None, :, 0]) & (px <= xyxy[None, None, :, 2])
              & (py >= xyxy[None, None, :, 1]) & (py <= xyxy[None, None, :, 3]))
    in_front = xyxy[None, :, 3] > xyxy[:, None, 3]  # (n, n): j in front of i
    covered = (inside & in_front[:, None, :]).any(axis=2)
    return 1.0 - covered.mean(axis=1)


def _clip(xyxy: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    out = xyxy.copy()
    out[:, 0::2] = np.clip(out[:, 0::2], 0, cfg.width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, cfg.height)
    return out


def _detect(frame: int, boxes: np.ndarray, vis: np.ndarray, cfg: SynthConfig,
            rng: np.random.Generator) -> list[np.ndarray]:
    rows = []
    n = len(boxes)
    p_detect = (1 - cfg.miss_rate) * np.clip((vis - 0.15) / 0.45, 0.0, 1.0)
    hit = rng.random(n) < p_detect
    wh = boxes[:, 2:] - boxes[:, :2]
    sigma = cfg.box_noise * (1.0 + 1.5 * (1.0 - vis))[:, None] * np.tile(wh, 2)
    noisy = boxes + rng.normal(0, 1, (n, 4)) * sigma
    score = np.clip(rng.normal(0.85, 0.07, n) - 0.75 * (1 - vis), 0.05, 0.99)
    for b, s in zip(_clip(noisy[hit], cfg), score[hit], strict=True):
        if b[2] - b[0] > 2 and b[3] - b[1] > 2:
            rows.append(np.array([frame, -1, b[0], b[1], b[2] - b[0], b[3] - b[1], s]))
    # False positives: random people-sized boxes, mostly low scores.
    for _ in range(rng.poisson(cfg.false_positives)):
        h = rng.uniform(80, 300)
        w = h * rng.uniform(0.3, 0.6)
        x, y = rng.uniform(0, cfg.width - w), rng.uniform(0, cfg.height - h)
        rows.append(np.array([frame, -1, x, y, w, h, rng.beta(2.0, 3.5)]))
    return rows


def make_sequence(seed: int, config: SynthConfig | None = None) -> SynthSequence:
    """One synthetic sequence; the same seed and config always give the same arrays."""
    cfg = config or SynthConfig()
    rng = np.random.default_rng(seed)
    world = _World(cfg, rng)
    world.spawn(cfg.objects, first=True)
    gt_rows: list[np.ndarray] = []
    det_rows: list[np.ndarray] = []
    for frame in range(1, cfg.frames + 1):
        if frame > 1:
            world.step()
            world.drop_gone()
            missing = cfg.objects - len(world.ids)
            world.spawn(rng.binomial(missing, 0.08) if missing > 0 else 0, first=False)
        boxes = world.boxes()
        vis = _visibility(boxes)
        clipped = _clip(boxes, cfg)
        on_screen = (clipped[:, 2] - clipped[:, 0] > 2) & (clipped[:, 3] - clipped[:, 1] > 2)
        # Off-screen parts count as not visible.
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        vis = vis * np.prod(clipped[:, 2:] - clipped[:, :2], axis=1) / area
        for i in np.flatnonzero(on_screen):
            b = clipped[i]
            gt_rows.append(np.array([frame, world.ids[i], b[0], b[1], b[2] - b[0],
                                     b[3] - b[1], vis[i]]))
        det_rows += _detect(frame, clipped[on_screen], vis[on_screen], cfg, rng)
    return SynthSequence(gt=np.array(gt_rows), dets=np.array(det_rows), config=cfg, seed=seed)


def write_mot(path: str | Path, rows: np.ndarray) -> None:
    """Write rows (frame, id, x, y, w, h, score) as a MOTChallenge text file."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},"
                     f"{r[6]:.4f},-1,-1,-1\n")
