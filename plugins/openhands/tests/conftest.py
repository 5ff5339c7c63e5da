"""Shared fixtures: the OpenHands generation installed, the engine, and container hygiene.

Every container a test run creates is labelled `dockpool-openhands.test=<run id>` (the stock
OpenHands paths, through a wrapper around docker-py's `containers.run`) or belongs to a pool
whose name starts with `t<run id>` (label `dockpool.pool`), or is named after the run. All of
them are removed at the end of the session, failed or not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from oh_common import OH_MAJOR, OH_VERSION, RUN, SUMMARY, TEST_LABEL


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect only the tests of the installed OpenHands generation (test_v1_* / test_v0_*)."""
    name = collection_path.name
    if name.startswith("test_v1_") and OH_MAJOR < 1:
        return True
    if name.startswith("test_v0_") and OH_MAJOR >= 1:
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str:
    return f"openhands-ai {OH_VERSION}; test run id {RUN} (pool names t{RUN}...)"


def _ours(row: dict[str, Any]) -> bool:
    labels = row.get("Labels") or {}
    names = [str(n).lstrip("/") for n in row.get("Names") or []]
    return (
        labels.get(TEST_LABEL) == RUN
        or labels.get("dockpool.pool", "").startswith(f"t{RUN}")
        or any(f"t{RUN}" in n for n in names)
    )


def remove_our_containers(api: Any) -> int:
    removed = 0
    for row in api.containers(all=True):
        if _ours(row):
            try:
                api.remove_container(row["Id"], force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
    return removed


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # pragma: no cover - the environment, not the code
        pytest.skip(f"no Docker engine: {exc}")
    yield client.api
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _container_hygiene() -> Iterator[None]:
    """Label stock-path containers with the run id; remove every container of the run at the
    end of the session (also when tests fail)."""
    from docker.models.containers import ContainerCollection

    original_run = ContainerCollection.run

    def labelled_run(self: Any, image: Any, command: Any = None, **kwargs: Any) -> Any:
        kwargs["labels"] = {**(kwargs.get("labels") or {}), TEST_LABEL: RUN}
        return original_run(self, image, command, **kwargs)

    ContainerCollection.run = labelled_run
    try:
        yield
    finally:
        ContainerCollection.run = original_run
        client = _engine_client(wait=60.0)
        try:
            remove_our_containers(client.api)
        finally:
            client.close()


def _engine_client(wait: float) -> Any:
    """A client of the engine, waiting up to `wait` seconds for it (it may be restarting)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            client = docker.from_env()
            client.ping()
            return client
        except docker.errors.DockerException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


@pytest.fixture(scope="session", autouse=True)
def _engine_ports_on_localhost() -> Iterator[None]:
    """This machine may itself be a container (/.dockerenv) running its own engine, whose
    published ports are on localhost. OpenHands 1.x would then rewrite `localhost` in sandbox
    URLs to `host.docker.internal` (meant for an app server in a container next to the host's
    engine), which does not resolve here. Tell it it is not in a container."""
    if OH_MAJOR < 1:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:  # by name: the module is 1.x-only
        patch.setattr("openhands.app_server.utils.docker_utils.is_running_in_docker", lambda: False)
        yield


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("dockpool-openhands")
        for line in SUMMARY:
            terminalreporter.write_line(line)
