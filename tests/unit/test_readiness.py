"""Readiness by dockpool's own probe (spec.readiness): warm-up only, then Docker's slow check.

The fake engine never reports a member healthy here (a 30 s health interval on an old engine),
and its members' published ports lead to a real HTTP server on loopback that the test turns on
and off, so the probe and the claim-time check are the real HTTP code.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest

from dockpool import ContainerPool, ContainerSpec, HealthCheck, Readiness
from dockpool._core.config import PoolConfig
from dockpool._core.machine import ContainerId, MemberKey, State
from dockpool._core.member import provision
from dockpool._core.spec import readiness_mode
from dockpool._runtime import prober as prober_module
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.prober import Prober
from dockpool._runtime.state import PoolState, Recipe
from tests.fakes import FakeDocker, FakeEventSource, wait_for

LIVENESS = HealthCheck(test=["CMD", "true"], interval=30, retries=3, start_interval=0.1)
SPEC = ContainerSpec(
    image="img:1",
    ports=[8000],
    healthcheck=LIVENESS,
    readiness=Readiness(port=8000, path="/ready", interval=0.02, timeout=0.5),
)


class Server:
    """A loopback HTTP server: /ready answers 200 while `up`, 503 otherwise; counts GETs."""

    def __init__(self) -> None:
        self.up = False
        self.gets = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.gets += 1
                self.send_response(200 if owner.up and self.path == "/ready" else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made = [Server(), Server()]
    yield made
    for server in made:
        server.close()


@pytest.fixture
def docker(servers: list[Server]) -> FakeDocker:
    fake = FakeDocker(FakeEventSource(), auto_healthy=False)
    fake._ports = itertools.cycle([s.port for s in servers])  # member i -> server i % 2
    return fake


@pytest.fixture
def make_pool(docker: FakeDocker) -> Iterator[Any]:
    pools: list[ContainerPool] = []

    def make(size: int, version: tuple[int, int] = (1, 41), check: bool = False) -> ContainerPool:
        docker.version = version
        assert SPEC.readiness is not None
        spec = attrs.evolve(SPEC, readiness=attrs.evolve(SPEC.readiness, check_at_claim=check))
        pool = ContainerPool(
            spec, size=size, name="fake", adapter=docker, event_source=docker.events,
            backoff=Backoff(base=0.01, cap=0.05),
        )  # fmt: skip
        pools.append(pool)
        return pool.start()

    yield make
    for pool in pools:
        pool.close(timeout=5)
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("dockpool-")]
    assert leftover == [], f"threads left behind: {leftover}"


def test_mode_follows_the_spec() -> None:
    assert readiness_mode(SPEC) == "probe"
    assert readiness_mode(ContainerSpec(image="i", healthcheck=LIVENESS)) == "health"
    assert readiness_mode(ContainerSpec(image="i")) == "running"
    with pytest.raises(ValueError, match="readiness port 9000 is not one of ports"):
        ContainerSpec(image="i", ports=[8000], readiness=Readiness(port=9000))


def test_ready_when_the_server_answers_not_before(make_pool: Any, servers: list[Server]) -> None:
    pool = make_pool(1)
    assert wait_for(lambda: servers[0].gets >= 3)  # probing while the server says 503
    assert pool.stats().ready == 0
    servers[0].up = True
    t0 = time.monotonic()
    assert wait_for(lambda: pool.stats().ready == 1, timeout=2)
    assert time.monotonic() - t0 < 1.0  # probe interval 0.02 s; generous for a loaded CI


def test_a_ready_member_is_not_probed(make_pool: Any, servers: list[Server]) -> None:
    servers[0].up = True
    pool = make_pool(1)
    assert wait_for(lambda: pool.stats().ready == 1)
    gets = servers[0].gets
    time.sleep(0.3)  # 15 probe intervals
    assert servers[0].gets == gets


def test_dockers_healthy_counts_too(make_pool: Any, docker: FakeDocker,
                                    servers: list[Server]) -> None:  # fmt: skip
    pool = make_pool(1, version=(1, 44))
    assert wait_for(lambda: servers[0].gets >= 3)
    assert pool.stats().ready == 0  # the server says 503 to us
    (member,) = [c for c in docker.containers.values() if c.name.startswith("dockpool-fake-")
                 and c.labels.get("dockpool.role") == "member"]  # fmt: skip
    docker.set_health(member.id, "healthy")
    assert wait_for(lambda: pool.stats().ready == 1)


@pytest.mark.parametrize("check", [True, False])
def test_a_member_whose_server_stopped_answering_is_not_handed_out_with_check_at_claim(
    make_pool: Any, docker: FakeDocker, servers: list[Server], check: bool
) -> None:
    """With `check_at_claim`, the claim asks the server; without it, a server that went silent
    in a running container is the liveness check's to find (the claim trusts the events)."""
    docker._ports = itertools.chain([servers[0].port], itertools.repeat(servers[1].port))
    servers[0].up = servers[1].up = True
    pool = make_pool(1, check=check)
    assert wait_for(lambda: pool.stats().ready == 1)
    (first,) = [c for c in docker.containers.values() if c.ports.get(8000) == servers[0].port]
    servers[0].up = False  # still "running", health "starting": only the server knows
    lease = pool.claim("session-1", timeout=10)
    if not check:
        assert lease.container_id == first.id and lease.from_pool
        return
    assert lease.ports[8000] == servers[1].port  # a cold start (or refill), never the silent one
    assert wait_for(lambda: first.id not in docker.containers)  # discarded, not left renamed


