"""The operator's view on the real engine: metrics scraped while claims run, and `dockpool status`
as a person runs it, against a pool process and from the engine alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
import uuid
from typing import Any

import pytest

from dockpool._core.endpoint import Endpoint
from tests.pool_help import PoolFactory
from tests.unit.test_status import sample

pytestmark = pytest.mark.docker

FILL = 60.0


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def status_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "180", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dockpool.cli", "status", "--once", *args],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip


def test_metrics_follow_concurrent_claims_and_a_cold_fallback(pool_factory: PoolFactory) -> None:
    pool = pool_factory(2, metrics=Endpoint("127.0.0.1", 0))
    pool.wait_until_full(timeout=FILL)
    address = pool.metrics_endpoint.address
    assert address is not None
    url = address.url("/metrics")
    before = scrape(url)
    assert sample(before, "dockpool_members", state="ready") == 2
    leases: list[Any] = []
    scrapes: list[str] = []

    def claim(i: int) -> None:
        leases.append(pool.claim(f"st-{uuid.uuid4().hex[:6]}-{i}", timeout=FILL))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]  # 2 hits, 1 cold
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):  # scrapes while the claims run answer too
        scrapes.append(scrape(url))
    for t in threads:
        t.join()
    after = scrape(url)
    hits = sum(lease.from_pool for lease in leases)
    assert len(leases) == 3 and hits == sample(after, "dockpool_claims_total", outcome="hit")
    assert sample(after, "dockpool_claims_total", outcome="cold") == 3 - hits >= 1
    assert sample(after, "dockpool_claim_seconds_count", outcome="cold") == 3 - hits
    slowest_cold = max(lease.seconds for lease in leases if not lease.from_pool)
    assert sample(after, "dockpool_claim_seconds_sum", outcome="cold") >= slowest_cold
    assert scrapes and all("dockpool_claims_total" in s for s in scrapes)

    out = status_cli("--url", address.url())
    assert out.returncode == 0, out.stderr
    assert f"pool {pool.name}" in out.stdout and "claims: " in out.stdout
    for member in pool.status()["members"]:
        assert member["name"] in out.stdout
    as_json = json.loads(status_cli("--url", address.url(), "--json").stdout)
    assert as_json["claims"]["cold"] == 3 - hits and as_json["source"] == "process"


def test_status_from_the_engine_alone_lists_members_and_claimed_sandboxes(
    pool_factory: PoolFactory,
) -> None:
    pool = pool_factory(1)
    pool.wait_until_full(timeout=FILL)
    lease = pool.claim(f"st-{uuid.uuid4().hex[:8]}", timeout=FILL)
    pool.wait_until_full(timeout=FILL)
    out = status_cli("--engine", "--pool", pool.name)
    assert out.returncode == 0, out.stderr
    assert f"pool {pool.name}: 1 unclaimed, 1 claimed" in out.stdout
    assert lease.name in out.stdout
    (member,) = [c.name for c in pool_factory.containers() if c.name != lease.name]
    assert member in out.stdout
    data = json.loads(status_cli("--engine", "--pool", pool.name, "--json").stdout)
    (entry,) = data["pools"]
    assert [r["name"] for r in entry["claimed"]] == [lease.name]
    assert entry["processes"] == 1 and entry["leader"]
