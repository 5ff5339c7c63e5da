"""The engine scripts act on the engine DOCKER_HOST names, found by its pid file (two run here)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.engine_help import REPO_ROOT

pytestmark = pytest.mark.docker

ENGINES = {  # DOCKER_HOST -> pid file, as scripts/engines.sh has them
    "unix:///var/run/docker.sock": Path("/var/run/docker.pid"),
    "unix:///var/run/dockpool-docker28.sock": Path("/var/run/dockpool-docker28.pid"),
}


def _status(host: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "dockerd-ctl.sh"), "status"],
        env={**os.environ, "DOCKER_HOST": host},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_names_the_selected_engines_own_dockerd() -> None:
    running = {h: p for h, p in ENGINES.items() if p.exists() and _status(h).returncode == 0}
    if os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") not in running:
        pytest.skip("the engine under test is not one these scripts manage")
    for host, pidfile in running.items():
        out = _status(host).stdout
        pid = re.search(r"dockerd pid (\d+)", out)
        assert pid is not None, out
        assert pid.group(1) == pidfile.read_text().strip(), (host, out)
        version = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env={**os.environ, "DOCKER_HOST": host}, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert version in out, (host, out)
    pids = [pidfile.read_text().strip() for pidfile in running.values()]
    assert len(set(pids)) == len(pids)


def test_an_unknown_docker_host_is_refused() -> None:
    proc = _status("tcp://127.0.0.1:1")
    assert proc.returncode == 2
    assert "not an engine these scripts manage" in proc.stderr
