"""The edge runtime: channels, one batched inference path per model, and the sinks.

Channels can be added, removed and reconfigured while the others keep running. Every
event goes to every sink; sinks queue and retry on their own threads, so a receiver that
is down slows nothing here.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from oko.core.errors import ConfigError
from oko.core.events import Event
from oko.engines import EngineConfig
from oko.models import load_detector
from oko.modules import Module, create_module
from oko.modules.detect import DetectModule, DetectOptions
from oko.sinks import Sink, SinkConfig, create_sink
from oko.video.batcher import BatchConfig, InferenceWorker
from oko.video.channel import Channel, ChannelConfig

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, engine: EngineConfig | None, batch: BatchConfig, sinks: list[SinkConfig],
                 node: str = "oko-edge") -> None:
        self.node = node
        self.engine = engine
        self.batch = batch
        self.sinks: list[Sink] = [create_sink(cfg, node=node) for cfg in sinks]
        self.channels: dict[str, Channel] = {}
        self._workers: dict[str, InferenceWorker] = {}
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self.started = time.time()

    # ------------------------------------------------------------------ events
    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink.send(event)
            except Exception:  # a broken sink must not lose the others' copy
                log.exception("sink %s failed to accept event %s", type(sink).__name__, event.id)

    # ------------------------------------------------------------------ channels
    def _build_module(self, config: ChannelConfig) -> Module:
        if config.module is None:
            detect = config.detect
            detector = load_detector(detect.model, self.engine, detect.conf_threshold,
                                     detect.iou_threshold)
            return DetectModule(DetectOptions(model=detect.model), detector=detector)
        options = dict(config.module.options)
        cls = Module.registry.get(config.module.name)
        if (self.engine is not None and cls is not None and "engine" in cls.options_class.model_fields
                and "engine" not in options):
            options["engine"] = self.engine.model_dump()
        return create_module(config.module.name, options)

    def _worker_for(self, config: ChannelConfig) -> InferenceWorker:
        key = config.worker_key()
        worker = self._workers.get(key)
        if worker is None:
            module = self._build_module(config)
            worker = InferenceWorker(module.model_name, module, self.batch)
            worker.start()
            self._workers[key] = worker
        return worker

    def add_channel(self, config: ChannelConfig) -> Channel:
        with self._lock:
            if config.id in self.channels:
                raise ConfigError(f"channel {config.id!r} already exists")
            worker = self._worker_for(config)
            labels = list(worker.module.labels)
            unknown = sorted(set(config.detect.classes or []) - set(labels))
            if unknown:
                raise ConfigError(f"channel {config.id}: classes {unknown} are not labels of "
                                  f"model {worker.name!r}")
            channel = Channel(config, worker, labels, self.emit)
            self.channels[config.id] = channel
        channel.start()
        log.info("channel %s started (%s)", config.id, config.source.uri)
        return channel

    def remove_channel(self, channel_id: str) -> None:
        with self._lock:
            channel = self.channels.pop(channel_id, None)
        if channel is None:
            raise ConfigError(f"no channel {channel_id!r}")
        channel.stop()
        log.info("channel %s removed", channel_id)

    def reconfigure(self, config: ChannelConfig) -> Channel:
        """Replace one channel's config; the other channels are not touched."""
        self.remove_channel(config.id)
        return self.add_channel(config)

    # ------------------------------------------------------------------ lifecycle
    def request_stop(self) -> None:
        """Make :meth:`wait` return (safe from a signal handler); then call :meth:`stop`."""
        self._stopped.set()

    def wait(self, timeout_s: float | None = None, poll_s: float = 0.2) -> bool:
        """Block until every channel has finished (files) or a stop was requested.

        Returns True when done, False when ``timeout_s`` passed first.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stopped.is_set():
            with self._lock:
                channels = list(self.channels.values())
            if channels and all(c.finished.is_set() for c in channels):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._stopped.wait(poll_s)
        return True

    def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Stop channels and inference, then flush and close every sink."""
        self._stopped.set()
        with self._lock:
            channels = list(self.channels.values())
            workers = list(self._workers.values())
        for channel in channels:
            channel.stop()
        for worker in workers:
            worker.stop()
        for sink in self.sinks:
            try:
                sink.close(flush_timeout_s)
            except Exception:
                log.exception("closing sink %s failed", type(sink).__name__)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            channels = [c.snapshot() for c in self.channels.values()]
            workers = [{"model": w.name, "channels": w.channel_count, "batches": w.batches,
                        "frames": w.frames, "errors": w.errors, "pending": w.pending(),
                        "mean_batch": round(w.frames / w.batches, 2) if w.batches else 0.0}
                       for w in self._workers.values()]
        sinks = [{"kind": s.kind} | s.stats() for s in self.sinks]
        return {"node": self.node, "uptime_s": round(time.time() - self.started, 1),
                "channels": channels, "inference": workers, "sinks": sinks}
