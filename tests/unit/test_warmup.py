"""A member's warm-up (spec.Readiness.warmup): requests sent once after the readiness probe
answered, before the member counts as ready; a failed one replaces the member, with back-off.

The fake engine's members publish their port to a real HTTP server on loopback, so the probe
and the warm-up are the real HTTP code; Docker reports members healthy at once (auto_healthy),
which must not make a member that warms ready.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dockpool import ContainerPool, ContainerSpec, HealthCheck, Readiness, WarmUpRequest
from dockpool._core import machine as m
from dockpool._runtime.backoff import Backoff
from tests.fakes import FakeDocker, FakeEventSource, wait_for

WARMUP = (
    WarmUpRequest(
        "/api/bash", method="POST", body='{"command": "true"}', env_headers={"X-Key": "API_KEY"}
    ),
    WarmUpRequest("/api/skills", method="POST", body="{}"),
)


def spec(warmup: tuple[WarmUpRequest, ...] = WARMUP, timeout: float = 5.0) -> ContainerSpec:
    return ContainerSpec(
        image="img:1",
        ports=[8000],
        random_env=["API_KEY"],
        healthcheck=HealthCheck(test=["CMD", "true"], interval=30, retries=3),
        readiness=Readiness(
            port=8000,
            path="/ready",
            interval=0.02,
            timeout=0.5,
            warmup=warmup,
            warmup_timeout=timeout,
        ),
    )


class Server:
    """/ready answers 200; POSTs are recorded and answered `status` after `hold` is set."""

    def __init__(self) -> None:
        self.status = 200
        self.posts: list[tuple[str, str | None, dict[str, Any]]] = []
        self.hold = threading.Event()
        self.hold.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(200 if self.path == "/ready" else 404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                owner.posts.append((self.path, self.headers.get("X-Key"), body))
                owner.hold.wait(10)
                self._answer(owner.status)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    made = Server()
    yield made
    made.hold.set()
    made.httpd.shutdown()
    made.httpd.server_close()


@pytest.fixture
def docker(server: Server) -> FakeDocker:
    fake = FakeDocker(FakeEventSource(), auto_healthy=True)  # "healthy" at once: not enough
    fake._ports = iter(lambda: server.port, None)  # every member's port leads to the server
    return fake


@pytest.fixture
def make_pool(docker: FakeDocker) -> Iterator[Any]:
    pools: list[ContainerPool] = []

    def make(the_spec: ContainerSpec, size: int = 1) -> ContainerPool:
        pool = ContainerPool(the_spec, size=size, name="fake", adapter=docker,
                             event_source=docker.events, backoff=Backoff(base=0.01, cap=0.05))  # fmt: skip
        pools.append(pool)
        return pool.start()

    yield make
    for pool in pools:
        pool.close(timeout=5)


def members(docker: FakeDocker) -> list[Any]:
    return [c for c in docker.containers.values()
            if c.name.startswith("dockpool-fake-") and c.labels.get("dockpool.role") == "member"]  # fmt: skip


def test_ready_only_after_the_warm_up(make_pool: Any, docker: FakeDocker, server: Server) -> None:
    """Docker's healthy and the probe's answer come first; the member waits for its warm-up,
    whose requests go out in order, with the member's own key, and only once."""
    server.hold.clear()  # the first warm-up request hangs until released
    pool = make_pool(spec())
    assert wait_for(lambda: len(server.posts) == 1)
    [member] = members(docker)
    assert member.health == "healthy"  # Docker says healthy, the probe got its 200 ...
    assert pool.stats().ready == 0  # ... and still: not ready while it warms
    server.hold.set()
    assert wait_for(lambda: pool.stats().ready == 1)
    assert [p[0] for p in server.posts] == ["/api/bash", "/api/skills"]
    assert server.posts[0][1] == member.env["API_KEY"]  # its own random_env value
    assert server.posts[0][2] == {"command": "true"}
    lease = pool.claim("s1")
    assert lease.container_id == member.id and len(server.posts) == 2  # warmed once


def test_a_failed_warm_up_replaces_the_member(
    make_pool: Any, docker: FakeDocker, server: Server
) -> None:
    server.status = 500
    pool = make_pool(spec())
    assert wait_for(lambda: pool.stats().failed_starts >= 2)  # replaced, and replaced again
    assert pool.stats().ready == 0
    assert "warm-up failed: POST /api/bash: HTTP 500" in (
        pool._rt.state.counters.last_failure or ""
    )
    server.status = 200
    assert wait_for(lambda: pool.stats().ready == 1, timeout=10)  # back-off ends; it warms


def test_a_warm_up_that_takes_too_long_fails(make_pool: Any, server: Server) -> None:
    server.hold.clear()
    pool = make_pool(spec(timeout=0.3))
    assert wait_for(lambda: pool.stats().failed_starts >= 1)
    assert "warm-up failed" in (pool._rt.state.counters.last_failure or "")
    assert pool.stats().ready == 0


def test_machine_healthy_does_not_skip_the_warm_up() -> None:
    member, _ = m.provision(m.MemberKey("k"), "n", needs_health=True, now=0.0, probed=True,
                            warms=True)  # fmt: skip
    member, _ = m.transition(member, m.Created(m.ContainerId("c")))
    assert member.state is m.State.STARTING
    warming, effects = m.transition(member, m.Healthy())
    assert warming.state is m.State.WARMING and any(isinstance(e, m.Probe) for e in effects)
    assert m.transition(warming, m.Healthy())[0].state is m.State.WARMING
    ready, _ = m.transition(warming, m.Answered())
    assert ready.state is m.State.READY
    lost, effects = m.transition(warming, m.WarmUpFailed("HTTP 500"))
    assert lost.state is m.State.RETIRING
    assert any(isinstance(e, m.Failure) for e in effects)


def test_warm_up_request_is_checked() -> None:
    with pytest.raises(ValueError, match="must start with /"):
        WarmUpRequest("api")
    with pytest.raises(ValueError, match="not JSON"):
        WarmUpRequest("/x", method="POST", body="{nope")
    with pytest.raises(ValueError, match="method"):
        WarmUpRequest("/x", method="FETCH")
