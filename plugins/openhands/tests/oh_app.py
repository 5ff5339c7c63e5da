"""The real OpenHands 1.x app server as a subprocess, driven over HTTP as its web front end does.

Shared by the end-to-end test (test_v1_app_server.py) and the benchmark (bench_app.py). Facts
it relies on (openhands-ai 1.11.0): settings are `POST /api/v1/settings` with an
`agent_settings_diff` (a dummy model is enough: no message is sent); a conversation starts with
`POST /api/v1/app-conversations` and its start task is read with
`GET /api/v1/app-conversations/start-tasks?ids=...`; `DELETE /api/v1/sandboxes/{id}` wants
`?sandbox_id=` too; the server throttles a client at about 10 requests per second.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from oh_common import AGENT_IMAGE

from dockpool import POOL_LABEL
from dockpool._core.spec import ROLE_LABEL

PHASES = (
    "WORKING",
    "WAITING_FOR_SANDBOX",
    "PREPARING_REPOSITORY",
    "RUNNING_SETUP_SCRIPT",
    "SETTING_UP_GIT_HOOKS",
    "SETTING_UP_SKILLS",
    "STARTING_CONVERSATION",
    "READY",
)
#: Between two reads of the start tasks (the server throttles at about 10 requests/s).
POLL = 0.15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def app_env(
    persistence: Path, port: int, prefix: str, *, pool: str | None, size: int = 1,
    lifespan: bool = True, image: str = AGENT_IMAGE,
) -> dict[str, str]:  # fmt: skip
    """The app server's environment: the plugin (pool `pool`), or the stock Docker service
    (`pool=None`), selected by environment variables only."""
    spec = {"id": image, "command": ["--port", "8000"], "working_dir": "/workspace/project"}
    env = {
        **os.environ,
        "OH_SANDBOX_KIND": "DockerSandboxServiceInjector",
        "OH_SANDBOX_CONTAINER_NAME_PREFIX": prefix,
        # agent servers call back at host.docker.internal:<host_port>: where this one listens
        "OH_SANDBOX_HOST_PORT": str(port),
        # room for the runs' sandboxes and the pool: the pool yields to running sandboxes
        "OH_SANDBOX_MAX_NUM_SANDBOXES": "20",
        # this machine may be a container (/.dockerenv): keep sandbox URLs on 127.0.0.1
        "OH_SANDBOX_CONTAINER_URL_PATTERN": "http://127.0.0.1:{port}",
        "OH_SANDBOX_SPEC_KIND": "DockerSandboxSpecServiceInjector",
        "OH_SANDBOX_SPEC_PULL_IF_MISSING": "0",
        "OH_SANDBOX_SPEC_SPECS": json.dumps([spec]),
        "OH_PERSISTENCE_DIR": str(persistence),
        "SERVE_FRONTEND": "false",
        "OPENHANDS_SUPPRESS_BANNER": "1",
    }
    if pool is not None:
        env["OH_SANDBOX_KIND"] = "dockpool_openhands.PooledDockerSandboxServiceInjector"
        env["OH_SANDBOX_POOL_SIZE"] = str(size)
        env["OH_SANDBOX_POOL_NAME"] = pool
        if lifespan:
            env["OH_LIFESPAN_KIND"] = "dockpool_openhands.PooledAppLifespanService"
    return env


#: Runs OpenHands' database migrations once (what its lifespan does at every start).
MIGRATE = (
    "from openhands.app_server.app_lifespan.oss_app_lifespan_service import "
    "OssAppLifespanService as S; S().run_alembic()"
)


class AppServer:
    """`uvicorn openhands.app_server.app:app` on 0.0.0.0:`port`, its output in `log`.

    With several workers, each would run OpenHands' migrations at its start, at once, on one
    SQLite file, and all but one fail ("table ... already exists": OpenHands 1.11.0 in local
    mode). So the migrations run once first, and the workers are told not to.
    """

    def __init__(self, env: dict[str, str], port: int, log: Path, workers: int = 1) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        cmd = [sys.executable, "-m", "uvicorn", "openhands.app_server.app:app",
               "--host", "0.0.0.0", "--port", str(port)]  # fmt: skip
        if workers > 1:
            cmd += ["--workers", str(workers)]
            subprocess.run([sys.executable, "-c", MIGRATE], env=env, check=True,
                           capture_output=True)  # fmt: skip
            env = {**env, "OH_LIFESPAN_RUN_ALEMBIC_ON_STARTUP": "false"}
        with log.open("w") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_up(self, timeout: float = 180.0) -> float:
        """Seconds until `/health` answers."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"app server exited: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"app server not up in {timeout} s: {self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def configure_llm(http: httpx.Client) -> None:
    diff = {"llm": {"model": "openai/dockpool-dummy", "api_key": "dummy"}}
    answer = http.post("/api/v1/settings", json={"agent_settings_diff": diff})
    assert answer.status_code < 300, answer.text


