"""Constants shared by the tests (imported by conftest and the test modules)."""

from __future__ import annotations

import importlib.metadata
import os
import secrets
from typing import Any

import docker
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENHANDS_SUPPRESS_BANNER", "1")

OH_VERSION = importlib.metadata.version("openhands-ai")
OH_MAJOR = int(OH_VERSION.split(".")[0])
RUN = os.environ.get("DOCKPOOL_TEST_RUN") or secrets.token_hex(3)
TEST_LABEL = "dockpool-openhands.test"
AGENT_IMAGE = os.environ.get("DOCKPOOL_AGENT_IMAGE_REF", "dockpool-agent-server:1.34.0")
STUB_IMAGE = "dockpool-stub:latest"


def pool_name_for(test: str) -> str:
    """A pool name that marks the pool's containers as this run's (max 32 chars)."""
    return f"t{RUN}-{test}"[:32]


def require_image(api: Any, image: str) -> None:
    try:
        api.inspect_image(image)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {image} is missing (build it: see plugins/openhands/run-tests.sh)")


#: Lines for the end-of-session summary (e.g. which of OpenHands' own tests ran and passed).
SUMMARY: list[str] = []
