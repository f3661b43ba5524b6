"""Control API of an edge node (FastAPI): channels at runtime, health, metrics, preview.

Loopback by default: the node is managed by its operator or the central server, not by
the cameras' network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel, ConfigDict, Field

from oko.core.errors import OkoError
from oko.video.channel import ChannelConfig
from oko.video.runtime import Runtime

log = logging.getLogger(__name__)


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(True, description="Serve the control API.")
    host: str = Field("127.0.0.1", description="Bind address (loopback by default).")
    port: int = Field(8686, ge=0, le=65535, description="TCP port (0: any free port).")


class RuntimeCollector:
    """Prometheus metrics read from the runtime at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        snap = self.runtime.snapshot()
        gauges = {
            "input_fps": GaugeMetricFamily("oko_channel_input_fps", "Decoded frames per second",
                                           labels=["channel"]),
            "processed_fps": GaugeMetricFamily("oko_channel_processed_fps",
                                               "Processed frames per second", labels=["channel"]),
            "latency_ms": GaugeMetricFamily("oko_channel_latency_ms",
                                            "Decode-to-result latency (EWMA)", labels=["channel"]),
        }
        counters = {
            "frames_processed": CounterMetricFamily("oko_channel_frames_processed",
                                                    "Frames processed", labels=["channel"]),
            "frames_dropped": CounterMetricFamily("oko_channel_frames_dropped",
                                                  "Frames dropped under backpressure",
                                                  labels=["channel"]),
            "reconnects": CounterMetricFamily("oko_channel_reconnects", "Source reconnects",
                                              labels=["channel"]),
            "events": CounterMetricFamily("oko_channel_events", "Events emitted",
                                          labels=["channel"]),
            "errors": CounterMetricFamily("oko_channel_errors", "Frame handling errors",
                                          labels=["channel"]),
        }
        up = GaugeMetricFamily("oko_channel_up", "1 when the channel is running",
                               labels=["channel", "state"])
        for ch in snap["channels"]:
            for key, metric in (gauges | counters).items():
                metric.add_metric([ch["id"]], float(ch.get(key, 0)))
            up.add_metric([ch["id"], ch["state"]], 1.0 if ch["state"] == "running" else 0.0)
        yield from gauges.values()
        yield from counters.values()
        yield up
        queued = GaugeMetricFamily("oko_sink_queued", "Events waiting in a sink's queue",
                                   labels=["sink"])
        for i, sink in enumerate(snap["sinks"]):
            queued.add_metric([f"{i}:{sink['kind']}"], float(sink.get("queued", 0)))
        yield queued


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="oko edge node", version="0.1")
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(runtime))

    def channel_or_404(channel_id: str):
        channel = runtime.channels.get(channel_id)
        if channel is None:
            raise HTTPException(404, f"no channel {channel_id!r}")
        return channel

    @app.get("/health")
    def health() -> dict[str, Any]:
        states = {cid: ch.state for cid, ch in runtime.channels.items()}
        return {"status": "ok", "node": runtime.node, "channels": states}

    @app.get("/channels")
    def list_channels() -> list[dict[str, Any]]:
        return runtime.snapshot()["channels"]

    @app.get("/channels/{channel_id}")
    def get_channel(channel_id: str) -> dict[str, Any]:
        return channel_or_404(channel_id).snapshot()

    @app.post("/channels", status_code=201)
    def add_channel(config: ChannelConfig) -> dict[str, Any]:
        try:
            return runtime.add_channel(config).snapshot()
        except OkoError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.put("/channels/{channel_id}")
    def reconfigure_channel(channel_id: str, config: ChannelConfig) -> dict[str, Any]:
        if config.id != channel_id:
            raise HTTPException(400, f"body id {config.id!r} does not match {channel_id!r}")
        channel_or_404(channel_id)
        try:
            return runtime.reconfigure(config).snapshot()
        except OkoError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.delete("/channels/{channel_id}", status_code=204)
    def remove_channel(channel_id: str) -> Response:
        channel_or_404(channel_id)
        runtime.remove_channel(channel_id)
        return Response(status_code=204)

    @app.get("/status")
    def status() -> dict[str, Any]:
        return runtime.snapshot()

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.get("/channels/{channel_id}/preview.jpg")
    def preview_jpg(channel_id: str) -> Response:
        jpeg = channel_or_404(channel_id).preview_jpeg()
        if jpeg is None:
            raise HTTPException(404, "no frame processed yet")
        return Response(jpeg, media_type="image/jpeg")

    @app.get("/channels/{channel_id}/preview.mjpeg")
    async def preview_mjpeg(channel_id: str, fps: float = 5.0) -> StreamingResponse:
        channel = channel_or_404(channel_id)
        period = 1.0 / max(min(fps, 30.0), 0.2)

        async def frames():
            while channel_id in runtime.channels:
                jpeg = await asyncio.to_thread(channel.preview_jpeg)
                if jpeg is not None:
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                           + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                await asyncio.sleep(period)

        return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame")

    return app


class ApiServer:
    """uvicorn on a background thread; ``port`` is known once started (0 picks one)."""

    def __init__(self, runtime: Runtime, config: ApiConfig) -> None:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(
            create_app(runtime), host=config.host, port=config.port, log_level="warning",
            lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="oko-api", daemon=True)
        self.host = config.host
        self.port = config.port

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OkoError(f"control API could not listen on {self.host}:{self.port}",
                               "is the port in use? set api.port in the config")
            time.sleep(0.05)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("control API on http://%s:%d", self.host, self.port)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5.0)
