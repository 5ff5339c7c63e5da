"""The operator's view on a fake engine: `ContainerPool.status()`, the Prometheus endpoint
(a real HTTP server on 127.0.0.1), its hot reload, and `dockpool status` as rendered by rich."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from rich.console import Console

from dockpool import ContainerPool, ContainerSpec, HealthCheck, NameInUseError, PoolConfig
from dockpool._core.endpoint import Endpoint
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.status import engine_status
from dockpool.status_view import render
from tests.fakes import FakeDocker, FakeEventSource, wait_for

SPEC = ContainerSpec(
    image="img:1", ports=[8000], healthcheck=HealthCheck(test=["CMD", "true"], interval=30)
)
ANY_PORT = Endpoint("127.0.0.1", 0)


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker(FakeEventSource())


@pytest.fixture
def pool(docker: FakeDocker) -> Iterator[ContainerPool]:
    p = ContainerPool(SPEC, size=1, name="fake", adapter=docker, event_source=docker.events,
                      backoff=Backoff(base=0.01, cap=0.05), metrics=ANY_PORT)  # fmt: skip
    p.start()
    p.wait_until_full(timeout=5)
    yield p
    p.close(timeout=5)


def scrape(pool: ContainerPool, path: str = "/metrics") -> str:
    address = pool.metrics_endpoint.address
    assert address is not None, pool.metrics_endpoint.error
    with urllib.request.urlopen(address.url(path), timeout=5) as answer:
        return str(answer.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text (0 when it is absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        got = dict(part.split("=", 1) for part in line[len(name) + 1 : line.index("}")].split(","))
        if all(got.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_hit_a_cold_start_and_a_failure_each_land_in_their_own_counter(
    pool: ContainerPool,
) -> None:
    before = scrape(pool)
    assert sample(before, "dockpool_claims_total", outcome="hit", pool="fake") == 0
    pool.claim("one", timeout=10)  # the one ready member: a hit
    pool.claim("two", timeout=10)  # nothing ready yet: a cold start, never counted as a hit
    with pytest.raises(NameInUseError):
        pool.claim("two", timeout=10)
    after = scrape(pool)
    assert sample(after, "dockpool_claims_total", outcome="hit", pool="fake") == 1
    assert sample(after, "dockpool_claims_total", outcome="cold", pool="fake") == 1
    assert sample(after, "dockpool_claims_total", outcome="failed", pool="fake") == 1
    assert sample(after, "dockpool_claim_seconds_count", outcome="hit", pool="fake") == 1
    assert sample(after, "dockpool_claim_seconds_count", outcome="cold", pool="fake") == 1
    assert sample(after, "dockpool_claim_seconds_bucket", outcome="hit", le="+Inf") == 1
    assert sample(after, "dockpool_member_creates_total", pool="fake") >= 2
    status = pool.status()
    assert status["claims"] == {"hit": 1, "cold": 1, "failed": 1}
    assert status["hit_rate"] == 0.5
    assert [e["who"] for e in status["events"] if e["signal"] == "member_claimed"] == [
        "one",
        "two",
    ]
    assert status["failures"][-1]["signal"] == "claim_failed"


def test_the_latency_histogram_counts_each_claim_in_its_bucket(pool: ContainerPool) -> None:
    pool.claim("one", timeout=10)
    hist = pool.status()["latency"]["hit"]
    assert hist["count"] == 1 and sum(hist["counts"]) == 1
    text = scrape(pool)
    buckets = [sample(text, "dockpool_claim_seconds_bucket", outcome="hit", le=le)
               for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "1.0", "+Inf")]  # fmt: skip
    assert buckets == sorted(buckets) and buckets[-1] == 1  # cumulative, ending at the count
    assert sample(text, "dockpool_claim_seconds_sum", outcome="hit") > 0


def test_members_by_state_follow_the_pool(pool: ContainerPool) -> None:
    assert sample(scrape(pool), "dockpool_members", state="ready") == 1
    pool.resize(3)
    pool.wait_until_full(timeout=5)
    assert sample(scrape(pool), "dockpool_members", state="ready") == 3
    assert sample(scrape(pool), "dockpool_target_size") == 3
    status = json.loads(scrape(pool, "/status"))
    assert [m["state"] for m in status["members"]] == ["ready"] * 3
    assert status["size"]["target"] == 3 and status["counts"]["ready"] == 3


def test_the_endpoint_moves_with_the_config_and_a_busy_port_loses_nothing(
    pool: ContainerPool,
) -> None:
    first = pool.metrics_endpoint.address
    assert first is not None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = Endpoint("127.0.0.1", busy.getsockname()[1])
        pool.apply_config(attrs.evolve(pool.config, metrics=taken))
        assert "cannot listen on" in pool.metrics_endpoint.error
        assert pool.metrics_endpoint.address == first  # the old one still serves
        assert "dockpool_claims_total" in scrape(pool)
        assert pool.started
    pool.apply_config(attrs.evolve(pool.config, metrics=None))
    assert pool.metrics_endpoint.address is None
    with pytest.raises(OSError):
        urllib.request.urlopen(first.url("/metrics"), timeout=2)
    pool.apply_config(attrs.evolve(pool.config, metrics=ANY_PORT))
    assert "dockpool_members" in scrape(pool)


def test_the_config_file_names_the_address_and_rejects_a_bad_one() -> None:
    base = '[sandbox]\ncontainer_pool_size = 1\n[dockpool]\nimage = "img:1"\n'
    cfg = PoolConfig.from_toml_text(base + '[dockpool.metrics]\naddress = "127.0.0.1:9464"\n')
    assert cfg.metrics == Endpoint("127.0.0.1", 9464)
    assert PoolConfig.from_toml_text(base).metrics is None
    for bad, says in [("nonsense", "not host:port"), ("127.0.0.1:99999", "65535"),
                      ("example.com:80", "not an IP address")]:  # fmt: skip
        with pytest.raises(Exception, match=says) as info:
            PoolConfig.from_toml_text(base + f'[dockpool.metrics]\naddress = "{bad}"\n')
        assert "[dockpool.metrics] address (line 6)" in str(info.value)


def view(status: dict[str, Any]) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(render(status))
    return console.export_text()


def test_the_view_shows_what_an_operator_asks_for(pool: ContainerPool) -> None:
    pool.claim("one", timeout=10)
    assert wait_for(lambda: pool.stats().ready == 1)
    text = view(pool.status())
    member = pool.status()["members"][0]
    assert member["name"] in text and member["id"] in text
    assert "pool fake" in text and "target 1 (floor 1" in text
    assert "claims: 1 hit, 0 cold, 0 failed; hit rate 100%" in text
    assert "member_claimed" in text and "one" in text  # the recent events
    assert "p50 / p99" in text


def test_the_engine_view_tells_members_from_claimed_sandboxes(
    pool: ContainerPool, docker: FakeDocker
) -> None:
    pool.claim("sess-a", timeout=10)
    assert wait_for(lambda: pool.stats().ready == 1)
    status = engine_status(docker)
    (entry,) = status["pools"]
    assert [r["name"] for r in entry["claimed"]] == ["sess-a"]
    assert len(entry["members"]) == 1 and entry["processes"] == 1 and entry["leader"]
    text = view(status)
    assert "pool fake: 1 unclaimed, 1 claimed, 1 process(es), a leader" in text
    assert "sess-a" in text and "claimed" in text
