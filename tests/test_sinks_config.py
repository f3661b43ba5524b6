"""Sink registry, configs (errors name the field), the JSONL sink and the common contract."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import pytest
from pydantic import TypeAdapter, ValidationError

from oko.core.errors import ConfigError, UnknownNameError
from oko.core.events import Event
from oko.sinks import (
    STATS_KEYS,
    BaseSinkConfig,
    JsonlSink,
    JsonlSinkConfig,
    MqttSinkConfig,
    Sink,
    SinkConfig,
    WebhookSinkConfig,
    create_sink,
    parse_sink_config,
    sink_names,
)
from oko.sinks.queue import DiskQueue, QueueConfig


def test_builtin_sinks_are_registered():
    assert {"jsonl", "webhook", "mqtt"} <= set(sink_names())


@pytest.mark.parametrize(("config", "needles"), [
    ({"kind": "webhook"}, ["url", "Field required"]),
    ({"kind": "webhook", "url": "ftp://host/x"}, ["url", "http"]),
    ({"kind": "webhook", "url": "http://h/", "batch_size": 0}, ["batch_size"]),
    ({"kind": "webhook", "url": "http://h/", "hedaers": {}}, ["hedaers", "Extra inputs"]),
    ({"kind": "webhook", "url": "http://h/", "queue": {"max_events": 0}}, ["queue.max_events"]),
    ({"kind": "webhook", "url": "http://h/", "queue": {"pth": "x"}}, ["queue.pth"]),
    ({"kind": "webhook", "url": "http://h/", "backoff_initial_s": 5, "backoff_max_s": 1},
     ["backoff_max_s", "backoff_initial_s"]),
    ({"kind": "mqtt"}, ["host"]),
    ({"kind": "mqtt", "host": "b", "qos": 2}, ["qos"]),
    ({"kind": "mqtt", "host": "b", "port": 70000}, ["port"]),
    ({"kind": "mqtt", "host": "b", "topic": "oko/{camera}"}, ["topic", "{channel_id}"]),
    ({"kind": "mqtt", "host": "b", "topic": "oko/+/{type}"}, ["topic"]),
    ({"kind": "mqtt", "host": "b", "password": "p"}, ["password", "username"]),
    ({"kind": "mqtt", "host": "b", "tls": {"ca": "x"}}, ["tls.ca"]),
    ({"kind": "jsonl"}, ["path"]),
    ({"kind": "jsonl", "path": "e.jsonl", "name": "bad name!"}, ["name"]),
])
def test_config_errors_name_the_field(config, needles):
    with pytest.raises(ConfigError) as info:
        parse_sink_config(config)
    message = str(info.value)
    assert message.startswith(f"{config['kind']} sink config: ")
    for needle in needles:
        assert needle in message, (needle, message)


def test_unknown_or_missing_kind():
    with pytest.raises(UnknownNameError, match="choose one of: jsonl, mqtt, server, webhook"):
        parse_sink_config({"kind": "kafka"})
    with pytest.raises(ConfigError, match="kind"):
        parse_sink_config({"url": "http://h/"})


def test_sink_config_union_picks_the_class_by_kind():
    parsed = TypeAdapter(list[SinkConfig]).validate_python([
        {"kind": "jsonl", "path": "events.jsonl"},
        {"kind": "webhook", "url": "https://central/api/events", "headers": {"X-Key": "hunter2"}},
        {"kind": "mqtt", "host": "broker", "name": "mqtt-central"},
    ])
    assert [type(c) for c in parsed] == [JsonlSinkConfig, WebhookSinkConfig, MqttSinkConfig]
    assert "hunter2" not in repr(parsed[1])  # header values are secrets
    with pytest.raises(ValidationError) as info:  # inside a bigger config: path to the field
        TypeAdapter(list[SinkConfig]).validate_python([{"kind": "mqtt", "host": "b", "prot": 1}])
    assert info.value.errors()[0]["loc"] == (0, "mqtt", "prot")


def test_jsonl_sink_appends_lines_and_keeps_its_old_constructor(tmp_path):
    path = tmp_path / "sub" / "events.jsonl"
    path.parent.mkdir()
    path.write_text('{"old": 1}\n')
    events = [Event("detections", "cam", i * 0.5, i, {"n": i}) for i in range(3)]
    with JsonlSink(path) as sink:
        for ev in events:
            sink.send(ev)
            assert path.read_text().count("\n") == 1 + sink.count  # flushed as written
        assert sink.flush(0)
        assert sink.stats() | {"last_error": None} == {
            "queued": 0, "in_flight": 0, "delivered": 3, "retries": 0, "dropped": 0,
            "rejected": 0, "last_error": None, "connected": None}
    lines = path.read_text().splitlines()
    assert lines[0] == '{"old": 1}'
    assert [Event.from_json(line) for line in lines[1:]] == events
    sink.close()  # idempotent


def test_jsonl_sink_from_config_and_errors(tmp_path, caplog):
    sink = create_sink({"kind": "jsonl", "path": str(tmp_path / "e.jsonl")})
    assert isinstance(sink, JsonlSink) and sink.name == "jsonl"
    sink.close()
    caplog.set_level(logging.ERROR)
    sink.send(Event("x", "cam", 0.0, 0))  # after close: counted, logged, no exception
    assert sink.stats()["dropped"] == 1 and "after close" in caplog.text
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ConfigError, match="cannot open events file"):
        JsonlSink(tmp_path / "dir.jsonl")


def test_every_sink_reports_the_same_stats_keys(tmp_path):
    sinks = [
        create_sink({"kind": "jsonl", "path": str(tmp_path / "e.jsonl")}),
        create_sink({"kind": "webhook", "url": "http://127.0.0.1:9/", "close_timeout_s": 0,
                     "queue": {"path": str(tmp_path / "w.sqlite3")}}),
        create_sink({"kind": "mqtt", "host": "127.0.0.1", "port": 9, "close_timeout_s": 0,
                     "queue": {"path": str(tmp_path / "m.sqlite3")}}),
    ]
    for sink in sinks:
        stats = sink.stats()
        sink.close()
        assert tuple(stats) == STATS_KEYS, type(sink).__name__
        json.dumps(stats)


def test_create_sink_fills_the_node_for_mqtt_topics(tmp_path):
    cfg = {"kind": "mqtt", "host": "127.0.0.1", "port": 9, "close_timeout_s": 0,
           "queue": {"path": str(tmp_path / "m.sqlite3")}}
    sink = create_sink(cfg, node="gate-1")
    assert sink.node == "gate-1" and sink.client_id == "oko-gate-1-mqtt"
    sink.close()
    sink = create_sink(cfg | {"node": "own"}, node="gate-1")  # an explicit node wins
    assert sink.node == "own"
    sink.close()


def test_two_sinks_on_one_queue_file_is_a_config_error(tmp_path):
    cfg = {"kind": "webhook", "url": "http://127.0.0.1:9/", "close_timeout_s": 0,
           "queue": {"path": str(tmp_path / "w.sqlite3")}}
    first = create_sink(cfg)
    try:
        with pytest.raises(ConfigError, match="give each sink its own name"):
            create_sink(cfg)
    finally:
        first.close()


def test_missing_tls_files_fail_at_start(tmp_path):
    with pytest.raises(ConfigError, match="tls"):
        create_sink({"kind": "mqtt", "host": "b", "tls": {"ca_file": str(tmp_path / "no.pem")},
                     "queue": {"path": str(tmp_path / "m.sqlite3")}})
    DiskQueue(tmp_path / "m.sqlite3").close()  # the failed sink released its queue


def test_default_queue_path_is_under_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    q = DiskQueue.from_config(QueueConfig(), "central")
    try:
        assert q.path == tmp_path / "state" / "oko" / "queues" / "central.sqlite3"
    finally:
        q.close()


def test_a_new_sink_plugs_in_by_kind():
    class MemoryConfig(BaseSinkConfig):
        kind: Literal["memory-test"] = "memory-test"

    class MemorySink(Sink):
        kind = "memory-test"
        config_class = MemoryConfig

        def __init__(self, config: MemoryConfig) -> None:
            super().__init__(config)
            self.events: list[Event] = []

        def send(self, event: Event) -> None:
            self.events.append(event)

        def flush(self, timeout_s: float | None = None) -> bool:
            return True

        def close(self, timeout_s: float | None = None) -> None:
            pass

        def stats(self) -> dict[str, Any]:
            return dict.fromkeys(STATS_KEYS, 0)

    try:
        sink = create_sink({"kind": "memory-test"})
        assert isinstance(sink, MemorySink) and "memory-test" in sink_names()
    finally:
        Sink.registry.pop("memory-test")


def test_an_event_that_is_not_json_is_dropped_not_raised(tmp_path):
    import numpy as np

    bad = Event("x", "cam", 0.0, 0, {"boxes": np.zeros((2, 4))})
    sinks = [JsonlSink(tmp_path / "e.jsonl"),
             create_sink({"kind": "webhook", "url": "http://127.0.0.1:9/", "close_timeout_s": 0,
                          "queue": {"path": str(tmp_path / "w.sqlite3")}})]
    for sink in sinks:
        sink.send(bad)
        stats = sink.stats()
        sink.close()
        assert stats["dropped"] == 1 and stats["queued"] == 0, type(sink).__name__
        assert "serializable" in stats["last_error"] or "serialisable" in stats["last_error"]
