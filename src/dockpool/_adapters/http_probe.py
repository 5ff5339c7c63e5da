"""dockpool's own readiness probe: one HTTP GET from the host to a member's published port.

A refused connection (the server not listening yet) returns at once and costs the member
nothing, unlike a Docker health check, which runs a process inside the container every time.
"""

from __future__ import annotations

import http.client

#: Addresses a port can be published on that a client cannot connect to as such.
_ANY = {"", "0.0.0.0", "::"}


def answers(host_ip: str, port: int, path: str, timeout: float) -> bool:
    """True if GET http://<host_ip>:<port><path> answers 2xx within `timeout` seconds."""
    host = "127.0.0.1" if host_ip in _ANY else host_ip
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return 200 <= response.status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
