"""The real DockerEventSource against a fake engine on 127.0.0.1: the socket path, no Docker.

The fake answers `/version` and then plays one script for `/events` the way dockerd writes
it (chunked JSON lines): a silent stream (a dead peer behind a live TCP connection), a stream
that ends cleanly at `until`, one that ends cleanly too early (a daemon shutting down), and
one cut mid-stream. Bounds are tiny so that each test takes well under a second.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from dockpool._adapters.event_stream import DockerEventSource, StreamEnded, StreamTimeout
from dockpool._core.events import ContainerEvent

Script = Callable[[socket.socket, dict[str, str]], None]
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event_line(cid: str, t_ns: int) -> bytes:
    raw = {"Type": "container", "Action": "start", "Actor": {"ID": cid, "Attributes": {}}}
    return json.dumps({**raw, "timeNano": t_ns}).encode() + b"\n"


class FakeEngine:
    """A one-script HTTP server: `/version` answers 1.41, `/events` runs `script`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.queries: list[dict[str, str]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(4096)
                if not data:
                    return
                request += data
            target = urlsplit(request.split(b" ")[1].decode())
            if target.path.endswith("/version"):
                body = b'{"ApiVersion": "1.41"}'
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
                conn.sendall(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
                return
            query = {k: v[0] for k, v in parse_qs(target.query).items()}
            self.queries.append(query)
            conn.sendall(HEADERS)
            self.script(conn, query)
            self.done.wait(10)  # keep the connection open (silent) until the test ends

    def close(self) -> None:
        self.done.set()
        self.listener.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[FakeEngine]:
    fake = FakeEngine(request.param)
    yield fake
    fake.close()


def drain(source: DockerEventSource, since: str | None = None) -> tuple[list[str], object, float]:
    """Read one stream in a thread: (container ids, how it ended, seconds it took)."""
    got: list[str] = []
    ended: list[object] = []
    started = time.monotonic()

    def read() -> None:
        try:
            stream: Iterator[ContainerEvent] = source.open(since)
            got.extend(e.container_id for e in stream)
            ended.append("normal end")
        except Exception as exc:
            ended.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "the event stream blocked past every bound"
    return got, ended[0], time.monotonic() - started


def silent(conn: socket.socket, query: dict[str, str]) -> None:
    """Headers, one event, then nothing: the peer is gone but the connection is not."""
    conn.sendall(chunk(event_line("a", time.time_ns())))


def until_end(conn: socket.socket, query: dict[str, str]) -> None:
    """One event, then the clean end of the response at `until` (dockerd's timer)."""
    conn.sendall(chunk(event_line("a", time.time_ns())))
    time.sleep(max(0.0, float(query["until"]) - time.time()))
    conn.sendall(b"0\r\n\r\n")


def early_end(conn: socket.socket, query: dict[str, str]) -> None:
    """A clean end long before `until`: dockerd shutting down ends its streams like this."""
    conn.sendall(chunk(event_line("a", time.time_ns())) + b"0\r\n\r\n")


def cut(conn: socket.socket, query: dict[str, str]) -> None:
    """Half an event, then the connection closes without the end of the response."""
    conn.sendall(chunk(event_line("a", time.time_ns())) + b'40\r\n{"Type":')
    conn.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("engine", [silent], indirect=True)
def test_a_silent_stream_times_out_after_rollover_plus_grace(engine: FakeEngine) -> None:
    """No data for rollover + grace abandons the read with StreamTimeout (a disconnect)."""
    source = DockerEventSource({"dockpool.pool": "t"}, engine.url, rollover=0.3, grace=0.2)
    got, ended, took = drain(source, since="1.000000000")
    assert got == ["a"]
    assert isinstance(ended, StreamTimeout) and "no data" in str(ended)
    assert 0.45 <= took < 3.0
    assert engine.queries[0]["since"] == "1.000000000"
    assert abs(float(engine.queries[0]["until"]) - (time.time() - took + 0.3)) < 0.5


@pytest.mark.parametrize("engine", [until_end], indirect=True)
def test_a_stream_that_ends_at_until_is_a_normal_end(engine: FakeEngine) -> None:
    """The clean end at `until` is reported as a normal end of iteration (planned)."""
    source = DockerEventSource({"dockpool.pool": "t"}, engine.url, rollover=0.3, grace=5.0)
    got, ended, took = drain(source)
    assert got == ["a"] and ended == "normal end" and took >= 0.25
    assert "since" not in engine.queries[0]


@pytest.mark.parametrize("engine", [early_end, cut], indirect=True, ids=["early", "cut"])
def test_any_other_end_raises_stream_ended(engine: FakeEngine) -> None:
    """An end before `until`, clean or cut, is a disconnect: StreamEnded, not a timeout."""
    source = DockerEventSource({"dockpool.pool": "t"}, engine.url, rollover=5.0, grace=5.0)
    got, ended, took = drain(source)
    assert got == ["a"] and took < 2.0
    assert isinstance(ended, StreamEnded) and not isinstance(ended, StreamTimeout)


@pytest.mark.parametrize("engine", [silent], indirect=True)
def test_close_frees_a_blocked_reader_at_once(engine: FakeEngine) -> None:
    """close() from another thread ends a silent stream long before its bounds."""
    source = DockerEventSource({"dockpool.pool": "t"}, engine.url, rollover=30.0, grace=30.0)
    threading.Timer(0.3, source.close).start()
    got, ended, took = drain(source)
    assert got == ["a"] and ended == "normal end" and took < 2.0
