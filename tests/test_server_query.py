"""Central server queries: filters, paging, plate and person search, counts, CSV export.

Every test runs on SQLite and on a real PostgreSQL (see server_helpers.py).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from server_helpers import crossing, db_url, event, pg_server, server  # noqa: F401

T0 = datetime(2024, 3, 10, 22, 0, tzinfo=UTC).timestamp()  # a Sunday, 22:00 UTC
HOUR = 3600.0


@pytest.fixture
def loaded(server):
    """Events across two nodes, channels, hours and days, with plates and faces."""
    other = server.state.keys.create("gate-2")
    a = []
    for i in range(30):  # line crossings over 5 hours, 6 per hour, node gate-1
        a.append(crossing(i, direction="in" if i % 3 else "out",
                          label="person" if i % 2 else "car", wall_time=T0 + i * 600 + 1))
    a += [event(100, "zone_enter", channel="cam2", zone="queue", label="person", track_id=1,
                wall_time=T0 + 10),
          event(101, "zone_exit", channel="cam2", zone="queue", label="person", track_id=1,
                wall_time=T0 + 4000),
          event(102, "plate_read", channel="lane", text="AB123C", track_id=2, wall_time=T0 + 20),
          event(103, "plate_read", channel="lane", text="AB128C", track_id=3, wall_time=T0 + 30),
          event(104, "plate_read", channel="lane", text="A8I23C", track_id=4, wall_time=T0 + 40),
          event(105, "plate_read", channel="lane", text="XY999Z", track_id=5, wall_time=T0 + 50),
          event(106, "plate_read", channel="lane", text="ab 123 c", track_id=6,
                wall_time=T0 + 7200),
          event(107, "plate_read", channel="lane", text="В777ОР77", text_latin="B777OP77",
                track_id=7, wall_time=T0 + 60),
          event(108, "face_recognized", channel="door", person="Alice Smith", similarity=0.8,
                track_id=8, wall_time=T0 + 70),
          event(109, "face_recognized", channel="door", person="alice smith", similarity=0.7,
                track_id=9, wall_time=T0 + 80),
          event(110, "face_recognized", channel="door", person="Bob", similarity=0.9,
                track_id=10, wall_time=T0 + 90),
          event(111, "face_unknown", channel="door", track_id=11, wall_time=T0 + 95)]
    assert server.ingest(a).json()["accepted"] == len(a)
    b = [crossing(200 + i, direction="in", wall_time=T0 + 86400 + i) for i in range(5)]
    assert server.ingest(b, key=other).json()["accepted"] == 5
    return server


def ids(events) -> list[int]:
    return sorted(int(e["id"], 16) for e in events)


def test_filters_by_time_node_channel_type_label_and_name(loaded):
    get = loaded.get
    assert len(get("/api/v1/events", limit=1000)["events"]) == 47
    window = get("/api/v1/events", since=T0 + 600, until=T0 + 1800, limit=1000)["events"]
    assert ids(window) == [1, 2]  # [since, until): 22:10:01 and 22:20:01
    iso = get("/api/v1/events", since="2024-03-10T22:10:00Z", until="2024-03-10T22:30:00",
              limit=1000)["events"]
    assert ids(iso) == [1, 2]
    local = get("/api/v1/events", since="2024-03-10T23:10:00", until="2024-03-10T23:30:00",
                tz="Europe/Berlin", limit=1000)["events"]  # UTC+1 in March
    assert ids(local) == [1, 2]
    assert ids(get("/api/v1/events", node="gate-2")["events"]) == list(range(200, 205))
    assert ids(get("/api/v1/events", channel="cam2")["events"]) == [100, 101]
    assert ids(get("/api/v1/events", type="zone_enter,zone_exit")["events"]) == [100, 101]
    cars = get("/api/v1/events", label="car", node="gate-1", limit=1000)["events"]
    assert ids(cars) == list(range(0, 30, 2))
    assert ids(get("/api/v1/events", name="queue")["events"]) == [100, 101]
    assert get("/api/v1/events", node="nobody")["events"] == []


def test_pages_cover_everything_once_newest_first(loaded):
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 7} | ({"before": cursor} if cursor else {})
        page = loaded.get("/api/v1/events", **params)
        seen += page["events"]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == 47 and len({e["id"] + e["node"] for e in seen}) == 47
    times = [e["time"] for e in seen]
    assert times == sorted(times, reverse=True)


def test_plate_search_exact_prefix_and_fuzzy(loaded):
    get = loaded.get

    def plates(q, mode):
        return [p["plate"] for p in get("/api/v1/plates", q=q, mode=mode)["plates"]]

    assert ids(get("/api/v1/events", plate="ab-123-c", plate_mode="exact")["events"]) == [102, 106]
    assert ids(get("/api/v1/events", plate="AB12", plate_mode="prefix")["events"]) == [102, 103,
                                                                                         106]
    assert plates("AB12", "prefix") == ["AB123C", "AB128C"]  # newest first
    fuzzy = get("/api/v1/plates", q="AB123C", mode="fuzzy")["plates"]
    # exact, then look-alike (8/B, I/1), then one edit (3 -> 8)
    assert [(p["plate"], p["distance"]) for p in fuzzy] == [("AB123C", 0), ("A8I23C", 1),
                                                             ("AB128C", 2)]
    assert fuzzy[0]["reads"] == 2
    assert plates("AB1234C", "fuzzy") == ["AB123C", "A8I23C"]  # one character too many
    assert plates("BA123C", "fuzzy") == ["AB123C", "A8I23C"]  # neighbours swapped
    assert plates("B777OP77", "fuzzy") == ["B777OP77"]
    assert plates("В777ОР77", "exact") == []  # Cyrillic query: exact needs the Latin text
    assert plates("В777ОР77", "fuzzy") == ["B777OP77"]  # ... fuzzy folds the alphabets
    assert ids(get("/api/v1/events", plate="AB123C", plate_mode="fuzzy")["events"]) == [
        102, 103, 104, 106]
    assert plates("QQ", "fuzzy") == [] and plates("---", "prefix") == []


def test_person_search_is_case_insensitive(loaded):
    get = loaded.get
    assert ids(get("/api/v1/events", person="ALICE SMITH")["events"]) == [108, 109]
    assert ids(get("/api/v1/events", person="ali", person_mode="prefix")["events"]) == [108, 109]
    found = get("/api/v1/persons", q="a")["persons"]
    assert [(p["person"], p["sightings"]) for p in found] == [("alice smith", 2)]
    assert [p["person"] for p in get("/api/v1/persons", q="Bo")["persons"]] == ["bob"]
    assert get("/api/v1/persons", q="zed")["persons"] == []


def test_counts_per_hour_and_per_local_day(loaded):
    get = loaded.get
    hours = get("/api/v1/counts", since=T0, until=T0 + 5 * HOUR, kind="line")["counts"]
    per_hour: dict[float, int] = {}
    for row in hours:
        assert row["node"] == "gate-1" and row["name"] == "door"
        per_hour[row["time"]] = per_hour.get(row["time"], 0) + row["n"]
    assert per_hour == {T0 + h * HOUR: 6 for h in range(5)}
    ins = sum(r["n"] for r in hours if r["direction"] == "in")
    assert ins == 20
    by_label = get("/api/v1/counts", since=T0, until=T0 + HOUR, by_label="true",
                   kind="line")["counts"]
    assert {(r["label"], r["direction"]): r["n"] for r in by_label} == {
        ("car", "in"): 2, ("car", "out"): 1, ("person", "in"): 2, ("person", "out"): 1}
    # 22:00 UTC on 10 March is 23:00 in Berlin (still the 10th) but 07:00 on the 11th in
    # Tokyo: the same events fall on different local days
    for tz, first_day in (("UTC", "2024-03-10"), ("Europe/Berlin", "2024-03-10"),
                          ("Asia/Tokyo", "2024-03-11")):
        days = get("/api/v1/counts", since=T0 - 86400, until=T0 + 3 * 86400, bucket="day",
                   tz=tz, kind="line")["counts"]
        totals: dict[str, int] = {}
        for row in days:
            day = datetime.fromtimestamp(row["time"], __import__("zoneinfo").ZoneInfo(tz))
            assert (day.hour, day.minute) == (0, 0)
            totals[day.date().isoformat()] = totals.get(day.date().isoformat(), 0) + row["n"]
        assert sum(totals.values()) == 35
        assert min(totals) == first_day, (tz, totals)
    berlin = get("/api/v1/counts", since=T0 - 86400, until=T0 + 3 * 86400, bucket="day",
                 tz="Europe/Berlin", kind="line", node="gate-1")["counts"]
    days_seen = {datetime.fromtimestamp(r["time"], UTC).isoformat() for r in berlin}
    assert days_seen == {"2024-03-09T23:00:00+00:00", "2024-03-10T23:00:00+00:00"}
    assert sum(r["n"] for r in berlin) == 30
    zones = get("/api/v1/counts/totals", since=T0 - HOUR, until=T0 + 5 * HOUR, kind="zone")
    assert {(t["name"], t["direction"]): t["n"] for t in zones["totals"]} == {
        ("queue", "enter"): 1, ("queue", "exit"): 1}


def test_csv_export_matches_the_query_and_defuses_formulas(loaded):
    loaded.ingest([event(300, "plate_read", channel="lane", text="=HYPERLINK(1)", track_id=1,
                         label="=cmd|' /C calc'!A0", wall_time=T0 + 100)])
    r = loaded.client.get("/api/v1/events.csv", params={"type": "plate_read"},
                          headers=loaded.viewer)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 7
    assert {row["type"] for row in rows} == {"plate_read"}
    evil = next(row for row in rows if row["event_id"] == f"{300:032x}")
    assert evil["label"] == "'=cmd|' /C calc'!A0"
    assert evil["plate"] == "HYPERLINK1"
    assert not any(v.startswith(("=", "+", "@")) for row in rows for v in row.values())
    first = next(row for row in rows if row["event_id"] == f"{102:032x}")
    assert first["time_utc"] == "2024-03-10T22:00:20.000+00:00" and first["node"] == "gate-1"
    everything = loaded.client.get("/api/v1/events.csv", headers=loaded.viewer).text
    assert len(list(csv.DictReader(io.StringIO(everything)))) == 48
    limited = loaded.client.get("/api/v1/events.csv", params={"limit": 3},
                                headers=loaded.viewer).text
    assert len(list(csv.DictReader(io.StringIO(limited)))) == 3


def test_openapi_docs_list_the_api_for_signed_in_users(loaded):
    schema = loaded.get("/openapi.json")
    paths = set(schema["paths"])
    assert {"/api/v1/ingest/events", "/api/v1/events", "/api/v1/events.csv", "/api/v1/counts",
            "/api/v1/plates", "/api/v1/persons", "/api/v1/nodes"} <= paths
    body = schema["paths"]["/api/v1/ingest/events"]["post"]["requestBody"]
    assert "events" in str(body)
    page = loaded.client.get("/docs", headers=loaded.viewer)
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_days_follow_daylight_saving_changes(server):
    # Berlin switches to summer time on 2024-03-31 at 01:00 UTC: that day has 23 hours
    utc = [datetime(2024, 3, 30, 22, 30, tzinfo=UTC),   # 23:30 on the 30th, local
           datetime(2024, 3, 30, 23, 30, tzinfo=UTC),   # 00:30 on the 31st (CET)
           datetime(2024, 3, 31, 21, 30, tzinfo=UTC),   # 23:30 on the 31st (CEST)
           datetime(2024, 3, 31, 22, 30, tzinfo=UTC)]   # 00:30 on 1 April
    server.ingest([crossing(i, wall_time=t.timestamp()) for i, t in enumerate(utc)])
    rows = server.get("/api/v1/counts", since="2024-03-29", until="2024-04-03", bucket="day",
                      tz="Europe/Berlin")["counts"]
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    per_day = {datetime.fromtimestamp(r["time"], berlin).isoformat(): r["n"] for r in rows}
    assert per_day == {"2024-03-30T00:00:00+01:00": 1, "2024-03-31T00:00:00+01:00": 2,
                       "2024-04-01T00:00:00+02:00": 1}
    utc_days = server.get("/api/v1/counts", since="2024-03-29", until="2024-04-03",
                          bucket="day")["counts"]
    assert [(datetime.fromtimestamp(r["time"], UTC).day, r["n"]) for r in utc_days] == [
        (30, 2), (31, 2)]
