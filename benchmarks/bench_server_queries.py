"""Central server query speed on a large events table (are the indices doing their job?).

    .venv/bin/python benchmarks/bench_server_queries.py --rows 5000000 --db postgres
    .venv/bin/python benchmarks/bench_server_queries.py --rows 2000000 --db sqlite

Fills a fresh database with N synthetic events spread over 30 days, 50 nodes x 4
channels (line crossings, zone events, plate reads with 100,000 distinct plates, face
matches with 2,000 people), generated inside the database (generate_series / a recursive
CTE), then times the queries the API and dashboard run, through the same code
(``oko.server.query``), each the median of 5 runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pg_server import PostgresServer  # noqa: E402

DAYS = 30
T_END = 1_767_225_600.0  # 2026-01-01 UTC


def fill(db, rows: int) -> float:
    """Insert ``rows`` synthetic events (and their hourly counts and plates); seconds."""
    from oko.server import plates as plate_text

    span = DAYS * 86400
    t0 = time.perf_counter()
    if db.is_sqlite:
        gen = ("WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < :n - 1) "
               "SELECT i FROM g")
        mod = "%"
        cast_text = "CAST({} AS TEXT)"
        pad = "printf('%06d', {})"
    else:
        gen = "SELECT generate_series(CAST(0 AS BIGINT), :n - 1) AS i"
        mod = "%"
        cast_text = "({})::text"
        pad = "lpad(({})::text, 6, '0')"
    node = "'node-' || " + cast_text.format(f"(i {mod} 50)")
    channel = "'cam' || " + cast_text.format(f"((i / 50) {mod} 4)")
    kind = f"(i {mod} 20)"
    sql = f"""
    INSERT INTO events (node_id, event_id, type, channel_id, time, stream_ts, frame_index,
                        received, label, track_id, name, direction, plate, person, data)
    SELECT {node}, 'e' || {cast_text.format('i')},
      CASE WHEN {kind} < 14 THEN 'line_crossing' WHEN {kind} < 17 THEN 'zone_enter'
           WHEN {kind} < 19 THEN 'plate_read' ELSE 'face_recognized' END,
      {channel}, {T_END} - {span} + (i * 1.0 / :n) * {span}, 0.0, i,
      {T_END} - {span} + (i * 1.0 / :n) * {span},
      CASE WHEN {kind} < 17 THEN (CASE WHEN i {mod} 3 = 0 THEN 'car' ELSE 'person' END) END,
      i,
      CASE WHEN {kind} < 14 THEN 'door' WHEN {kind} < 17 THEN 'queue' END,
      CASE WHEN {kind} < 14 THEN (CASE WHEN i {mod} 2 = 0 THEN 'in' ELSE 'out' END)
           WHEN {kind} < 17 THEN 'enter' END,
      CASE WHEN {kind} >= 17 AND {kind} < 19 THEN 'P' || {pad.format(f'(i * 7919) {mod} 100000')} END,
      CASE WHEN {kind} = 19 THEN 'person ' || {cast_text.format(f'(i * 31) {mod} 2000')} END,
      '{{}}'
    FROM ({gen}) AS g
    """
    with db.write() as conn:
        conn.execute(sa.text(sql), {"n": rows})
        conn.execute(sa.text(f"""
            INSERT INTO counts (bucket, node_id, channel_id, kind, name, direction, label, n)
            SELECT CAST(time / 3600 AS INTEGER) * 3600, node_id, channel_id,
                   CASE WHEN type = 'line_crossing' THEN 'line' ELSE 'zone' END, name, direction,
                   label, COUNT(*)
            FROM events WHERE name IS NOT NULL
            GROUP BY CAST(time / 3600 AS INTEGER) * 3600, node_id, channel_id, type, name,
                     direction, label"""))
        found = conn.execute(sa.text("SELECT DISTINCT plate FROM events WHERE plate IS NOT NULL")
                             ).scalars().all()
    with db.write() as conn:
        conn.execute(sa.text("INSERT INTO plates (plate, first_seen) VALUES (:p, 0)"),
                     [{"p": p} for p in found])
        conn.execute(sa.text("INSERT INTO plate_keys (key, plate) VALUES (:k, :p)"),
                     [{"k": k, "p": p} for p in found for k in plate_text.deletion_keys(p)])
        if not db.is_sqlite:
            conn.execute(sa.text("ANALYZE"))
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
    return time.perf_counter() - t0


def timed(fn, repeat: int = 5) -> tuple[float, int]:
    fn()
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()

    from oko.server import migrate
    from oko.server import query as q
    from oko.server.db import Database

    pg = None
    with tempfile.TemporaryDirectory(prefix="oko-bench-q-") as tmp:
        if args.db == "postgres":
            pg = PostgresServer().start()
            url = pg.create_database("q")
        else:
            url = f"sqlite:///{Path(tmp) / 'q.db'}"
        db = Database(url)
        migrate.upgrade(db)
        print(f"filling {args.rows:,} events ...", file=sys.stderr)
        print(f"filled in {fill(db, args.rows):.0f} s", file=sys.stderr)
        day = T_END - 86400 * 3
        with db.engine.connect() as conn:  # values that exist, from the middle of the range
            plate = conn.execute(sa.text("SELECT plate FROM plates ORDER BY plate LIMIT 1 "
                                         "OFFSET 500")).scalar_one()
            person = conn.execute(sa.text("SELECT person FROM events WHERE person IS NOT NULL "
                                          "AND seq > :s LIMIT 1"), {"s": args.rows // 2}
                                  ).scalar_one()
        typo = plate[:-1] + ("0" if plate[-1] != "0" else "1")  # one wrong last digit
        cases = {
            "newest 100 (feed)": lambda c: q.find_events(c, q.EventFilter(), 100),
            "page 50 of the feed": None,
            "one hour, all nodes": lambda c: q.find_events(c, q.EventFilter(
                since=day, until=day + 3600), 1000),
            "node + channel, one day": lambda c: q.find_events(c, q.EventFilter(
                node="node-7", channel="cam2", since=day, until=day + 86400), 100),
            "type plate_read, newest": lambda c: q.find_events(c, q.EventFilter(
                types=["plate_read"]), 100),
            "label car, one day": lambda c: q.find_events(c, q.EventFilter(
                label="car", since=day, until=day + 86400), 100),
            "plate exact": lambda c: q.find_events(c, q.EventFilter(
                plate=plate, plate_mode="exact"), 100),
            "plate prefix (4 chars)": lambda c: q.find_events(c, q.EventFilter(
                plate=plate[:4], plate_mode="prefix"), 100),
            "plate fuzzy, one wrong digit": lambda c: q.find_events(c, q.EventFilter(
                plate=typo, plate_mode="fuzzy"), 100),
            "plate search fuzzy (summary)": lambda c: (q.search_plates(c, typo, "fuzzy"), None),
            "person exact": lambda c: q.find_events(c, q.EventFilter(person=person), 100),
            "person prefix": lambda c: q.find_events(c, q.EventFilter(
                person=person[:8], person_mode="prefix"), 100),
            "counts per hour, 7 days": lambda c: (q.count_series(c, q.CountFilter(
                since=T_END - 7 * 86400, until=T_END)), None),
            "counts per day, 30 days, tz": lambda c: (q.count_series(c, q.CountFilter(
                since=T_END - 30 * 86400, until=T_END), "day", "Europe/Berlin"), None),
        }
        results = []
        with db.engine.connect() as conn:
            for name, fn in cases.items():
                if fn is None:  # keyset paging: follow 49 cursors, time the 50th page
                    cursor = None
                    for _ in range(49):
                        _, cursor = q.find_events(conn, q.EventFilter(), 100, cursor)

                    def fn(c, cursor=cursor):
                        return q.find_events(c, q.EventFilter(), 100, cursor)
                ms, _ = timed(lambda fn=fn: len(fn(conn)[0]))
                n = len(fn(conn)[0])
                results.append((name, ms, n))
        db.dispose()
        if pg is not None:
            pg.stop()
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"oko server queries on {args.rows:,} events ({args.db})")
    for col in ("query", "ms (median of 5)", "rows"):
        table.add_column(col, justify="right" if col != "query" else "left")
    for name, ms, n in results:
        table.add_row(name, f"{ms:.1f}", str(n))
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
