"""Global identities across cameras: tracks of one edge node joined into people.

Every person track gets one appearance embedding (from its best views, once it has had
enough good frames or when it ends). :meth:`IdentityService.assign` then looks for the
same person among the recent tracks of the *other* channels and either joins that
track's global person or opens a new one.

Which earlier tracks can be the same person:

- another channel (within a channel the tracker already decides);
- time: with a camera-transition table, only the pairs it lists (``from`` -> ``to``),
  and the gap from the earlier track's last sighting to this track's first within the
  pair's ``[min_s, max_s]``; without one, any channel with a gap in
  ``[-overlap_s, window_s]``. ``-overlap_s`` tolerates clock jitter and cameras whose
  views touch; a larger overlap means both were seen at once: two different people;
- the person behind the earlier track is not on this channel right now (one person
  cannot be two simultaneous tracks of one camera).

The best candidate by cosine similarity wins if it reaches ``threshold``. The service is
shared by the channels of one module and is thread-safe.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Transition(BaseModel):
    """People leaving ``from_channel`` can appear on ``to_channel`` after min_s..max_s."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_channel: str = Field(alias="from")
    to_channel: str = Field(alias="to")
    min_s: float = Field(0.0, description="Shortest travel time (negative: views overlap).")
    max_s: float = Field(120.0, description="Longest travel time.")

    @model_validator(mode="after")
    def _ordered(self) -> Transition:
        if self.max_s < self.min_s:
            raise ValueError(f"transition {self.from_channel} -> {self.to_channel}: "
                             f"max_s {self.max_s} < min_s {self.min_s}")
        return self


class IdentityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float | None = Field(
        None, ge=-1, le=1, description="Cosine similarity to join a person (None: the "
        "embedder's default).")
    window_s: float = Field(300.0, gt=0, description="How far back to look without a "
                            "transition table, and how long tracks are remembered.")
    overlap_s: float = Field(1.0, ge=0, description="Tolerated overlap in time between two "
                             "tracks of one person on different channels.")
    transitions: list[Transition] | None = Field(
        None, description="Camera topology; None: any channel may follow any other.")
    bidirectional: bool = Field(True, description="Each transition also holds in reverse.")


@dataclass
class TrackRecord:
    """One track as the service knows it."""

    channel: str
    track_id: int
    first_seen: float
    last_seen: float
    embedding: np.ndarray
    global_id: int = -1
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    global_id: int
    new: bool
    matched: TrackRecord | None = None
    similarity: float | None = None


class IdentityService:
    def __init__(self, config: IdentityConfig, threshold: float) -> None:
        self.config = config
        self.threshold = float(config.threshold if config.threshold is not None else threshold)
        self._records: list[TrackRecord] = []
        self._by_key: dict[tuple[str, int], TrackRecord] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str], Transition] = {}
        for t in config.transitions or []:
            self._rules[(t.from_channel, t.to_channel)] = t
            if config.bidirectional:
                self._rules.setdefault((t.to_channel, t.from_channel), t)

    def _gap_allowed(self, earlier: TrackRecord, later: TrackRecord) -> bool:
        gap = later.first_seen - earlier.last_seen
        if self.config.transitions is None:
            return -self.config.overlap_s <= gap <= self.config.window_s
        rule = self._rules.get((earlier.channel, later.channel))
        return rule is not None and rule.min_s - self.config.overlap_s <= gap <= rule.max_s

    def _busy_here(self, record: TrackRecord) -> set[int]:
        """Global ids with another track on ``record``'s channel overlapping it in time."""
        return {r.global_id for r in self._records
                if r.channel == record.channel and r.track_id != record.track_id
                and r.last_seen + self.config.overlap_s >= record.first_seen}

    def assign(self, record: TrackRecord) -> Decision:
        """Join ``record`` to a global person or open one; it is remembered either way."""
        with self._lock:
            self._forget(record.first_seen)
            busy = self._busy_here(record)
            candidates = [r for r in self._records
                          if r.channel != record.channel and r.global_id not in busy
                          and self._gap_allowed(r, record)]
            decision = Decision(next(self._ids), True)
            if candidates:
                sims = np.stack([c.embedding for c in candidates]) @ record.embedding
                best = int(sims.argmax())
                if sims[best] >= self.threshold:
                    match = candidates[best]
                    decision = Decision(match.global_id, False, match, float(sims[best]))
            record.global_id = decision.global_id
            self._records.append(record)
            self._by_key[(record.channel, record.track_id)] = record
            return decision

    def seen(self, channel: str, track_id: int, timestamp: float) -> None:
        """A decided track was seen again (keeps the overlap checks true)."""
        with self._lock:
            rec = self._by_key.get((channel, track_id))
            if rec is not None and timestamp > rec.last_seen:
                rec.last_seen = timestamp

    def global_id(self, channel: str, track_id: int) -> int | None:
        rec = self._by_key.get((channel, track_id))
        return None if rec is None else rec.global_id

    def _forget(self, now: float) -> None:
        """Drop tracks no rule can reach any more."""
        horizon = max([self.config.window_s] + [t.max_s for t in self.config.transitions or []])
        keep = [r for r in self._records if now - r.last_seen <= horizon]
        if len(keep) != len(self._records):
            self._records = keep
            self._by_key = {(r.channel, r.track_id): r for r in keep}

    def __len__(self) -> int:
        return len(self._records)
