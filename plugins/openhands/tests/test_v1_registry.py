"""The pool registry on the real engine with the stand-in image (fast; no OpenHands needed,
run in the 1.x environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockpool_openhands import registry as registry_module
from dockpool_openhands.pool import PoolSettings, SandboxPool, ignored_keys
from dockpool_openhands.registry import PoolRegistry
from oh_common import STUB_IMAGE, pool_name_for, require_image

from dockpool import POOL_LABEL, ConfigError, ContainerSpec, HealthCheck, PoolConfig

pytestmark = pytest.mark.oh1

FAST = HealthCheck(test=["CMD", "stub-check"], interval=0.2, timeout=1, retries=1)


def stub_spec(**changes: Any) -> ContainerSpec:
    return ContainerSpec(
        image=STUB_IMAGE,
        ports=[8000],
        environment={"STUB_PORT": "8000"},
        healthcheck=FAST,
        random_env=["SESSION_KEY"],
        **changes,
    )


@pytest.fixture
def registry(docker_api: Any) -> Iterator[PoolRegistry]:
    require_image(docker_api, STUB_IMAGE)
    reg = PoolRegistry()
    yield reg
    reg.close_all()


def members(docker_api: Any, pool_name: str) -> list[dict[str, Any]]:
    return docker_api.containers(all=True, filters={"label": f"{POOL_LABEL}={pool_name}"})  # type: ignore[no-any-return]


def test_config_gives_size_and_limits_never_the_container() -> None:
    spec = stub_spec()
    file_config = PoolConfig.from_toml_text(
        textwrap.dedent(
            """
            [sandbox]
            container_pool_size = 3
            [dockpool]
            name = "from-file"
            image = "some-other-image:1"
            environment = { OTHER = "1" }
            max_containers = 5
            [dockpool.healthcheck]
            test = ["CMD", "true"]
            interval = 2
            """
        )
    )
    pool = SandboxPool(spec, file_config, name="sandbox-pool", cap=2)
    effective = pool.effective(file_config)
    assert effective.spec.image == STUB_IMAGE and effective.spec.environment == spec.environment
    assert effective.spec.healthcheck is not None and effective.spec.healthcheck.interval == 2
    assert effective.name == "sandbox-pool" and effective.max_containers == 5
    assert effective.size == 2  # capped
    assert ignored_keys(file_config.spec) == ["environment"]


def test_claims_headroom_and_claim_times(registry: PoolRegistry, docker_api: Any) -> None:
    settings = PoolSettings(size=2, name=pool_name_for("reg"))
    pool = registry.pool_for(stub_spec(), settings)
    assert pool is not None and registry.pool_for(stub_spec(), settings) is pool
    pool.wait_until_full(timeout=60)

    lease = registry.try_claim(pool, f"{pool_name_for('reg')}-claimed")
    assert lease is not None and lease.from_pool
    claimed = registry.claimed_at(lease.container_id)
    assert claimed is not None
    registry.forget(lease.name)
    assert registry.claimed_at(lease.container_id) is None

    registry.set_headroom(1)
    assert pool.config.size == 1
    registry.set_headroom(0)
    assert pool.config.size == 0
    registry.set_headroom(None)
    assert pool.config.size == 2

    other = registry.pool_for(stub_spec(labels={"x": "y"}), settings)
    assert other is not None and other.name != pool.name
    registry.set_headroom(3)  # the older pool takes 2, the newer what is left
    assert (pool.config.size, other.config.size) == (2, 1)


def test_empty_pool_claims_nothing(registry: PoolRegistry) -> None:
    pool = registry.pool_for(stub_spec(), PoolSettings(size=0, name=pool_name_for("zero")))
    assert pool is not None
    assert registry.try_claim(pool, f"{pool_name_for('zero')}-x") is None


def test_unstartable_pool_is_retried_later(
    registry: PoolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = ContainerSpec(image="dockpool-no-such-image:never")
    settings = PoolSettings(size=1, name=pool_name_for("missing"))
    assert registry.pool_for(missing, settings) is None
    monkeypatch.setattr(registry_module, "RETRY_AFTER", 0.0)
    assert registry.pool_for(missing, settings) is None  # tried again, still missing


def test_pools_are_drained_at_exit(docker_api: Any, tmp_path: Path) -> None:
    """A process that exits normally removes its unclaimed members (atexit)."""
    require_image(docker_api, STUB_IMAGE)
    name = pool_name_for("exit")
    script = tmp_path / "host.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from dockpool import ContainerSpec, HealthCheck
            from dockpool_openhands.registry import REGISTRY, PoolSettings
            spec = ContainerSpec(image={STUB_IMAGE!r}, ports=[8000],
                                 healthcheck=HealthCheck(test=["CMD", "stub-check"], interval=0.2))
            pool = REGISTRY.pool_for(spec, PoolSettings(size=2, name={name!r}))
            pool.wait_until_full(timeout=60)
            print(pool.name, flush=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120,
        env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pool_name = done.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 10
    while members(docker_api, pool_name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert members(docker_api, pool_name) == []


def test_a_plugin_pool_serves_metrics_and_status(registry: PoolRegistry) -> None:
    """OH_SANDBOX_POOL_METRICS: the plugin's pool serves /metrics and /status; a claim through
    the registry lands in the hit counter; a bad address is one clear ConfigError."""
    settings = PoolSettings(size=1, name=pool_name_for("metrics"), metrics="127.0.0.1:0")
    pool = registry.pool_for(stub_spec(), settings)
    assert pool is not None
    pool.wait_until_full(timeout=60)
    address = pool.metrics_endpoint.address
    assert address is not None, pool.metrics_endpoint.error
    lease = registry.try_claim(pool, f"{pool_name_for('metrics')}-claimed")
    assert lease is not None and lease.from_pool
    with urllib.request.urlopen(address.url("/metrics"), timeout=5) as answer:
        text = answer.read().decode()
    hit = f'dockpool_claims_total{{outcome="hit",pool="{pool.name}"}} 1.0'
    assert hit in text
    with urllib.request.urlopen(address.url("/status"), timeout=5) as answer:
        status = json.loads(answer.read())
    assert status["pool"] == pool.name and status["claims"]["hit"] == 1
    with pytest.raises(ConfigError, match="OH_SANDBOX_POOL_METRICS: 'nowhere' is not host:port"):
        PoolSettings(metrics="nowhere").pool_config(stub_spec())
