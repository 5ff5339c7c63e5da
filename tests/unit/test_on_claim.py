"""The on-claim request (spec.Readiness.on_claim): what a session needs from its first moment
(its keys) is delivered at the claim, before the rename; a member that does not take it is
discarded and the claim goes on. The fake engine's members publish their port to a real HTTP
server on loopback (tests/unit/test_warmup.py), so the request is the real HTTP code."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from dockpool import ClaimError, ContainerSpec, NameInUseError, PoolConfig, WarmUpRequest
from tests.fakes import FakeDocker, wait_for
from tests.unit import test_warmup as warm
from tests.unit.test_warmup import Server, members

server = warm.server  # the fixtures: an HTTP server on loopback,
docker = warm.docker  # a fake engine whose members publish their port to it,
make_pool = warm.make_pool  # and pools on that engine

INIT = WarmUpRequest("/api/init", method="POST", body='{"default": true}',
                     env_headers={"X-Key": "API_KEY"})  # fmt: skip


def spec(timeout: float = 2.0) -> ContainerSpec:
    base = warm.spec(warmup=())
    assert base.readiness is not None
    readiness = attrs.evolve(base.readiness, on_claim=INIT, on_claim_timeout=timeout)
    return attrs.evolve(base, readiness=readiness)


def test_the_sessions_payload_goes_to_the_member_before_its_rename(
    make_pool: Any, docker: FakeDocker, server: Server
) -> None:
    """The claim sends the on-claim request with the member's own key and the claim's
    payload, then renames; no waiting member ever held the payload."""
    renamed_after: list[int] = []
    docker.on_rename = lambda old, new: renamed_after.append(len(server.posts))
    pool = make_pool(spec(), size=2)
    pool.wait_until_full(timeout=5)
    payload = json.dumps({"session_api_keys": ["k-session-1"]})
    lease = pool.claim("s1", payload=payload)
    [(path, key, body)] = server.posts
    assert path == "/api/init" and body == {"session_api_keys": ["k-session-1"]}
    assert key == docker.containers[lease.container_id].env["API_KEY"]  # its own key
    assert renamed_after[-1] == 1  # the rename came after the request
    assert all("k-session-1" not in json.dumps(c.env) for c in docker.containers.values())
    pool.claim("s2")
    assert server.posts[-1][2] == {"default": True}  # no payload: the request's own body


def test_a_member_that_refuses_it_is_discarded_and_the_next_one_serves(
    make_pool: Any, docker: FakeDocker, server: Server
) -> None:
    """An on-claim request answered 500: that member is never handed out nor put back (it
    may hold part of the session's identity); the claim gets the other member."""
    pool = make_pool(spec(), size=2)
    pool.wait_until_full(timeout=5)
    first = sorted(members(docker), key=lambda c: c.id)
    server.status = 500  # the first request is refused, the next ones taken
    refused: list[str] = []
    real = pool._rt.executor.prober.send

    def send(*args: Any, **kwargs: Any) -> str | None:
        result: str | None = real(*args, **kwargs)
        if result is not None:
            refused.append(result)
        server.status = 200
        return result

    pool._rt.executor.prober.send = send
    lease = pool.claim("s1")
    assert refused == ["POST /api/init: HTTP 500"]
    assert lease.container_id in {c.id for c in first}
    loser = next(c for c in first if c.id != lease.container_id)
    assert wait_for(lambda: loser.id not in docker.containers)  # discarded, not READY again


def test_no_member_takes_it_the_claim_fails(
    make_pool: Any, docker: FakeDocker, server: Server
) -> None:
    """Every member, the cold start's too, refuses: one clear error, nothing handed out,
    nothing left under the session's name."""
    server.status = 500
    pool = make_pool(spec(), size=1)
    pool.wait_until_full(timeout=5)
    with pytest.raises(ClaimError, match="on-claim request failed: POST /api/init: HTTP 500"):
        pool.claim("s1", timeout=5)
    assert docker.named("s1") is None


def test_a_slow_member_is_discarded(make_pool: Any, docker: FakeDocker, server: Server) -> None:
    """An on-claim request not answered within on_claim_timeout counts as refused."""
    pool = make_pool(spec(timeout=0.2), size=1)
    pool.wait_until_full(timeout=5)
    server.hold.clear()
    with pytest.raises(ClaimError, match="timed out"):
        pool.try_claim("s1") or pool.claim("s1", timeout=1)
    server.hold.set()
    assert docker.named("s1") is None


def test_a_member_that_took_it_is_not_put_back_when_the_name_is_taken(
    make_pool: Any, docker: FakeDocker, server: Server
) -> None:
    """The session's name turned out taken after the member took the request: the claim
    fails as NameInUseError, and the member is discarded rather than put back."""
    pool = make_pool(spec(), size=1)
    pool.wait_until_full(timeout=5)
    (member,) = members(docker)
    docker._new("s1", {}, False)  # someone else's container holds the name
    with pytest.raises(NameInUseError):
        pool.claim("s1", timeout=2)
    assert wait_for(lambda: member.id not in docker.containers)


def test_on_claim_from_config_toml(tmp_path: Any) -> None:
    """[dockpool.readiness.on_claim] is read like a warm-up step; it is what a claim does, so
    it is not in the fingerprint (changing it replaces no member)."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[dockpool]\nimage = "img:1"\nports = [8000]\n'
        "[dockpool.readiness]\nport = 8000\non_claim_timeout = 3\n"
        '[dockpool.readiness.on_claim]\npath = "/api/init"\nmethod = "POST"\n'
        'env_headers = { X-Init-API-Key = "OH_SECRET_KEY" }\n'
    )
    config = PoolConfig.from_toml(path)
    readiness = config.spec.readiness
    assert readiness is not None and readiness.on_claim_timeout == 3
    assert readiness.on_claim == WarmUpRequest(
        "/api/init", method="POST", env_headers={"X-Init-API-Key": "OH_SECRET_KEY"}
    )
    bare = attrs.evolve(config.spec, readiness=attrs.evolve(readiness, on_claim=None))
    assert bare.fingerprint("sha256:1") == config.spec.fingerprint("sha256:1")
