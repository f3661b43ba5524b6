"""Real streaming servers for the live-source tests, run as subprocesses on loopback ports.

- :class:`RtspServer`: rtsp-server-perl. Publishers ANNOUNCE/RECORD on its source port,
  clients DESCRIBE/SETUP/PLAY on its client port. It sends media to clients over UDP
  only: a SETUP asking for TCP interleaving gets "400 Bad Request".
- :class:`FfmpegPublisher`: ffmpeg publishing a video file in a loop, at its frame rate,
  without re-encoding (the sample has a key frame every 2 s).
- :class:`FfmpegHttpServer`: ffmpeg serving the video as MPEG-TS over HTTP (one client).
- :class:`RtspTcpProxy`: a small RTSP front (this file run as a script) that serves a
  client over TCP interleaved by taking the stream from the RTSP server over UDP, so the
  TCP transport is tested against the same real server. Its connection to the server
  closes when the server dies, and it then closes the client's connection.

Every process runs in its own process group (killed as a group) and is killed at exit
if a test forgot to. ``kill()`` is SIGKILL (a crash), ``pause()``/``resume()`` are
SIGSTOP/SIGCONT (a hung camera), ``restart()`` starts again on the same ports.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

RTSP_SERVER_BIN = "rtsp-server-perl"
FFMPEG_BIN = "ffmpeg"
HOST = "127.0.0.1"
_LIVE: set[ManagedProcess] = set()


def missing_binaries() -> list[str]:
    """The server programs these helpers need that are not on PATH."""
    return [name for name in (RTSP_SERVER_BIN, FFMPEG_BIN) if shutil.which(name) is None]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def free_udp_block(size: int = 32) -> int:
    """The first (even) port of ``size`` consecutive free UDP ports."""
    for _ in range(200):
        start = random.randrange(20000, 60000 - size) & ~1
        socks = []
        try:
            for port in range(start, start + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((HOST, port))
            return start
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free UDP ports")


def wait_tcp(port: int, timeout_s: float, proc: ManagedProcess | None = None) -> None:
    """Wait until something accepts TCP connections on ``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive:
            raise RuntimeError(f"{proc.name} exited before listening on {port}:\n{proc.log_tail()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout_s} s")


def rtsp_describe(url: str, timeout_s: float = 2.0) -> int:
    """RTSP status of DESCRIBE ``url`` (200 once a stream is published there)."""
    hostport = url.split("/")[2]
    host, port = hostport.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
                     .encode())
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    parts = reply.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


class ManagedProcess:
    """A subprocess in its own process group, with its output in a log file."""

    name = "process"

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="oko-srv-"))
        self.log_path = self.workdir / f"{self.name}-{id(self):x}.log"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the process serves; raise with its log if it does not."""

    def start(self, timeout_s: float = 15.0) -> ManagedProcess:
        if self.alive:
            return self
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(self)
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.kill()
            raise
        log.info("%s ready (pid %d)", self.name, self.proc.pid)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self.proc is None:
            return
        self._signal(signal.SIGCONT)  # a stopped group must run to die cleanly
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) did not die", self.name, self.proc.pid)
        _LIVE.discard(self)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self, timeout_s: float = 15.0) -> ManagedProcess:
        self.kill()
        return self.start(timeout_s)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class RtspServer(ManagedProcess):
    """rtsp-server-perl on free loopback ports (client, source and an RTP block)."""

    name = "rtsp-server"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.client_port = free_port()
        self.source_port = free_port()
        self.rtp_start_port = free_udp_block()

    def command(self) -> list[str]:
        return [RTSP_SERVER_BIN, "--clientport", str(self.client_port),
                "--serverport", str(self.source_port), "--client_listen_address", HOST,
                "--source_listen_address", HOST, "--rtp_start_port", str(self.rtp_start_port),
                "--loglevel", "2"]

    def wait_ready(self, timeout_s: float) -> None:
        wait_tcp(self.source_port, timeout_s, self)
        wait_tcp(self.client_port, timeout_s, self)

    def url(self, name: str) -> str:
        """Where clients play stream ``name``."""
        return f"rtsp://{HOST}:{self.client_port}/{name}"

    def publish_url(self, name: str) -> str:
        """Where a publisher ANNOUNCEs stream ``name``."""
        return f"rtsp://{HOST}:{self.source_port}/{name}"


class FfmpegPublisher(ManagedProcess):
    """ffmpeg publishing ``video`` to ``server`` as stream ``name``, looped, in real time."""

    name = "ffmpeg-publisher"

    def __init__(self, server: RtspServer, video: Path, stream: str = "cam") -> None:
        super().__init__(server.workdir)
        self.server = server
        self.video = Path(video)
        self.stream = stream

    def command(self) -> list[str]:
        return [FFMPEG_BIN, "-nostdin", "-hide_banner", "-loglevel", "warning", "-re",
                "-stream_loop", "-1", "-i", str(self.video), "-an", "-c", "copy",
                "-f", "rtsp", self.server.publish_url(self.stream)]

    @property
    def url(self) -> str:
        return self.server.url(self.stream)

    def wait_ready(self, timeout_s: float) -> None:
        """Until a client's DESCRIBE of the stream succeeds (the publisher has RECORDed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"ffmpeg publisher exited:\n{self.log_tail()}")
            try:
                if rtsp_describe(self.url) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url} not published after {timeout_s} s:\n{self.log_tail()}")


