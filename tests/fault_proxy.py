"""A unix-socket proxy in front of a real Docker engine that breaks calls on request.

The failures dockpool must survive happen between it and the engine: an answer lost after the
engine acted (was the rename done?), a call refused before it arrived, a slow answer, an event
stream or an attach connection that just ends. A fake engine can only pretend; this proxy makes
the real engine's answers go missing, so the adapter's error translation and docker-py's own
behaviour are exercised for real. Point a client at `proxy.url`. Measured through it (docker-py
7, requests 2.32, urllib3 2): docker-py never retries, so a lost answer and a refused call raise
the same error at once; and it keeps one pool of connections per URL (query included, ten pools
at most), so a connection is reused only by a request for the very same URL.

It parses only the client-to-engine direction, for request boundaries (Content-Length and
chunked bodies): docker-py never pipelines, so the first bytes the engine sends after a request
is forwarded are the start of that request's answer, which is where `delay` and `lose` act. A
request carrying `Upgrade` (an attach or exec hijack) turns its connection into raw bytes both
ways once forwarded. Threads, two per connection; `stop()` joins all of them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from tests.faults import ENDPOINTS, Fault, FaultPlan, classify

__all__ = ["FaultProxy"]

_HEAD_LIMIT = 1 << 20
_JOIN_TIMEOUT = 10.0


class _Closed(Exception):
    """The client closed its side in the middle of a request."""


class _Reader:
    """Buffered reads from the client, so that what follows a hijack request goes on raw."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def _fill(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise _Closed
        self._buf += data

    def until(self, mark: bytes) -> bytes:
        """Everything up to and including `mark`; _Closed at EOF."""
        while (end := self._buf.find(mark)) < 0:
            if len(self._buf) > _HEAD_LIMIT:
                raise _Closed  # not HTTP: give up on this connection
            self._fill()
        data = bytes(self._buf[: end + len(mark)])
        del self._buf[: end + len(mark)]
        return data

    def exactly(self, n: int) -> Iterator[bytes]:
        """`n` bytes, in pieces as they arrive; _Closed at EOF."""
        while n > 0:
            if not self._buf:
                self._fill()
            piece = bytes(self._buf[:n])
            del self._buf[: len(piece)]
            n -= len(piece)
            yield piece

    def leftover(self) -> bytes:
        data, self._buf = bytes(self._buf), bytearray()
        return data


class _Session:
    """One client connection, its own connection to the engine, and a pump for each way."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self._proxy = proxy
        self._client = client
        self._upstream = upstream
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._answer_fault: Fault | None = None  # what to do to the next answer's first bytes
        self._running = 2
        self.endpoint: str | None = None  # the endpoint of the latest request forwarded
        n = proxy.connections
        self.threads = [
            threading.Thread(target=self._requests, name=f"fault-proxy-{n}-req", daemon=True),
            threading.Thread(target=self._answers, name=f"fault-proxy-{n}-ans", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def shut(self) -> None:
        """Cut both connections now (wakes both pumps; the last one out closes the sockets)."""
        self._closed.set()
        for sock in (self._client, self._upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pump_done(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self._client.close()
            self._upstream.close()

    def _requests(self) -> None:
        reader = _Reader(self._client)
        half_close = False
        try:
            while not half_close:
                half_close = self._one_request(reader)
        except (_Closed, OSError, ValueError):
            half_close = False
        finally:
            if half_close:  # the hijacked client is done sending: pass its EOF on, read on
                with contextlib.suppress(OSError):
                    self._upstream.shutdown(socket.SHUT_WR)
            else:
                self.shut()
            self._pump_done()

    def _one_request(self, reader: _Reader) -> bool:
        """Forward one request (True: it was a hijack, and the client's raw bytes ended)."""
        head = reader.until(b"\r\n\r\n").lstrip(b"\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        endpoint = classify(method, target)
        fault = self._proxy._take(endpoint, target)
        if fault is not None and fault.action == "refuse":
            raise _Closed  # cut before the engine sees a byte
        with self._lock:
            self.endpoint = endpoint
            self._answer_fault = fault  # before the engine can answer
        self._upstream.sendall(head)
        self._forward_body(reader, headers)
        if "upgrade" not in headers:
            return False
        self._upstream.sendall(reader.leftover())
        while data := self._client.recv(65536):
            self._upstream.sendall(data)
        return True

    def _forward_body(self, reader: _Reader, headers: dict[str, str]) -> None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line = reader.until(b"\r\n")
                self._upstream.sendall(line)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    break
                for piece in reader.exactly(size + 2):  # the data and its CRLF
                    self._upstream.sendall(piece)
            while (line := reader.until(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                self._upstream.sendall(line)
            self._upstream.sendall(line)
        elif length := int(headers.get("content-length", "0") or "0"):
            for piece in reader.exactly(length):
                self._upstream.sendall(piece)

    def _answers(self) -> None:
        try:
            while data := self._upstream.recv(65536):
                with self._lock:
                    fault, self._answer_fault = self._answer_fault, None
                if fault is not None and fault.action == "lose":
                    return  # the engine answered; the caller never hears it
                if fault is not None and fault.seconds and self._closed.wait(fault.seconds):
                    return  # a delay, cut short by stop() or cut()
                self._client.sendall(data)
        except OSError:
            pass
        finally:
            self.shut()
            self._pump_done()


class FaultProxy:
    """Listens on the unix socket `path` (default: a fresh temporary one) and forwards every
    connection to the engine's socket `upstream`, applying `plan` (default: a new, empty one)
    to each request. A context manager; `stop()` cuts every connection and joins its threads.
    """

    def __init__(
        self, upstream: str, path: str | None = None, plan: FaultPlan | None = None
    ) -> None:
        self.upstream = upstream
        self.plan = plan if plan is not None else FaultPlan()
        self._tmpdir = None if path is not None else tempfile.mkdtemp(prefix="fault-proxy-")
        self.path = path if path is not None else str(Path(self._tmpdir or "") / "docker.sock")
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self._sessions: list[_Session] = []
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self.connections = 0  # client connections accepted so far

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        listener.settimeout(0.1)  # the acceptor checks for stop() this often
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy-accept")
        self._acceptor.daemon = True
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every connection, join every thread; RuntimeError if one hangs."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(_JOIN_TIMEOUT)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.shut()
        threads = [t for s in sessions for t in s.threads]
        threads += [self._acceptor] if self._acceptor is not None else []
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        with contextlib.suppress(OSError):
            Path(self.path).unlink()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"fault proxy threads still alive after stop: {alive}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def cut(self, endpoint: str) -> int:
        """Cut every open connection whose latest request is of `endpoint` ("events": its
        stream ends; "attach": the container's stdin sees EOF); how many were cut."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        with self._lock:
            hit = [s for s in self._sessions if s.endpoint == endpoint and not s.closed]
        for session in hit:
            session.shut()
        return len(hit)

    def seen(self) -> dict[str, int]:
        """Requests seen so far per endpoint (refused ones included)."""
        with self._lock:
            return dict(self._seen)

    def _take(self, endpoint: str, target: str) -> Fault | None:
        with self._lock:
            self._seen[endpoint] += 1
        return self.plan.take(endpoint, target)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:  # no engine: the client sees its connection closed
                upstream.close()
                client.close()
                continue
            with self._lock:
                self.connections += 1
                session = _Session(self, client, upstream)
                # forget finished connections (their threads have ended), keep the rest
                self._sessions = [s for s in self._sessions if any(t.is_alive() for t in s.threads)]
                self._sessions.append(session)
            session.start()
