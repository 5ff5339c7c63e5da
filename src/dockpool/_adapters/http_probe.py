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


def answers(host_ip: str, port: int, path: str, timeout: float) -> bool:
    """True if GET http://<host_ip>:<port><path> answers 2xx within `timeout` seconds."""
    conn = http.client.HTTPConnection(_host(host_ip), port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return 200 <= response.status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


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
