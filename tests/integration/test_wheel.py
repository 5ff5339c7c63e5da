"""The benchmarks ship: `dockpool bench --smoke` from a wheel of this checkout, installed into a
fresh venv and run outside the checkout, measures and prints its table.

The venv gets the wheel and its dependencies only (no `bench` extra: no matplotlib), so the run
also shows that the plot is skipped, and why, while the table and the JSON are complete. The
bench labels its containers `dockpool.bench.run=<run id>` (printed in its header) and removes
them itself; this test checks that, and removes whatever is left even when it fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.engine_help import REPO_ROOT, remove_container

pytestmark = pytest.mark.docker

BENCH_LABEL = "dockpool.bench.run"
POOL_LABEL = "dockpool.pool"
# "  stub  pooled (claim from a full pool)  3  12.1  14.5  14.7  14.8  3/3 (100%)  9 s"
ROW = r"^\s*stub\s+{mode}\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"


def _env() -> dict[str, str]:
    """This environment without anything that would point Python back at the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(args: list[str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _install(tmp_path: Path) -> Path:
    """A venv in tmp_path with the wheel of this checkout installed; its bin/ folder."""
    wheels = tmp_path / "wheels"
    pip = ["--disable-pip-version-check", "--quiet"]
    _run([sys.executable, "-m", "pip", "wheel", *pip, "--no-deps", "-w", str(wheels), str(REPO_ROOT)], tmp_path, 120)  # fmt: skip
    (wheel,) = wheels.glob("dockpool-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 60)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", *pip, str(wheel)], tmp_path, 180)
    return venv / "bin"


def _bench_containers(client: Any, run: str) -> list[Any]:
    """The containers of bench run `run`: by its label, or by one of its pools' names."""
    found = {c.id: c for c in client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={run}"})}  # fmt: skip
    for c in client.containers.list(all=True, filters={"label": POOL_LABEL}):
        if c.labels.get(POOL_LABEL, "").startswith(f"bench{run}-"):
            found[c.id] = c
    return list(found.values())


def _smoke(bin_dir: Path, cwd: Path, client: Any) -> tuple[int | None, str, str]:
    """(exit status or None if it timed out, stdout, stderr) of `dockpool bench --smoke` run in
    `cwd`. Whatever happens, the containers of its run are removed afterwards (a run still going
    gets SIGINT first: the bench cleans up on it); a run that left any behind fails the test."""
    out, err = cwd / "smoke.out", cwd / "smoke.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [str(bin_dir / "dockpool"), "bench", "--smoke"],
            cwd=cwd, env=_env(), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        status: int | None = None
        try:
            status = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            run = re.search(rf"{re.escape(BENCH_LABEL)}=([0-9a-f]+)", out.read_text())
            left = _bench_containers(client, run.group(1)) if run else []
            for container in left:
                remove_container(container)
    text = out.read_text()
    assert run is not None, f"no run label in the header:\n{text}\n{err.read_text()[-3000:]}"
    assert not left, f"the bench left {len(left)} container(s) behind: {[c.name for c in left]}"
    return status, text, err.read_text()


def _row(text: str, mode: str) -> tuple[int, list[float]]:
    """(n, [p50, p95, p99, max] in ms) of one row of the table."""
    found = re.search(ROW.format(mode=re.escape(mode)), text, re.MULTILINE)
    assert found is not None, f"no row {mode!r} in the table:\n{text}"
    n, *ms = found.groups()
    return int(n), [float(x) for x in ms]


@pytest.mark.timeout(660)
def test_bench_smoke_runs_from_an_installed_wheel(
    tmp_path: Path, docker_client: Any, stub_image: str
) -> None:
    bin_dir = _install(tmp_path)
    where = _run([str(bin_dir / "python"), "-c", "import dockpool.bench as b; print(b.__file__)"], tmp_path, 30)  # fmt: skip
    installed = Path(where.strip()).resolve()
    assert installed.parent.parent.parent.name == "site-packages", installed
    assert installed.is_relative_to((tmp_path / "venv").resolve()), installed
    assert not installed.is_relative_to(REPO_ROOT.resolve()), installed

    status, text, errors = _smoke(bin_dir, tmp_path, docker_client)
    assert status == 0, f"dockpool bench --smoke exited {status}:\n{text}\n{errors[-3000:]}"

    n, pooled = _row(text, "pooled (claim from a full pool)")
    assert n == 3
    assert 0 < pooled[0] <= pooled[1] <= pooled[2] <= pooled[3], pooled
    cold_n, cold = _row(text, "cold (dockpool, pool size 0)")
    assert cold_n == 2 and cold[0] > 0, cold
    assert "containers left behind: none" in text
    # every sample in bench-results/ below the current folder; the table shows the JSON's p50
    (js,) = tmp_path.glob("bench-results/smoke-*.json")
    doc = json.loads(js.read_text())
    p50 = doc["images"]["stub"]["modes"]["pooled"]["summaries_seconds"]["ask -> /ready 200"]["p50"]
    assert abs(1000 * p50 - pooled[0]) < 0.06, (p50, pooled)
    assert doc["meta"]["left behind"] == []
    # no matplotlib in this venv: the plot is skipped, and the line says how to get it
    assert re.search(r"^plot skipped: .*dockpool\[bench\]", text, re.MULTILINE), text
    assert not list(tmp_path.glob("bench-results/*.png"))
