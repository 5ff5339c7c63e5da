"""Where a pool process serves its metrics and status: `[dockpool.metrics] address`."""

from __future__ import annotations

import ipaddress

import attrs

#: The address a new metrics endpoint is documented with (Prometheus' exporter range).
DEFAULT_ADDRESS = "127.0.0.1:9464"


@attrs.frozen
class Endpoint:
    """A TCP address to listen on: an IP address (or "localhost") and a port (0: any free one)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`host:port` (`[v6]:port` for IPv6); ValueError naming what is wrong."""
        host, sep, port_text = text.strip().rpartition(":")
        if not sep or not host:
            raise ValueError(f"{text!r} is not host:port (e.g. {DEFAULT_ADDRESS!r})")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if host != "localhost":
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(
                    f"{host!r} is not an IP address or localhost (in {text!r})"
                ) from None
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"port {port_text!r} must be a number from 0 to 65535 (in {text!r})")
        return cls(host, int(port_text))

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach it."""
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, path: str = "") -> str:
        return f"http://{self}{path}"
