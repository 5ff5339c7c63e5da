"""dockpool's own readiness probe: one HTTP GET from the host to a member's published port;
and the requests of a member's warm-up.

A refused connection (the server not listening yet) returns at once and costs the member
nothing, unlike a Docker health check, which runs a process inside the container every time.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping

#: Addresses a port can be published on that a client cannot connect to as such.
_ANY = {"", "0.0.0.0", "::"}


def _host(host_ip: str) -> str:
    return "127.0.0.1" if host_ip in _ANY else host_ip


class Pending:
    """A GET that was sent and whose answer is not read yet (see `begin`)."""

    def __init__(self, conn: http.client.HTTPConnection | None) -> None:
        self._conn = conn

    def answered(self) -> bool:
        """Read the answer: True if it is 2xx (within the timeout of `begin`). Once only."""
        conn, self._conn = self._conn, None
        if conn is None:
            return False
        try:
            response = conn.getresponse()
            response.read()
            return 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


def begin(host_ip: str, port: int, path: str, timeout: float) -> Pending:
    """Send GET http://<host_ip>:<port><path> now and read its answer later (`answered`).

    The server works on it while the caller does something else in the same thread (a
    claim's rename): no thread of its own, no hand-off. A request that cannot be sent (the
    port refuses) answers False.
    """
    conn = http.client.HTTPConnection(_host(host_ip), port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
    except (OSError, http.client.HTTPException):
        conn.close()
        return Pending(None)
    return Pending(conn)


def answers(host_ip: str, port: int, path: str, timeout: float) -> bool:
    """True if GET http://<host_ip>:<port><path> answers 2xx within `timeout` seconds."""
    return begin(host_ip, port, path, timeout).answered()


def send(
    host_ip: str,
    port: int,
    method: str,
    path: str,
    body: str | None,
    headers: Mapping[str, str],
    timeout: float,
) -> str | None:
    """One warm-up request; None if it answered 2xx within `timeout`, else what went wrong."""
    conn = http.client.HTTPConnection(_host(host_ip), port, timeout=timeout)
    sent = {"Connection": "close", **headers}
    if body is not None:
        sent["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body.encode() if body is not None else None, headers=sent)
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{method} {path}: {exc or type(exc).__name__}"
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return None
    return f"{method} {path}: HTTP {response.status}"