class FfmpegHttpServer(ManagedProcess):
    """ffmpeg serving ``video`` as an MPEG-TS stream over HTTP, looped, in real time.

    ffmpeg's HTTP server takes one client (``-listen 1``) and exits when it leaves, so it is
    ready once it listens (found by failing to bind its port) and is not probed.
    """

    name = "ffmpeg-http"

    def __init__(self, video: Path, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.video = Path(video)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/live.ts"

    def command(self) -> list[str]:
        return [FFMPEG_BIN, "-nostdin", "-hide_banner", "-loglevel", "warning", "-re",
                "-stream_loop", "-1", "-i", str(self.video), "-an", "-c", "copy",
                "-f", "mpegts", "-listen", "1", self.url]

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"ffmpeg HTTP server exited:\n{self.log_tail()}")
            with socket.socket() as probe:
                try:
                    probe.bind((HOST, self.port))
                except OSError:
                    return  # taken: ffmpeg listens
            time.sleep(0.05)
        raise TimeoutError(f"{self.url} not listening after {timeout_s} s:\n{self.log_tail()}")


class RtspTcpProxy(ManagedProcess):
    """Serves ``upstream`` (an RtspServer) to clients over RTSP/TCP interleaved."""

    name = "rtsp-tcp-proxy"

    def __init__(self, upstream: RtspServer) -> None:
        super().__init__(upstream.workdir)
        self.upstream = upstream
        self.port = free_port()

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "tcp-proxy", str(self.port),
                str(self.upstream.client_port)]

    def wait_ready(self, timeout_s: float) -> None:
        wait_tcp(self.port, timeout_s, self)

    def url(self, name: str) -> str:
        return f"rtsp://{HOST}:{self.port}/{name}"


class SilentServer:
    """A TCP server (thread) that accepts connections and never answers: a hung camera."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind((HOST, 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def url(self, name: str = "cam", scheme: str = "rtsp") -> str:
        return f"{scheme}://{HOST}:{self.port}/{name}"

    def close(self) -> None:
        self._sock.close()
        for conn in self.accepted:
            conn.close()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        proc.kill()


# --- the TCP proxy, run as `python servers.py tcp-proxy PORT UPSTREAM_PORT` ---------------

def _split_message(buf: bytes) -> tuple[bytes | None, bytes]:
    """One complete RTSP message (head + body) or interleaved frame from ``buf``."""
    if buf[:1] == b"$":
        if len(buf) < 4:
            return None, buf
        end = 4 + int.from_bytes(buf[2:4], "big")
        return (buf[:end], buf[end:]) if len(buf) >= end else (None, buf)
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None, buf
    length = 0
    for line in buf[:head_end].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    end = head_end + 4 + length
    return (buf[:end], buf[end:]) if len(buf) >= end else (None, buf)


def _header(msg: bytes, name: bytes) -> bytes | None:
    for line in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _set_header(msg: bytes, name: bytes, value: bytes) -> bytes:
    head, sep, body = msg.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if ln.partition(b":")[0].strip().lower() != name]
    lines.insert(1, name.title() + b": " + value)
    return b"\r\n".join(lines) + sep + body


def _proxy_connection(client: socket.socket, upstream_port: int) -> None:
    try:
        upstream = socket.create_connection((HOST, upstream_port), timeout=2)
    except OSError:
        client.close()
        return
    client.settimeout(5)  # sendall to a client that stopped reading gives up
    udp: dict[socket.socket, int] = {}  # UDP socket -> interleaved channel
    pending: list[bytes | None] = []  # per request in flight: the client's Transport if SETUP
    cbuf = ubuf = b""
    try:
        while True:
            readable, _, _ = select.select([client, upstream, *udp], [], [], 1.0)
            for sock in readable:
                if sock in udp:
                    packet = sock.recv(65536)
                    client.sendall(b"$" + bytes([udp[sock]]) + len(packet).to_bytes(2, "big")
                                   + packet)
                    continue
                data = sock.recv(65536)
                if not data:
                    return
                if sock is client:
                    cbuf += data
                    while True:
                        msg, cbuf = _split_message(cbuf)
                        if msg is None:
                            break
                        if msg[:1] == b"$":
                            continue  # the client's RTCP reports
                        transport = _header(msg, b"transport")
                        if msg.startswith(b"SETUP") and transport and b"interleaved=" in transport:
                            channels = transport.split(b"interleaved=")[1].split(b";")[0]
                            pair = []
                            for channel in channels.split(b"-"):
                                rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                                rtp.bind((HOST, 0))
                                udp[rtp] = int(channel)
                                pair.append(str(rtp.getsockname()[1]).encode())
                            msg = _set_header(msg, b"transport",
                                              b"RTP/AVP;unicast;client_port=" + b"-".join(pair))
                            pending.append(transport)
                        else:
                            pending.append(None)
                        upstream.sendall(msg)
                else:
                    ubuf += data
                    while True:
                        msg, ubuf = _split_message(ubuf)
                        if msg is None:
                            break
                        transport = pending.pop(0) if pending else None
                        if transport is not None:
                            msg = _set_header(msg, b"transport", transport)
                        client.sendall(msg)
    except OSError:
        return
    finally:
        for sock in (client, upstream, *udp):
            sock.close()


def _serve_tcp_proxy(port: int, upstream_port: int) -> None:
    listener = socket.create_server((HOST, port))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_proxy_connection, args=(client, upstream_port),
                         daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1:2] == ["tcp-proxy"]:
        _serve_tcp_proxy(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: servers.py tcp-proxy PORT UPSTREAM_PORT")
