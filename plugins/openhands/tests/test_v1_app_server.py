"""The real OpenHands app server (uvicorn, a subprocess) with the plugin selected by environment
variables only: the pool warms when the app starts, sandboxes started over HTTP are renamed
members, and SIGTERM (how `docker stop`, systemd and Kubernetes stop it) leaves no warm member
behind while the claimed sandbox keeps running."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from oh_app import (
    AppServer,
    app_env,
    configure_llm,
    delete_sandbox,
    follow,
    free_port,
    start_conversation,
    stream_start,
    wait_warm,
    warm,
)
from oh_common import AGENT_IMAGE, RUN, pool_name_for, require_image

from dockpool import POOL_LABEL
from dockpool._core.spec import ORIGIN_LABEL, OWNER_LABEL, ROLE_LABEL

pytestmark = pytest.mark.oh1

#: Not under the other tests' prefix (oh-t<run>-): their services would count this test's
#: sandboxes as running ones. Still named after the run, so the session's cleanup finds them.
PREFIX = f"ohapp-t{RUN}-"


@pytest.fixture
def servers() -> Iterator[list[AppServer]]:
    started: list[AppServer] = []
    yield started
    for server in started:
        server.kill()


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
    """Warm at start; a conversation READY on a renamed member (polled, then streamed); warm
    members never listed; delete works; SIGTERM drains the pool and keeps the claimed sandbox."""
    require_image(docker_api, AGENT_IMAGE)
    pool = pool_name_for("app")
    port = free_port()
    env = app_env(tmp_path / "persistence", port, PREFIX, pool=pool)
    server = AppServer(env, port, tmp_path / "app.log")
    servers.append(server)
    server.wait_up()
    # Warm at start: no request has touched the sandbox service yet.
    wait_for(lambda: any(r["State"] == "running" for r in warm(docker_api, pool)), 120,
             "a warm member started with the app")  # fmt: skip

    with httpx.Client(base_url=server.url, timeout=120) as http:
        configure_llm(http)
        wait_warm(docker_api, pool, 1, timeout=180)
        task = start_conversation(http)
        [got] = follow(http, [task]).values()
        assert got["status"] == "READY", got
        sandbox_id = got["sandbox_id"]
        assert sandbox_id.startswith(PREFIX)
        labels = docker_api.inspect_container(sandbox_id)["Config"]["Labels"]
        assert labels[POOL_LABEL].startswith(pool)  # a renamed member
        listed = http.get("/api/v1/sandboxes/search").json()["items"]
        assert sandbox_id in {item["id"] for item in listed}
        assert all(item["id"].startswith(PREFIX) for item in listed)  # no warm member listed
        delete_sandbox(http, sandbox_id)
        wait_for(lambda: not docker_api.containers(all=True, filters={"name": sandbox_id}), 30,
                 "the deleted sandbox's container gone")  # fmt: skip

        # The streaming start (each change of the start task as it happens) takes the same path.
        wait_warm(docker_api, pool, 1, timeout=180)
        [streamed] = stream_start(http).values()
        assert streamed["status"] == "READY", streamed
        assert list(streamed["seen"])[-1] == "READY" and streamed["sandbox_id"] != sandbox_id
        labels = docker_api.inspect_container(streamed["sandbox_id"])["Config"]["Labels"]
        assert labels[POOL_LABEL].startswith(pool)
        delete_sandbox(http, streamed["sandbox_id"])

        kept = http.post("/api/v1/sandboxes")  # one more, left running across the stop
        assert kept.status_code == 200, kept.text
        kept_id = kept.json()["id"]
        wait_for(lambda: warm(docker_api, pool), 60, "the refill")

    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    assert warm(docker_api, pool) == [], "SIGTERM left warm members behind"
    state = docker_api.inspect_container(kept_id)["State"]
    assert state["Running"], "the claimed sandbox belongs to its session: it stays"
    docker_api.remove_container(kept_id, force=True)


def test_three_workers_share_one_pool(
    docker_api: Any, servers: list[AppServer], tmp_path: Path
) -> None:
    """`uvicorn --workers 3` (three processes, each with its pools): a burst of 4 conversations
    against a pool of 2, each POST on its own connection (spread over the workers), all READY,
    each in its own container; SIGTERM to the parent stops every worker and leaves no warm
    member, and the claimed sandboxes keep running."""
    require_image(docker_api, AGENT_IMAGE)
    pool = pool_name_for("workers")
    port = free_port()
    env = app_env(tmp_path / "persistence", port, PREFIX, pool=pool, size=2)
    server = AppServer(env, port, tmp_path / "app.log", workers=3)
    servers.append(server)
    server.wait_up()
    claimed: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            configure_llm(http)
            wait_warm(docker_api, pool, 2, timeout=240)
            presences = docker_api.containers(all=True, filters={"label": f"{ROLE_LABEL}=presence"})
            owners = {row["Labels"].get(OWNER_LABEL) for row in presences
                      if row["Labels"].get(POOL_LABEL, "").startswith(pool)}  # fmt: skip
            assert len(owners) == 3, owners  # each worker's process joined the one pool

            def post(_: int) -> str:
                with httpx.Client(base_url=server.url, timeout=120) as own:  # own connection
                    return start_conversation(own)

            with ThreadPoolExecutor(4) as threads:
                tasks = list(threads.map(post, range(4)))
            got = follow(http, tasks)
            claimed = [g["sandbox_id"] for g in got.values() if g.get("sandbox_id")]
            assert [g["status"] for g in got.values()] == ["READY"] * 4, got
            containers = {docker_api.inspect_container(s)["Id"] for s in claimed}
            assert len(set(claimed)) == len(containers) == 4  # one container per conversation
            labels = [docker_api.inspect_container(s)["Config"]["Labels"] for s in claimed]
            hits = [POOL_LABEL in lab and lab.get(ORIGIN_LABEL) != "cold" for lab in labels]
            assert sum(hits) == 2, labels  # both warm members served, each to one conversation
            wait_for(lambda: warm(docker_api, pool), 120, "the refill")

        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
        assert warm(docker_api, pool) == [], "SIGTERM left warm members behind"
        for sandbox in claimed:
            assert docker_api.inspect_container(sandbox)["State"]["Running"], sandbox
    finally:
        for sandbox in claimed:
            with contextlib.suppress(Exception):  # the session's sweep retries it
                docker_api.remove_container(sandbox, force=True)


def test_only_the_sandbox_variable_leaks_no_container(
    docker_api: Any, servers: list[AppServer], tmp_path: Path
) -> None:
    """Only OH_SANDBOX_KIND set (the lifespan service forgotten): the pool starts with the
    first request, and SIGTERM still leaves no warm member (a SIGTERM hook of the pools',
    chained to uvicorn's; 5 were left running before), with a warning that says why."""
    require_image(docker_api, AGENT_IMAGE)
    pool = pool_name_for("onevar")
    port = free_port()
    env = app_env(tmp_path / "persistence", port, PREFIX, pool=pool, size=2, lifespan=False)
    log = tmp_path / "app.log"
    server = AppServer(env, port, log)
    servers.append(server)
    server.wait_up()
    with httpx.Client(base_url=server.url, timeout=120) as http:
        assert http.get("/api/v1/sandboxes/search").status_code == 200  # the first injection
        wait_warm(docker_api, pool, 2, timeout=240)
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    assert warm(docker_api, pool) == [], "SIGTERM left warm members behind"
    # (OpenHands' rich handler wraps the message into columns: compare without whitespace)
    assert "drainedbyaSIGTERMhookoftheirown" in "".join(log.read_text().split())
