"""`oko run CONFIG.yml`: the edge node's main loop.

Starts the runtime and the control API, shows channel status while it runs, and on
SIGINT/SIGTERM (or when every file channel has finished) stops the channels, flushes the
sinks and exits cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from oko.api import ApiServer
from oko.config import PipelineConfig
from oko.video.runtime import Runtime

log = logging.getLogger(__name__)

STATUS_LOG_INTERVAL_S = 30.0  # without a terminal, channel status goes to the log


def status_table(snapshot: dict[str, Any]) -> Table:
    table = Table(title=f"oko node {snapshot['node']} — up {snapshot['uptime_s']:.0f} s")
    for col in ("channel", "state", "in fps", "out fps", "latency ms", "processed", "dropped",
                "reconnects", "events"):
        table.add_column(col, justify="left" if col in ("channel", "state") else "right")
    for ch in snapshot["channels"]:
        table.add_row(ch["id"], ch["state"], f"{ch['input_fps']:.1f}", f"{ch['processed_fps']:.1f}",
                      f"{ch['latency_ms']:.0f}", str(ch["frames_processed"]),
                      str(ch["frames_dropped"]), str(ch["reconnects"]), str(ch["events"]))
    return table


def run_pipeline(config: PipelineConfig, console: Console, api: bool = True) -> dict[str, Any]:
    """Run until every channel finishes or a signal arrives; return the final snapshot."""
    runtime = Runtime(config.engine, config.batch, config.sinks, node=config.node)
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.warning("received %s: stopping", signal.Signals(signum).name)
        stop_requested.set()
        runtime.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        if api and config.api.enabled:
            server = ApiServer(runtime, config.api)
            server.start()
            console.print(f"control API: http://{server.host}:{server.port} "
                          "(/health, /channels, /metrics)")
        for channel in config.channels:
            runtime.add_channel(channel)
        if console.is_terminal:
            with Live(status_table(runtime.snapshot()), console=console,
                      refresh_per_second=1) as live:
                while not runtime.wait(timeout_s=1.0):
                    live.update(status_table(runtime.snapshot()))
        else:
            while not runtime.wait(timeout_s=STATUS_LOG_INTERVAL_S):
                for ch in runtime.snapshot()["channels"]:
                    log.info("channel %s: %s, %.1f fps, %d processed, %d dropped", ch["id"],
                             ch["state"], ch["processed_fps"], ch["frames_processed"],
                             ch["frames_dropped"])
    finally:
        runtime.stop()
        if server is not None:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    snapshot = runtime.snapshot()
    console.print(status_table(snapshot))
    return snapshot
