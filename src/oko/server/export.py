"""CSV export of events, streamed row by row.

Cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or
carriage return) are prefixed with ``'`` (CSV injection); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from oko.server.query import snapshot_url

HEADER = ["time_utc", "time", "node", "channel_id", "type", "label", "track_id", "name",
          "direction", "plate", "person", "event_id", "snapshot", "data"]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def csv_row(row: Any) -> list[Any]:
    when = datetime.fromtimestamp(row.time, UTC).isoformat(timespec="milliseconds")
    cells = [when, row.time, row.node_id, row.channel_id, row.type, row.label, row.track_id,
             row.name, row.direction, row.plate, row.person, row.event_id,
             snapshot_url(row.node_id, row.event_id) if row.snapshot else "", row.data]
    return [safe_cell("" if c is None else c) for c in cells]


def csv_chunks(rows: Iterable[Any], rows_per_chunk: int = 500) -> Iterator[bytes]:
    """The CSV text (header first) in chunks of encoded bytes."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    n = 0
    for row in rows:
        writer.writerow(csv_row(row))
        n += 1
        if n % rows_per_chunk == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")