def start_conversation(http: httpx.Client, sandbox_id: str | None = None) -> str:
    """Start a conversation (in the running sandbox `sandbox_id`, if given); the ID of its
    start task."""
    body = {"sandbox_id": sandbox_id} if sandbox_id else {}
    answer = http.post("/api/v1/app-conversations", json=body)
    assert answer.status_code < 300, answer.text
    return str(answer.json()["id"])


Tasks = dict[str, dict[str, Any]]


def follow(
    http: httpx.Client, tasks: list[str], timeout: float = 300.0, started: float | None = None
) -> Tasks:
    """Read the start tasks until each is READY or ERROR. Per task: `seen` (phase -> seconds
    from `started` (time.monotonic(), default: this call) to the first read that showed it),
    `status`, `sandbox_id`, `detail`, and at READY `server` (the task's own created_at ->
    updated_at: the app server's time, without the client's polling)."""
    started = time.monotonic() if started is None else started
    out: Tasks = {t: {"seen": {}, "status": None} for t in tasks}
    pending = set(tasks)
    while pending and time.monotonic() - started < timeout:
        answer = http.get("/api/v1/app-conversations/start-tasks", params={"ids": sorted(pending)})
        if answer.status_code == 429:
            time.sleep(1.0)
            continue
        assert answer.status_code == 200, answer.text
        now = time.monotonic() - started
        for task in answer.json():
            if not task:
                continue
            got = out[task["id"]]
            got["seen"].setdefault(task["status"], now)
            got.update(status=task["status"], sandbox_id=task.get("sandbox_id"),
                       detail=task.get("detail"))  # fmt: skip
            if task["status"] in ("READY", "ERROR"):
                pending.discard(task["id"])
                got["server"] = _server_seconds(task)
        time.sleep(POLL)
    for task in pending:
        out[task]["status"] = "TIMEOUT"
    return out


def stream_start(
    http: httpx.Client, sandbox_id: str | None = None, started: float | None = None
) -> Tasks:
    """Start a conversation with `POST /api/v1/app-conversations/stream-start`, which answers
    with the start task at each of its changes (a JSON list: "[", then one task per line, the
    comma after it, until READY or ERROR): the same record as `follow`, with each phase seen
    when the server sent it, no polling."""
    started = time.monotonic() if started is None else started
    body = {"sandbox_id": sandbox_id} if sandbox_id else {}
    got: dict[str, Any] = {"seen": {}, "status": None}
    task_id = "?"
    with http.stream("POST", "/api/v1/app-conversations/stream-start", json=body) as answer:
        assert answer.status_code < 300, answer.read()
        for line in answer.iter_lines():
            text = line.strip().strip("[],").strip()  # "[", "{task},", "{task}]"
            if not text.startswith("{"):
                continue
            task = json.loads(text)
            task_id = str(task.get("id", task_id))
            got["seen"].setdefault(task["status"], time.monotonic() - started)
            got.update(status=task["status"], sandbox_id=task.get("sandbox_id"),
                       detail=task.get("detail"))  # fmt: skip
            if task["status"] in ("READY", "ERROR"):
                got["server"] = _server_seconds(task)
    return {task_id: got}


def _server_seconds(task: dict[str, Any]) -> float | None:
    try:
        made, done = (datetime.fromisoformat(task[k]) for k in ("created_at", "updated_at"))
    except (KeyError, TypeError, ValueError):
        return None
    return (done - made).total_seconds()


def delete_sandbox(http: httpx.Client, sandbox_id: str) -> None:
    answer = http.delete(f"/api/v1/sandboxes/{sandbox_id}", params={"sandbox_id": sandbox_id})
    assert answer.status_code < 300, answer.text


def warm(api: Any, pool_prefix: str) -> list[dict[str, Any]]:
    """Unclaimed members (named dockpool-...) of the pools whose names start with the prefix."""
    return [
        row
        for row in api.containers(all=True)
        if (row.get("Labels") or {}).get(POOL_LABEL, "").startswith(pool_prefix)
        and (row.get("Labels") or {}).get(ROLE_LABEL) == "member"
        and any(str(n).lstrip("/").startswith("dockpool-") for n in row.get("Names") or ())
    ]


def answering(row: dict[str, Any], port: int = 8000) -> bool:
    """The member's agent server answers `/ready` on its published port (what dockpool's
    readiness probe asks: within its 50 ms interval the member is ready for a claim). Docker's
    own "(healthy)" may come much later: engines before API 1.44 ignore `start_interval`."""
    for binding in row.get("Ports") or ():
        if binding.get("PrivatePort") == port and binding.get("PublicPort"):
            try:
                url = f"http://127.0.0.1:{binding['PublicPort']}/ready"
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
    return False


def wait_warm(api: Any, pool_prefix: str, size: int, timeout: float = 300.0) -> None:
    """Until `size` unclaimed members answer."""
    deadline = time.monotonic() + timeout
    while sum(answering(r) for r in warm(api, pool_prefix)) < size:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pool {pool_prefix}: {size} members not answering in {timeout} s")
        time.sleep(0.25)
    # dockpool's probe sees them within 50 ms, then warms them (a bash command and a skills
    # load: under a second here); no outside sign tells when that is done
    time.sleep(2.0)
