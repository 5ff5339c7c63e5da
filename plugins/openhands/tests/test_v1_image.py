"""plugins/openhands/Dockerfile on an OpenHands app image (here the local stand-in, see
images/openhands-app): run as OpenHands' image is run (the engine's socket mounted,
host.docker.internal mapped to the host, a bridge network), the pool warms at the app's start,
a conversation gets a renamed member, and `docker stop` (SIGTERM) leaves no warm member behind
while the claimed sandbox keeps running."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import pytest
from oh_app import configure_llm, follow, free_port, start_conversation, wait_warm, warm
from oh_common import AGENT_IMAGE, RUN, TEST_LABEL, pool_name_for, require_image

from dockpool import POOL_LABEL

pytestmark = pytest.mark.oh1

IMAGE = os.environ.get("DOCKPOOL_OH_APP_IMAGE", "dockpool-openhands-app-dockpool:1.11.0")
PREFIX = f"ohimg-t{RUN}-"


def test_the_derived_image_serves_warm_sandboxes(docker_api: Any) -> None:
    require_image(docker_api, IMAGE)
    require_image(docker_api, AGENT_IMAGE)
    pool = pool_name_for("image")
    port = free_port()
    spec = {"id": AGENT_IMAGE, "command": ["--port", "8000"], "working_dir": "/workspace/project"}
    env = {
        "OH_SANDBOX_CONTAINER_NAME_PREFIX": PREFIX,
        "OH_SANDBOX_HOST_PORT": str(port),  # where sandboxes reach this app: the published port
        "OH_SANDBOX_MAX_NUM_SANDBOXES": "20",
        "OH_SANDBOX_SPEC_KIND": "DockerSandboxSpecServiceInjector",
        "OH_SANDBOX_SPEC_PULL_IF_MISSING": "0",
        "OH_SANDBOX_SPEC_SPECS": json.dumps([spec]),
        "OH_SANDBOX_POOL_SIZE": "1",
        "OH_SANDBOX_POOL_NAME": pool,
        "SERVE_FRONTEND": "false",
        "OPENHANDS_SUPPRESS_BANNER": "1",
    }
    host_config = docker_api.create_host_config(
        port_bindings={3000: ("0.0.0.0", port)},
        binds=["/var/run/docker.sock:/var/run/docker.sock"],
        extra_hosts={"host.docker.internal": "host-gateway"},
    )
    app = docker_api.create_container(
        IMAGE, environment=env, host_config=host_config, ports=[3000],
        labels={TEST_LABEL: RUN}, name=f"ohimg-app-t{RUN}",
    )["Id"]  # fmt: skip
    kept = None
    try:
        docker_api.start(app)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, docker_api.logs(app, tail=60).decode()
            time.sleep(0.5)
        wait_warm(docker_api, pool, 1, timeout=240)  # warm at start: no request yet
        with httpx.Client(base_url=url, timeout=120) as http:
            configure_llm(http)
            [got] = follow(http, [start_conversation(http)]).values()
            assert got["status"] == "READY", (got, docker_api.logs(app, tail=60).decode())
            kept = got["sandbox_id"]
            assert kept.startswith(PREFIX)
            labels = docker_api.inspect_container(kept)["Config"]["Labels"]
            assert labels[POOL_LABEL].startswith(pool)  # a renamed member
        deadline = time.monotonic() + 120
        while not warm(docker_api, pool):  # the refill
            assert time.monotonic() < deadline, "no refill"
            time.sleep(0.5)
        docker_api.stop(app, timeout=60)  # SIGTERM, as docker stop sends it
        assert warm(docker_api, pool) == [], "docker stop left warm members behind"
        assert docker_api.inspect_container(kept)["State"]["Running"], "the claimed one stays"
    finally:
        docker_api.remove_container(app, force=True)
        if kept is not None:
            docker_api.remove_container(kept, force=True)
