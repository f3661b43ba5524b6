"""Reading events back: filtered pages, plate and person search, counts over time.

Every filter maps to an indexed column, and pages are keyset-paginated on
``(time, seq)`` (newest first), so a page costs the same at row 10 and at row 10 million.
Counts come from the hourly ``counts`` table, never from scanning ``events``. All values
reach SQL as bound parameters.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from oko.server import plates as plate_text
from oko.server.models import counts, events, plate_keys

PlateMode = Literal["exact", "prefix", "fuzzy"]
MAX_LIMIT = 1000
MAX_FUZZY_CANDIDATES = 2000
_CURSOR = re.compile(r"^(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?):(\d{1,19})$")


class QueryError(ValueError):
    """A query parameter that makes no sense; the message names it."""


def parse_time(value: str | float | None, name: str, tz: str | None = None) -> float | None:
    """Unix seconds, or ISO 8601 (``2024-05-01``, ``2024-05-01T12:00:00+02:00``); a time
    without an offset is in ``tz`` (default UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"{name}: {text[:40]!r} is neither Unix seconds nor an ISO 8601 "
                         "time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone(tz) if tz else UTC)
    return when.timestamp()


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise QueryError(f"tz: unknown time zone {name!r}") from exc


def prefix_range(column: sa.ColumnElement, prefix: str) -> sa.ColumnElement[bool]:
    """``column LIKE prefix%`` as an index range (byte-wise order)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return sa.and_(column >= prefix, column < upper)


@dataclass
class EventFilter:
    since: float | None = None
    until: float | None = None
    node: str | None = None
    channel: str | None = None
    types: list[str] = field(default_factory=list)
    label: str | None = None
    name: str | None = None  # line or zone
    plate: str | None = None
    plate_mode: PlateMode = "prefix"
    person: str | None = None
    person_mode: Literal["exact", "prefix"] = "exact"
    received_since: float | None = None

    def conditions(self, conn: sa.Connection) -> list[sa.ColumnElement[bool]] | None:
        """WHERE terms; None when the filter cannot match anything."""
        where: list[sa.ColumnElement[bool]] = []
        if self.since is not None:
            where.append(events.c.time >= self.since)
        if self.until is not None:
            where.append(events.c.time < self.until)
        if self.node:
            where.append(events.c.node_id == self.node)
        if self.channel:
            where.append(events.c.channel_id == self.channel)
        if self.types:
            where.append(events.c.type.in_(self.types))
        if self.label:
            where.append(events.c.label == self.label)
        if self.name:
            where.append(events.c.name == self.name)
        if self.received_since is not None:
            where.append(events.c.received >= self.received_since)
        if self.plate:
            plate = plate_text.normalise(self.plate)
            if plate is None:
                return None
            if self.plate_mode == "exact":
                where.append(events.c.plate == plate)
            elif self.plate_mode == "prefix":
                where.append(prefix_range(events.c.plate, plate))
            else:
                matches = [p for p, _ in fuzzy_plates(conn, plate)]
                if not matches:
                    return None
                where.append(events.c.plate.in_(matches))
        if self.person:
            person = self.person.strip().casefold()[:128]
            if not person:
                return None
            where.append(events.c.person == person if self.person_mode == "exact"
                         else prefix_range(events.c.person, person))
        return where


def fuzzy_plates(conn: sa.Connection, plate: str) -> list[tuple[str, int]]:
    """Known plates within one edit of ``plate`` after OCR-confusion folding, best first."""
    keys = sorted(plate_text.deletion_keys(plate))
    candidates = conn.execute(sa.select(plate_keys.c.plate).distinct()
                              .where(plate_keys.c.key.in_(keys))
                              .limit(MAX_FUZZY_CANDIDATES)).scalars().all()
    ranked = [(p, r) for p in candidates if (r := plate_text.fuzzy_match(plate, p)) is not None]
    return sorted(ranked, key=lambda pr: (pr[1], pr[0]))


EVENT_COLUMNS = [events.c.seq, events.c.node_id, events.c.event_id, events.c.type,
                 events.c.channel_id, events.c.time, events.c.stream_ts, events.c.frame_index,
                 events.c.received, events.c.label, events.c.track_id, events.c.name,
                 events.c.direction, events.c.plate, events.c.person, events.c.data,
                 events.c.snapshot, events.c.snapshot_size]


def snapshot_url(node_id: str, event_id: str) -> str:
    return f"/api/v1/events/{node_id}/{event_id}/snapshot.jpg"


def event_dict(row: Any) -> dict[str, Any]:
    return {"seq": row.seq, "id": row.event_id, "node": row.node_id,
            "channel_id": row.channel_id, "type": row.type, "time": row.time,
            "timestamp": row.stream_ts, "frame_index": row.frame_index,
            "received": row.received, "label": row.label, "track_id": row.track_id,
            "name": row.name, "direction": row.direction, "plate": row.plate,
            "person": row.person, "data": json.loads(row.data),
            "snapshot": snapshot_url(row.node_id, row.event_id) if row.snapshot else None}


def parse_cursor(cursor: str | None) -> tuple[float, int] | None:
    if not cursor:
        return None
    m = _CURSOR.fullmatch(cursor)
    if m is None:
        raise QueryError("before: not a cursor returned by this API")
    return float(m.group(1)), int(m.group(2))


def make_cursor(row: Any) -> str:
    return f"{row.time!r}:{row.seq}"


def find_events(conn: sa.Connection, flt: EventFilter, limit: int = 100,
                before: str | None = None) -> tuple[list[Any], str | None]:
    """One page of rows, newest first, and the cursor of the next page (or None)."""
    limit = max(1, min(limit, MAX_LIMIT))
    where = flt.conditions(conn)
    if where is None:
        return [], None
    cursor = parse_cursor(before)
    if cursor is not None:
        t, seq = cursor
        where.append(sa.or_(events.c.time < t, sa.and_(events.c.time == t, events.c.seq < seq)))
    stmt = (sa.select(*EVENT_COLUMNS).where(*where)
            .order_by(events.c.time.desc(), events.c.seq.desc()).limit(limit + 1))
    rows = conn.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (make_cursor(rows[-1]) if more and rows else None)


def iter_events(conn: sa.Connection, flt: EventFilter, limit: int) -> Any:
    """Rows for an export, newest first, streamed from the database."""
    where = flt.conditions(conn)
    if where is None:
        return iter(())
    stmt = (sa.select(*EVENT_COLUMNS).where(*where)
            .order_by(events.c.time.desc(), events.c.seq.desc()).limit(limit))
    return conn.execution_options(stream_results=True, yield_per=1000).execute(stmt)


def get_event(conn: sa.Connection, node_id: str, event_id: str) -> Any | None:
    return conn.execute(sa.select(*EVENT_COLUMNS).where(
        events.c.node_id == node_id, events.c.event_id == event_id)).first()


# ------------------------------------------------------------------------- search
def search_plates(conn: sa.Connection, query: str, mode: PlateMode = "fuzzy",
                  limit: int = 50, since: float | None = None) -> list[dict[str, Any]]:
    """Plates matching ``query`` with their number of reads and first/last time seen."""
    plate = plate_text.normalise(query)
    if plate is None:
        return []
    ranks: dict[str, int] = {}
    if mode == "exact":
        cond = events.c.plate == plate
    elif mode == "prefix":
        cond = prefix_range(events.c.plate, plate)
    else:
        ranks = dict(fuzzy_plates(conn, plate))
        if not ranks:
            return []
        cond = events.c.plate.in_(list(ranks))
    where = [cond] + ([events.c.time >= since] if since is not None else [])
    rows = conn.execute(
        sa.select(events.c.plate, sa.func.count().label("reads"),
                  sa.func.min(events.c.time).label("first"),
                  sa.func.max(events.c.time).label("last"))
        .where(*where).group_by(events.c.plate)
        .order_by(sa.func.max(events.c.time).desc()).limit(max(1, min(limit, MAX_LIMIT)))).all()
    out = [{"plate": r.plate, "reads": r.reads, "first_seen": r.first, "last_seen": r.last,
            "distance": ranks.get(r.plate, 0)} for r in rows]
    if ranks:
        out.sort(key=lambda d: (d["distance"], -d["last_seen"]))
    return out


def search_persons(conn: sa.Connection, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Identities starting with ``query`` (case-insensitive), with sightings."""
    person = query.strip().casefold()[:128]
    if not person:
        return []
    rows = conn.execute(
        sa.select(events.c.person, sa.func.count().label("sightings"),
                  sa.func.min(events.c.time).label("first"),
                  sa.func.max(events.c.time).label("last"))
        .where(prefix_range(events.c.person, person)).group_by(events.c.person)
        .order_by(sa.func.max(events.c.time).desc()).limit(max(1, min(limit, MAX_LIMIT)))).all()
    return [{"person": r.person, "sightings": r.sightings, "first_seen": r.first,
             "last_seen": r.last} for r in rows]


# ------------------------------------------------------------------------- counts
@dataclass
class CountFilter:
    since: float
    until: float
    node: str | None = None
    channel: str | None = None
    kind: Literal["line", "zone"] | None = None
    name: str | None = None
    by_label: bool = False

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        # buckets are hour starts: an hour overlapping [since, until) is included
        where = [counts.c.bucket > self.since - 3600, counts.c.bucket < self.until]
        for col, value in ((counts.c.node_id, self.node), (counts.c.channel_id, self.channel),
                           (counts.c.kind, self.kind), (counts.c.name, self.name)):
            if value:
                where.append(col == value)
        return where


def count_series(conn: sa.Connection, flt: CountFilter, bucket: Literal["hour", "day"] = "hour",
                 tz: str | None = None) -> list[dict[str, Any]]:
    """Counts per line/zone, direction (and label) per hour or per local day.

    Rows: ``{"time": bucket start (Unix s), "node", "channel_id", "kind", "name",
    "direction", ["label",] "n"}``, ordered by time. Days are calendar days in ``tz``
    (default UTC), summed in SQL from the hourly rows, one query per stretch of constant
    UTC offset (so days stay right across daylight-saving changes; exact for whole-hour
    offsets).
    """
    if flt.until <= flt.since:
        raise QueryError("until must be after since")
    if flt.until - flt.since > 3 * 366 * 86400:
        raise QueryError("at most three years at once")
    keys = [counts.c.node_id, counts.c.channel_id, counts.c.kind, counts.c.name,
            counts.c.direction] + ([counts.c.label] if flt.by_label else [])
    names = ["node", "channel_id", "kind", "name", "direction"] + (
        ["label"] if flt.by_label else [])
    total = sa.func.sum(counts.c.n).label("n")
    if bucket == "hour":
        rows = conn.execute(sa.select(counts.c.bucket, *keys, total)
                            .where(*flt.conditions()).group_by(counts.c.bucket, *keys)
                            .order_by(counts.c.bucket)).all()
        return [{"time": int(r.bucket), **dict(zip(names, r[1:-1], strict=True)), "n": int(r.n)}
                for r in rows]
    tzinfo = zone(tz)
    days: dict[tuple, int] = defaultdict(int)
    day_start: dict[int, int] = {}
    for seg_start, seg_end, offset in _offset_stretches(flt.since, flt.until, tzinfo):
        day = ((counts.c.bucket + offset) // 86400).label("day")
        rows = conn.execute(sa.select(day, *keys, total)
                            .where(*flt.conditions(), counts.c.bucket >= seg_start,
                                   counts.c.bucket < seg_end)
                            .group_by(day, *keys)).all()
        for r in rows:
            d = int(r.day)
            if d not in day_start:  # local midnight of that calendar day
                date = datetime.fromtimestamp(d * 86400, UTC).date()
                day_start[d] = int(datetime(date.year, date.month, date.day,
                                            tzinfo=tzinfo).timestamp())
            days[(day_start[d], *r[1:-1])] += int(r.n)
    return [{"time": k[0], **dict(zip(names, k[1:], strict=True)), "n": n}
            for k, n in sorted(days.items())]


def _offset_stretches(since: float, until: float, tzinfo: ZoneInfo
                      ) -> list[tuple[int, int, int]]:
    """``(start, end, utc offset s)`` hour-aligned stretches covering [since, until)."""
    def offset(t: int) -> int:
        return int(datetime.fromtimestamp(t, tzinfo).utcoffset().total_seconds())  # type: ignore[union-attr]

    first = int(since // 3600) * 3600 - 3600  # the hour overlapping since is included
    last = int(until // 3600) * 3600 + 3600
    out: list[tuple[int, int, int]] = []
    start, current = first, offset(first)
    t = first
    while t < last:
        step = min(86400, last - t)
        if offset(t + step) != current:  # a change inside this day: find its hour
            while step > 3600 and offset(t + 3600) == current:
                t += 3600
                step -= 3600
            t += 3600
            out.append((start, t, current))
            start, current = t, offset(t)
        else:
            t += step
    out.append((start, last, current))
    return out


def count_totals(conn: sa.Connection, flt: CountFilter) -> list[dict[str, Any]]:
    """Total per line/zone and direction over the filter's range (live counters)."""
    keys = [counts.c.node_id, counts.c.channel_id, counts.c.kind, counts.c.name,
            counts.c.direction]
    rows = conn.execute(sa.select(*keys, sa.func.sum(counts.c.n).label("n"))
                        .where(*flt.conditions()).group_by(*keys)
                        .order_by(*keys)).all()
    return [{"node": r.node_id, "channel_id": r.channel_id, "kind": r.kind, "name": r.name,
             "direction": r.direction, "n": int(r.n)} for r in rows]


def local_midnight(tz: str | None, now: float) -> float:
    local = datetime.fromtimestamp(now, zone(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
