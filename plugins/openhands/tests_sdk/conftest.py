"""Fixtures of the SDK tests: the engine, the agent-server image, and container hygiene.

These run in a venv with openhands-sdk/-workspace (no openhands-ai: see run-tests.sh). Every
pool a test makes is named `t<run id>-...`, and every stock workspace's container is recorded;
all of them are removed at the end of the session, failed or not.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import docker
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENHANDS_SUPPRESS_BANNER", "1")

RUN = os.environ.get("DOCKPOOL_TEST_RUN") or secrets.token_hex(3)
IMAGE = os.environ.get("DOCKPOOL_AGENT_IMAGE_REF", "dockpool-agent-server:1.58.2")


def pytest_report_header(config: pytest.Config) -> str:
    return f"agent-server image {IMAGE}; test run id {RUN} (pool names t{RUN}...)"


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # pragma: no cover - the environment, not the code
        pytest.skip(f"no Docker engine: {exc}")
    try:
        client.api.inspect_image(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {IMAGE} is missing (scripts/build-agent-server-image.sh --version)")
    yield client.api
    client.close()


def _ours(row: dict[str, Any]) -> bool:
    pool = str((row.get("Labels") or {}).get("dockpool.pool", ""))
    return pool.startswith(f"t{RUN}")


@pytest.fixture(scope="session", autouse=True)
def _hygiene(docker_api: Any) -> Iterator[None]:
    """Close this run's pools, then remove every container of the run."""
    yield
    from dockpool_openhands.workspace import POOLS

    POOLS.close_all(timeout=30)
    for row in docker_api.containers(all=True):
        if _ours(row):
            docker_api.remove_container(row["Id"], force=True)


@pytest.fixture
def pool_prefix(request: pytest.FixtureRequest) -> str:
    """A pool-name prefix of this run and test (pool names: <prefix>-<spec fingerprint>)."""
    return f"t{RUN}-{request.node.name}"[:20]
