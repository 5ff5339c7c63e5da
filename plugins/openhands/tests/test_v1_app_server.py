"""The real OpenHands app server (uvicorn, a subprocess) with the plugin selected by environment
variables only: the pool warms when the app starts, sandboxes started over HTTP are renamed
members, and SIGTERM (how `docker stop`, systemd and Kubernetes stop it) leaves no warm member
behind while the claimed sandbox keeps running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from oh_common import AGENT_IMAGE, RUN, pool_name_for, require_image

from dockpool import POOL_LABEL
from dockpool._core.spec import ROLE_LABEL

pytestmark = pytest.mark.oh1

#: Not under the other tests' prefix (oh-t<run>-): their services would count this test's
#: sandboxes as running ones. Still named after the run, so the session's cleanup finds them.
PREFIX = f"ohapp-t{RUN}-"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(tmp_path: Path, pool: str, *, lifespan: bool) -> dict[str, str]:
    spec = {"id": AGENT_IMAGE, "command": ["--port", "8000"], "working_dir": "/workspace/project"}
    env = {
        **os.environ,
        "OH_SANDBOX_KIND": "dockpool_openhands.PooledDockerSandboxServiceInjector",
        "OH_SANDBOX_POOL_SIZE": "1",
        "OH_SANDBOX_POOL_NAME": pool,
        "OH_SANDBOX_CONTAINER_NAME_PREFIX": PREFIX,
        # this machine may be a container (/.dockerenv): keep sandbox URLs on 127.0.0.1
        "OH_SANDBOX_CONTAINER_URL_PATTERN": "http://127.0.0.1:{port}",
        "OH_SANDBOX_SPEC_KIND": "DockerSandboxSpecServiceInjector",
        "OH_SANDBOX_SPEC_PULL_IF_MISSING": "0",
        "OH_SANDBOX_SPEC_SPECS": json.dumps([spec]),
        "OH_PERSISTENCE_DIR": str(tmp_path / "persistence"),
        "SERVE_FRONTEND": "false",
    }
    if lifespan:
        env["OH_LIFESPAN_KIND"] = "dockpool_openhands.PooledAppLifespanService"
    return env


class AppServer:
    """`uvicorn openhands.app_server.app:app` on a free port, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "uvicorn", "openhands.app_server.app:app",
               "--host", "0.0.0.0", "--port", str(self.port)]  # fmt: skip
        with log.open("w") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_up(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"app server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"app server not up in {timeout} s: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[AppServer]]:
    started: list[AppServer] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


def rows(api: Any, pool: str) -> list[dict[str, Any]]:
    return list(api.containers(all=True, filters={"label": f"{POOL_LABEL}={pool}"}))


def warm(api: Any, pool_prefix: str) -> list[dict[str, Any]]:
    """Unclaimed members (named dockpool-...) of the pool whose name starts with the prefix."""
    return [
        r
        for r in api.containers(all=True)
        if (r.get("Labels") or {}).get(POOL_LABEL, "").startswith(pool_prefix)
        and any(str(n).lstrip("/").startswith("dockpool-") for n in r.get("Names") or ())
        and (r.get("Labels") or {}).get(ROLE_LABEL) == "member"
    ]


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_pool_follows_the_app_servers_life(
    docker_api: Any, servers: list[AppServer], tmp_path: Path
) -> None:
    require_image(docker_api, AGENT_IMAGE)
    pool = pool_name_for("app")
    server = AppServer(app_env(tmp_path, pool, lifespan=True), tmp_path / "app.log")
    servers.append(server)
    server.wait_up()
    # Warm at start: no request has touched the sandbox service yet.
    wait_for(lambda: any(r["State"] == "running" for r in warm(docker_api, pool)), 120,
             "a warm member started with the app")  # fmt: skip

    with httpx.Client(base_url=server.url, timeout=120) as http:
        wait_for(lambda: "(healthy)" in " ".join(r["Status"] for r in warm(docker_api, pool)),
                 180, "the warm member healthy")  # fmt: skip
        time.sleep(1.0)  # dockpool's own readiness probe follows the health check
        started = http.post("/api/v1/sandboxes")
        assert started.status_code == 200, started.text
        sandbox = started.json()
        assert sandbox["id"].startswith(PREFIX) and sandbox["status"] == "RUNNING"
        claimed = docker_api.inspect_container(sandbox["id"])
        assert claimed["Config"]["Labels"][POOL_LABEL].startswith(pool)  # a renamed member
        listed = http.get("/api/v1/sandboxes/search").json()["items"]
        assert sandbox["id"] in {item["id"] for item in listed}
        assert all(item["id"].startswith(PREFIX) for item in listed)  # no warm member listed
        wait_for(lambda: warm(docker_api, pool), 60, "the refill")

    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    assert warm(docker_api, pool) == [], "SIGTERM left warm members behind"
    kept = docker_api.inspect_container(sandbox["id"])
    assert kept["State"]["Running"], "the claimed sandbox belongs to its session: it stays"
    docker_api.remove_container(sandbox["id"], force=True)
