"""`PooledDockerWorkspace` against the real agent server (openhands-agent-server 1.58, in
dockpool-agent-server:<version>) and the real SDK client (openhands-workspace 1.58)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from conftest import IMAGE
from dockpool_openhands import PooledDockerWorkspace
from dockpool_openhands.workspace import POOLS
from openhands.workspace import DockerWorkspace

from dockpool import ImageNotFoundError


def program(make: Callable[..., DockerWorkspace], tmp_path: Path) -> dict[str, Any]:
    """A program written for `DockerWorkspace`: a command, a file up and back down."""
    local = tmp_path / "hello.txt"
    local.write_text("hello from the host\n")
    with make(server_image=IMAGE, detach_logs=False) as ws:
        echoed = ws.execute_command("echo ok")
        ws.file_upload(str(local), "/workspace/hello.txt")
        back = tmp_path / "back.txt"
        ws.file_download("/workspace/hello.txt", str(back))
        cat = ws.execute_command("cat /workspace/hello.txt")
        return {
            "echo": (echoed.exit_code, echoed.stdout.strip()),
            "cat": cat.stdout.strip(),
            "back": back.read_text(),
            "host": ws.host,
            "key": ws.api_key,
        }


def pooled(pool_prefix: str, size: int = 2) -> PooledDockerWorkspace:
    """A workspace of this test's pool (no log streaming: the tests print nothing)."""
    ws: PooledDockerWorkspace = PooledDockerWorkspace(
        server_image=IMAGE, pool_name=pool_prefix, pool_size=size, detach_logs=False
    )
    return ws


def members(api: Any, pool_prefix: str) -> list[dict[str, Any]]:
    rows = api.containers(all=True, filters={"label": "dockpool.role=member"})
    return [r for r in rows if r["Labels"].get("dockpool.pool", "").startswith(pool_prefix)]


def test_a_docker_workspace_program_runs_unchanged(
    docker_api: Any, pool_prefix: str, tmp_path: Path
) -> None:
    """The same program, given PooledDockerWorkspace instead of DockerWorkspace, works."""

    def make(**fields: Any) -> DockerWorkspace:
        ws: DockerWorkspace = PooledDockerWorkspace(pool_name=pool_prefix, pool_size=1, **fields)
        return ws

    result = program(make, tmp_path)
    assert result["echo"] == (0, "ok")
    assert result["cat"] == "hello from the host"
    assert result["back"] == "hello from the host\n"


def test_claimed_workspaces_answer_their_own_key_only(docker_api: Any, pool_prefix: str) -> None:
    """Each workspace's server accepts the key its workspace was handed (delivered at the
    claim), and refuses none and another's; the container it came from is removed at cleanup."""
    a = pooled(pool_prefix, 2)
    b = pooled(pool_prefix, 2)
    try:
        assert a.api_key and b.api_key and a.api_key != b.api_key
        url = f"{a.host}/api/bash/execute_bash_command"
        body = {"command": "echo hi", "timeout": 30}
        for key, status in ((a.api_key, 200), (b.api_key, 401), (None, 401)):
            headers = {"X-Session-API-Key": key} if key else {}
            assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == status
        cid = a._container_id
        assert cid is not None
    finally:
        a.cleanup()
        b.cleanup()
    with pytest.raises(Exception, match=r"No such container|404"):
        docker_api.inspect_container(cid)


def test_no_warm_member_holds_a_key_a_workspace_was_handed(
    docker_api: Any, pool_prefix: str
) -> None:
    """Inspect every member of the pool, warm and claimed: no environment variable or label
    holds a key any workspace was handed (the keys arrive by the claim's init only)."""
    made = [pooled(pool_prefix, 2) for _ in range(3)]
    try:
        keys = {ws.api_key for ws in made}
        assert None not in keys and len(keys) == 3
        rows = docker_api.containers(all=True, filters={"label": "dockpool.pool"})
        seen = [r for r in rows if r["Labels"]["dockpool.pool"].startswith(pool_prefix)]
        assert len(seen) >= 3
        for row in seen:
            try:
                config = docker_api.inspect_container(row["Id"])["Config"]
            except docker.errors.NotFound:
                continue  # a member retired meanwhile

            held = json.dumps({"env": config.get("Env"), "labels": config.get("Labels")})
            assert not [key for key in keys if key and key in held], row["Names"]
    finally:
        for ws in made:
            ws.cleanup()


def test_concurrent_workspaces_each_get_their_own_container(
    docker_api: Any, pool_prefix: str
) -> None:
    """Four workspaces at once from a pool of two: two warm, two cold starts through the pool;
    four containers, four keys, each answering."""
    made: list[PooledDockerWorkspace] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            made.append(pooled(pool_prefix, 2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    try:
        assert not errors, errors
        assert len({ws._container_id for ws in made}) == 4
        for ws in made:
            assert ws.execute_command("echo ok").stdout.strip() == "ok"
    finally:
        for ws in made:
            ws.cleanup()


def test_pause_and_resume(docker_api: Any, pool_prefix: str) -> None:
    """pause()/resume() act on the workspace's own container, as the stock ones do."""
    with pooled(pool_prefix, 1) as ws:
        ws.pause()
        assert docker_api.inspect_container(ws._container_id)["State"]["Paused"]
        ws.resume()
        assert ws.execute_command("echo back").stdout.strip() == "back"


def test_a_missing_image_is_one_clear_error(pool_prefix: str) -> None:
    """No pool can start for an image the engine lacks: one error naming it."""
    image = "dockpool-no-such-agent-server:0.0"
    with pytest.raises(ImageNotFoundError, match=image):
        PooledDockerWorkspace(server_image=image, pool_name=pool_prefix, pool_size=1)


def test_the_last_user_leaving_removes_the_warm_members(docker_api: Any, pool_prefix: str) -> None:
    """Closing the process's pools (what atexit does) removes the warm members; a claimed
    workspace's container is the workspace's until its cleanup."""
    ws = pooled(pool_prefix, 2)
    try:
        POOLS.close_all(timeout=30)
        left = members(docker_api, pool_prefix)
        assert [r["Id"] for r in left] == [ws._container_id]  # only the claimed one
        assert ws.execute_command("echo still").stdout.strip() == "still"
    finally:
        ws.cleanup()
    assert members(docker_api, pool_prefix) == []