def test_probe_stops_when_the_member_dies(make_pool: Any, docker: FakeDocker,
                                          servers: list[Server]) -> None:  # fmt: skip
    pool = make_pool(1)
    assert wait_for(lambda: servers[0].gets >= 1)
    rt = pool._rt
    (member,) = [mem for mem in rt.state.table if mem.state is State.WARMING]
    assert member.container_id is not None
    docker.kill(member.container_id, 1)
    assert wait_for(lambda: not any(
        t.name.startswith("dockpool-fake-probe-" + member.key[:12]) for t in threading.enumerate()
    ))  # fmt: skip


@pytest.mark.parametrize("check", [True, False])
def test_a_probed_member_is_claimed_with_no_inspect(
    make_pool: Any,
    docker: FakeDocker,
    servers: list[Server],
    monkeypatch: pytest.MonkeyPatch,
    check: bool,
) -> None:
    """The claim's check is its rename's event (no call), or with `check_at_claim` one GET to
    the server through the ports the probe read; never an inspect."""
    servers[0].up = servers[1].up = True
    pool = make_pool(1, check=check)
    assert wait_for(lambda: pool.stats().ready == 1)
    inspected: list[str] = []
    real = docker.inspect

    def inspect(container: str) -> Any:
        inspected.append(container)
        return real(container)

    monkeypatch.setattr(docker, "inspect", inspect)
    gets = servers[0].gets
    lease = pool.claim("session-1", timeout=10)
    assert lease.ports[8000] == servers[0].port and lease.from_pool
    assert lease.container_id not in inspected  # (the refill's new member is inspected)
    assert "session-1" not in inspected and servers[0].gets == gets + int(check)


def test_the_claims_get_runs_alongside_the_rename(
    make_pool: Any, docker: FakeDocker, servers: list[Server]
) -> None:
    """The claim's GET is on its way while the member's rename is in flight: a claim costs the
    slower of the two, not their sum. (With the check after the rename, this rename would wait
    for a GET that never comes, and the claim would find its server silent.)"""
    servers[0].up = servers[1].up = True
    pool = make_pool(1, check=True)
    assert wait_for(lambda: pool.stats().ready == 1)
    asked_before_renamed: list[bool] = []
    # Counted before the claim: the GET may well arrive before the rename call itself starts.
    gets = servers[0].gets

    def on_rename(container: str, new_name: str) -> None:
        if new_name == "session-1":
            asked_before_renamed.append(wait_for(lambda: servers[0].gets > gets, timeout=2.0))

    docker.on_rename = on_rename
    lease = pool.claim("session-1", timeout=10)
    assert asked_before_renamed == [True]
    assert lease.from_pool and lease.ports[8000] == servers[0].port


@pytest.mark.parametrize("host", [None, "127.0.0.1"])
def test_the_probe_goes_where_readiness_host_says(
    docker: FakeDocker, servers: list[Server], host: str | None
) -> None:
    """Published on 127.0.0.2 (where nothing listens): only `Readiness.host` reaches them."""
    servers[0].up = servers[1].up = True
    readiness = Readiness(port=8000, path="/ready", interval=0.02, timeout=0.5, host=host)
    spec = ContainerSpec(image="img:1", ports=[8000], port_host_ip="127.0.0.2",
                         healthcheck=LIVENESS, readiness=readiness)  # fmt: skip
    pool = ContainerPool(spec, size=1, name="fake", adapter=docker, event_source=docker.events,
                         backoff=Backoff(base=0.01, cap=0.05)).start()  # fmt: skip
    try:
        if host is None:
            time.sleep(0.3)  # 15 probe intervals
            assert pool.stats().ready == 0 and servers[0].gets == 0
        else:
            assert wait_for(lambda: pool.stats().ready == 1, timeout=2)
            assert servers[0].gets >= 1
    finally:
        pool.close(timeout=5)


def test_readiness_host_must_be_a_host() -> None:
    for bad in ("", "http://x", "a b"):
        with pytest.raises(ValueError, match="readiness host"):
            Readiness(port=8000, host=bad)


class _Threading:
    """The `threading` module as prober.py sees it, with another Thread class."""

    def __init__(self, thread: type[threading.Thread]) -> None:
        self.Thread = thread

    def __getattr__(self, name: str) -> Any:
        return getattr(threading, name)


def test_a_probe_started_while_the_pool_closes_is_joined(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Prober.stop` racing `Prober.start`: stop must never see a probe thread that is recorded
    but not started yet (joining one raises RuntimeError, and the pool's close failed with it).
    The probe thread's start is held back 0.2 s while stop runs."""
    state = PoolState(PoolConfig(spec=SPEC, size=1, name="race"))
    state.use(Recipe.of(SPEC, "sha256:0"))
    member, _ = provision(MemberKey("k1"), "dockpool-race-k1", needs_health=True, now=0.0,
                          fingerprint=state.fingerprint, probed=True)  # fmt: skip
    member = attrs.evolve(member, container_id=ContainerId("c1"), state=State.WARMING)
    prober = Prober(state, docker, lambda key, event: None)
    starting, failures = threading.Event(), []

    def stop() -> None:
        starting.wait(5)
        try:
            prober.stop(timeout=2)
        except Exception as exc:
            failures.append(exc)

    stopper = threading.Thread(target=stop)
    stopper.start()

    class SlowStart(threading.Thread):
        def start(self) -> None:
            starting.set()
            time.sleep(0.2)  # stop() runs now
            super().start()

    monkeypatch.setattr(prober_module, "threading", _Threading(SlowStart))
    prober.start(member)
    monkeypatch.undo()
    stopper.join(5)
    assert failures == []
