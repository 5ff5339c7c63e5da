"""A pool process's metrics and status over HTTP: `[dockpool.metrics] address` in config.toml.

GET /metrics   Prometheus text (prometheus_client), built from `ContainerPool.status()` at each
               scrape: nothing is counted twice, and the figures are those of `dockpool status`.
GET /status    the same status as JSON (what `dockpool status --url` reads).

The figures are this process's: with several processes sharing a pool, each serves its own
claims (give each its own address) and its own view of the members.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dockpool._adapters.http_serve import HttpServer
from dockpool._core.endpoint import Endpoint
from dockpool._core.machine import LIVE, State
from dockpool._runtime.observe import BUCKETS

Status = Callable[[], dict[str, Any]]

#: (metric name, help, key of status["stats"] or of status["signals"]) for the plain counters
_COUNTERS = (
    ("dockpool_member_creates", "Members created (refill, growth, replacement, cold start).",
     "signals", "member_creating"),
    ("dockpool_members_replaced", "Members lost (died, unhealthy, removed ...) and replaced.",
     "stats", "replaced"),
    ("dockpool_member_failures", "Creates or starts that failed, or members dead before ready.",
     "stats", "failed_starts"),
    ("dockpool_stream_reconnects", "Reconnects of the Docker event stream.",
     "stats", "stream_reconnects"),
    ("dockpool_resyncs", "Resyncs of the member table against the engine's list.",
     "stats", "resyncs"),
)  # fmt: skip


class PoolCollector:
    """A prometheus_client collector that reads one pool's status at each scrape."""

    def __init__(self, status: Status) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status()
        pool = [s["pool"]]
        claims = CounterMetricFamily(
            "dockpool_claims",
            "Claims by outcome: hit (a warm member), cold (a cold start), failed (nothing).",
            labels=["pool", "outcome"],
        )
        for outcome, n in s["claims"].items():
            claims.add_metric([*pool, outcome], n)
        yield claims
        latency = HistogramMetricFamily(
            "dockpool_claim_seconds",
            "Time from a claim's call to its lease, by outcome (hit or cold).",
            labels=["pool", "outcome"],
        )
        for outcome in ("hit", "cold"):
            h = s["latency"][outcome]
            cumulative, running = [], 0
            for bound, n in zip((*BUCKETS, None), h["counts"], strict=True):
                running += n
                cumulative.append(("+Inf" if bound is None else repr(bound), running))
            latency.add_metric([*pool, outcome], cumulative, sum_value=h["sum"])
        yield latency
        members = GaugeMetricFamily(
            "dockpool_members", "Members by state (this process's view).", labels=["pool", "state"]
        )
        for state in (*sorted(LIVE, key=lambda x: x.value), State.RETIRING):
            members.add_metric([*pool, state.value], s["counts"].get(state.value, 0))
        yield members
        for name, text, where, key in _COUNTERS:
            counter = CounterMetricFamily(name, text, labels=["pool"])
            counter.add_metric(pool, s[where].get(key, 0))
            yield counter
        reloads = CounterMetricFamily(
            "dockpool_config_reloads", "Config reloads, by result.", labels=["pool", "result"]
        )
        reloads.add_metric([*pool, "applied"], s["signals"].get("config_changed", 0))
        reloads.add_metric([*pool, "rejected"], s["signals"].get("config_rejected", 0))
        yield reloads
        for name, text, value in (
            ("dockpool_target_size", "Ready members the pool aims at.", s["size"]["target"]),
            ("dockpool_floor_size", "container_pool_size (or resize): the floor.",
             s["size"]["floor"]),
            ("dockpool_max_containers", "The cap on containers held.",
             s["size"]["max_containers"]),
            ("dockpool_degraded", "1 while members keep failing (back-off).", int(s["degraded"])),
            ("dockpool_upkeep_leader", "1 while this process does the upkeep.", int(s["leader"])),
        ):  # fmt: skip
            gauge = GaugeMetricFamily(name, text, labels=["pool"])
            gauge.add_metric(pool, value)
            yield gauge


class MetricsEndpoint:
    """The HTTP server of one pool, moved or stopped as `[dockpool.metrics]` changes.

    A failure to listen never stops the pool: it is logged once, `error` says it, and the
    server keeps its last good address (if any).
    """

    def __init__(self, pool: str, status: Status) -> None:
        self._pool = pool
        self._status = status
        self._server: HttpServer | None = None
        self._wanted: Endpoint | None = None  # as configured (port 0: any)
        self._at: Endpoint | None = None  # as bound
        self.error = ""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PoolCollector(status))
        self._registry = registry

    @property
    def address(self) -> Endpoint | None:
        """Where it listens now (with the port chosen when 0 was asked), or None."""
        return self._at

    def _routes(self) -> dict[str, Callable[[], tuple[str, bytes]]]:
        return {
            "/metrics": lambda: (CONTENT_TYPE_LATEST, generate_latest(self._registry)),
            "/status": lambda: ("application/json", json.dumps(self._status()).encode()),
        }

    def apply(self, wanted: Endpoint | None) -> None:
        """Listen on `wanted` (None: stop listening)."""
        if wanted == self._wanted:
            return
        old = self._server
        if wanted is None:
            if old is not None:
                old.close()
                logger.info("pool {}: metrics endpoint stopped", self._pool)
            self._server = self._wanted = self._at = None
            self.error = ""
            return
        server = self._listen(wanted)
        if server is None and old is not None and self._at is not None:
            old.close()  # the old server may hold the port (a new host, same port): free it
            self._server, old = None, None
            server = self._listen(wanted)
            if server is None:  # put the old one back where it was
                self._server = back = self._listen(self._at)
                if back is not None:
                    back.start()
                return
        if server is None:
            return
        if old is not None:
            old.close()
        self._server, self._wanted, self.error = server.start(), wanted, ""
        self._at = Endpoint(wanted.host, server.port)
        if not wanted.loopback:
            logger.warning(
                "pool {}: metrics and status listen on {}, reachable from other hosts "
                "(they name members and sessions)", self._pool, self._at,
            )  # fmt: skip
        logger.info("pool {}: metrics on {} (status on {})", self._pool,
                    self._at.url("/metrics"), self._at.url("/status"))  # fmt: skip

    def _listen(self, at: Endpoint) -> HttpServer | None:
        try:
            return HttpServer(at.host, at.port, self._routes(), f"dockpool-{self._pool}-metrics")
        except OSError as exc:
            self.error = f"cannot listen on {at}: {exc}"
            logger.error("pool {}: metrics: {} (no metrics from this process there)",
                         self._pool, self.error)  # fmt: skip
            return None

    def close(self) -> None:
        self.apply(None)
