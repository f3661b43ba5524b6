"""Central server load test: N simulated edge nodes post event batches for a while.

    .venv/bin/python benchmarks/bench_server.py                  # sqlite and postgres, 60 s each
    .venv/bin/python benchmarks/bench_server.py --db postgres --duration 20 --workers 3

Loopback only and bounded in time. For each database the server runs as a subprocess
(`oko server run`; several uvicorn workers on PostgreSQL, one on SQLite), PostgreSQL
itself in a temporary directory with its default durability (fsync on). Every simulated
node is a thread with its own HTTP connection that posts batches of mixed events (line
crossings, zone entries/exits, plate reads, face matches, detections) as fast as the
server answers; a small share of batches is posted twice, as an edge retries after a lost
answer. At the end the events table is read back and compared with what the server
acknowledged: *lost* = acknowledged but not stored, *duplicated* = stored more than once,
*unexpected* = stored but never sent. Reported: events stored per second, request
latency p50/p99 (one batch), retries.

The clients share the machine with the server; absolute numbers depend on the machine
and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the throw-away PostgreSQL and server helpers

from pg_server import PostgresServer, postgres_bin_dir  # noqa: E402
from server_helpers import ServerProcess  # noqa: E402


@dataclass
class NodeStats:
    acked: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    resent_batches: int = 0
    failures: int = 0
    duplicates_reported: int = 0


def make_batch(node: str, seq: int, size: int, rng: random.Random) -> tuple[list[str], bytes]:
    now = time.time()
    events = []
    ids = []
    for k in range(size):
        eid = uuid.uuid4().hex
        ids.append(eid)
        r = rng.random()
        channel = f"cam{rng.randrange(4)}"
        if r < 0.70:
            etype, data = "line_crossing", {
                "line": "door", "direction": "in" if rng.random() < 0.5 else "out",
                "track_id": seq * size + k, "class_id": 0, "label": "person",
                "point": [412.5, 300.1], "in": seq, "out": seq}
        elif r < 0.85:
            etype = "zone_enter" if rng.random() < 0.5 else "zone_exit"
            data = {"zone": "queue", "track_id": seq * size + k, "class_id": 2, "label": "car",
                    "entered_at": 12.5}
        elif r < 0.92:
            etype, data = "plate_read", {
                "text": f"AB{rng.randrange(1000):03d}C", "format": "eu",
                "track_id": seq * size + k}
        elif r < 0.97:
            etype, data = "face_recognized", {
                "person": f"person-{rng.randrange(50)}", "similarity": 0.71,
                "track_id": seq * size + k}
        else:
            etype, data = "detections", {"objects": [
                {"bbox": [10.0, 20.0, 110.0, 220.0], "score": 0.88, "label": "person",
                 "track_id": 3}] * 3}
        events.append({"id": eid, "type": etype, "channel_id": channel, "timestamp": k * 0.04,
                       "frame_index": seq * size + k, "wall_time": now, "data": data})
    return ids, json.dumps({"node": node, "events": events}, separators=(",", ":")).encode()


def node_loop(url: str, node: str, key: str, batch: int, timing: dict, resend: float,
              stats: NodeStats, start: threading.Event) -> None:
    """Post batches until the deadline; with ``timing["period"]`` one batch per period
    (open loop, a fixed offered rate), else as fast as the server answers."""
    rng = random.Random(node)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    seq = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        start.wait()
        deadline, period = timing["deadline"], timing["period"]
        next_at = time.monotonic() + (rng.random() * period if period else 0.0)
        while time.monotonic() < deadline:
            if period:
                time.sleep(max(0.0, min(next_at, deadline) - time.monotonic()))
                next_at += period
                if time.monotonic() >= deadline:
                    break
            ids, body = make_batch(node, seq, batch, rng)
            seq += 1
            stats.sent.update(ids)
            posts = 2 if rng.random() < resend else 1
            for attempt in range(posts):
                while True:  # retry until acknowledged, like the edge sink
                    t0 = time.perf_counter()
                    try:
                        r = client.post("/api/v1/ingest/events", content=body)
                        ok = r.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    stats.latencies.append(time.perf_counter() - t0)
                    stats.requests += 1
                    if ok:
                        stats.acked.update(ids)
                        stats.duplicates_reported += r.json()["duplicates"]
                        break
                    stats.failures += 1
                    time.sleep(0.1)
                if attempt:
                    stats.resent_batches += 1


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def run_one(db_kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    from oko.server import migrate
    from oko.server.auth import NodeKeys
    from oko.server.db import Database

    pg = None
    if db_kind == "postgres":
        pg = PostgresServer(durable=True).start()
        url = pg.create_database("oko_bench")
        workers = args.workers
    else:
        url = f"sqlite:///{workdir / 'bench.db'}"
        workers = 1
    db = Database(url)
    migrate.upgrade(db)
    keys = NodeKeys(db)
    nodes = {f"node-{i:02d}": keys.create(f"node-{i:02d}") for i in range(args.nodes)}
    server = ServerProcess(url, workdir / f"data-{db_kind}", workers=workers).start()
    try:
        stats = {n: NodeStats() for n in nodes}
        start = threading.Event()
        period = args.nodes * args.batch / args.rate if args.rate else 0.0
        timing = {"deadline": 0.0, "period": period}
        threads = [threading.Thread(target=node_loop, args=(
            server.url, n, k, args.batch, timing, args.resend, stats[n], start), daemon=True)
            for n, k in nodes.items()]
        for t in threads:
            t.start()
        time.sleep(0.5)  # every client connected and waiting
        t0 = time.perf_counter()
        timing["deadline"] = time.monotonic() + args.duration
        start.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        server.stop()
    import sqlalchemy as sa

    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT node_id, event_id FROM events")).all()
    db.dispose()
    if pg is not None:
        pg.stop()
    stored: dict[str, list[str]] = {}
    for node_id, event_id in rows:
        stored.setdefault(node_id, []).append(event_id)
    lost = duplicated = unexpected = 0
    for n, s in stats.items():
        ids = stored.get(n, [])
        unique = set(ids)
        duplicated += len(ids) - len(unique)
        lost += len(s.acked - unique)
        unexpected += len(unique - s.sent)
    latencies = [x for s in stats.values() for x in s.latencies]
    acked = sum(len(s.acked) for s in stats.values())
    return {
        "db": db_kind, "workers": workers, "nodes": args.nodes, "batch": args.batch,
        "offered_events_per_s": args.rate or "max",
        "duration_s": round(elapsed, 1), "events_acked": acked, "rows_stored": len(rows),
        "events_per_s": round(len(rows) / elapsed),
        "requests": sum(s.requests for s in stats.values()),
        "batches_posted_twice": sum(s.resent_batches for s in stats.values()),
        "duplicates_reported_by_server": sum(s.duplicates_reported for s in stats.values()),
        "failed_requests": sum(s.failures for s in stats.values()),
        "latency_ms_p50": round(percentile(latencies, 50) * 1000, 1),
        "latency_ms_p99": round(percentile(latencies, 99) * 1000, 1),
        "latency_ms_mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "lost": lost, "duplicated": duplicated, "unexpected": unexpected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of load per db.")
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200, help="Events per request.")
    parser.add_argument("--workers", type=int, default=3, help="uvicorn workers (postgres).")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="Offered events/s over all nodes (open loop); 0: as fast as the "
                             "server takes them.")
    parser.add_argument("--resend", type=float, default=0.02,
                        help="Share of batches posted twice (retries after a lost answer).")
    parser.add_argument("--json", action="store_true", help="Print JSON only.")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in kinds and postgres_bin_dir() is None:
        print("PostgreSQL is not installed; skipping it", file=sys.stderr)
        kinds.remove("postgres")
    results = []
    with tempfile.TemporaryDirectory(prefix="oko-bench-server-") as tmp:
        for kind in kinds:
            print(f"{kind}: {args.nodes} nodes x batches of {args.batch} for {args.duration:g} s "
                  "...", file=sys.stderr)
            results.append(run_one(kind, args, Path(tmp)))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    offered = f"{args.rate:,.0f} events/s offered" if args.rate else "as fast as possible"
    table = Table(title=f"oko server load test ({args.nodes} nodes, batches of {args.batch}, "
                        f"{offered}, loopback, clients on the same machine)")
    for col in ("db", "workers", "s", "events/s stored", "p50 ms", "p99 ms", "requests",
                "posted twice", "lost", "duplicated", "unexpected"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r["db"], str(r["workers"]), str(r["duration_s"]), f"{r['events_per_s']:,}",
                      str(r["latency_ms_p50"]), str(r["latency_ms_p99"]), str(r["requests"]),
                      str(r["batches_posted_twice"]), str(r["lost"]), str(r["duplicated"]),
                      str(r["unexpected"]))
    Console(width=150).print(table)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
