"""Several processes, one pool, one real engine: claims that hold across processes, and a
SIGKILLed upkeep leader that loses nothing and leaks nothing.

Each process runs `tests.integration.pool_process` (spawned, not forked), the pools share a
name; the invariants are checked on the engine itself, by label.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine_help import wait_until
from tests.integration.test_hot_reload import write_config
from tests.integration.test_pool_concurrency import Sampler
from tests.pool_help import PoolFactory

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
MAX_CONTAINERS = 8


class Proc:
    """One pool process: its JSON facts collected by a reader thread."""

    def __init__(
        self, config: Path, watch: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.pool_process", str(config)]
            + (["--watch"] if watch else []),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,  # read back in `wait`'s error, if it fails
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        self.facts: list[dict[str, Any]] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.facts.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:  # the process ended: no fact will come any more
            self._ended = True
            self._changed.notify_all()

    def send(self, command: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        with self._changed:
            self._changed.wait_for(
                lambda: self._ended or any(predicate(f) for f in self.facts), timeout
            )
            found = next((f for f in self.facts if predicate(f)), None)
        if not found:
            raise AssertionError(
                f"process {self.popen.pid}: nothing matched; facts {self.facts}; "
                f"exit {self.popen.poll()}; stderr: {self.stderr()[-3000:]}"
            )
        return found

    def ask_stats(self, timeout: float = 30) -> dict[str, Any]:
        """This process's answer to `stats` (its stats, whether it leads, its size)."""
        with self._changed:
            before = sum(1 for f in self.facts if "size" in f)
        self.send("stats")
        with self._changed:
            self._changed.wait_for(
                lambda: sum(1 for f in self.facts if "size" in f) > before, timeout
            )
            answers = [f for f in self.facts if "size" in f]
        if len(answers) <= before:
            raise AssertionError(f"process {self.popen.pid} did not answer stats")
        return answers[-1]

    def ask_size(self, timeout: float = 30) -> int:
        """The pool size in force in this process."""
        return int(self.ask_stats(timeout)["size"])

    def ask_leader(self, timeout: float = 30) -> bool:
        """Whether this process does the upkeep, as it says now."""
        return bool(self.ask_stats(timeout)["leader"])

    @property
    def token(self) -> str:
        """Its process token on the engine (its presence and hands carry it)."""
        return str(next(f["started"] for f in self.facts if "started" in f))

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    @property
    def leases(self) -> list[dict[str, Any]]:
        return [f["lease"] for f in self.facts if "lease" in f]

    @property
    def errors(self) -> list[str]:
        return [f["error"] for f in self.facts if "error" in f]

    @property
    def leader(self) -> bool:
        changes = [f["leader"] for f in self.facts if "leader" in f]
        return bool(changes and changes[-1])

    def close(self, timeout: float = 60) -> None:
        if self.popen.poll() is None:
            self.send("close")
            self.wait(lambda f: "closed" in f, timeout)
        self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)


@pytest.fixture
def processes(pool_factory: PoolFactory, tmp_path: Path) -> Iterator[Callable[[int], Proc]]:
    config = tmp_path / "config.toml"
    # 3 pool processes claiming at once on 2 cores: a stub-check exec can outlast its 1 s
    # timeout, and with 1 retry one slow probe marks a booting cold start unhealthy (seen in CI)
    write_config(config, pool_factory, 3, retries=3, max_containers=str(MAX_CONTAINERS))
    started: list[Proc] = []

    def start(delay: float = 0.0) -> Proc:
        time.sleep(delay)
        proc = Proc(config)
        started.append(proc)
        proc.wait(lambda f: "started" in f, 60)
        return proc

    yield start
    for proc in started:
        proc.kill()


def _check_leases(factory: PoolFactory, procs: list[Proc]) -> list[dict[str, Any]]:
    """No container in two leases; every leased container still exists, named as its session."""
    leases = [lease for p in procs for lease in p.leases]
    ids = [lease["container_id"] for lease in leases]
    assert len(ids) == len(set(ids)), "a container was handed to two sessions"
    on_engine = {c.id: c.name for c in factory.containers()}
    for lease in leases:
        assert on_engine.get(lease["container_id"]) == lease["name"], lease
    return leases


def _bookkeeping(factory: PoolFactory) -> list[str]:
    return [
        f"{c.name} ({c.status})"
        for c in factory.labelled()
        if c.labels.get("dockpool.role") in ("presence", "hand")
    ]


def test_three_processes_claim_at_once(
    processes: Callable[..., Proc], pool_factory: PoolFactory, docker_client: Any
) -> None:
    """3 processes, started a few seconds apart, claim at once: each container goes to one
    session, the cap holds on the engine, and closing leaves only the claimed containers."""
    procs = [processes(), processes(1.5), processes(1.5)]
    assert sum(p.leader for p in procs) == 1, [p.facts for p in procs]
    wait_until(lambda: len(pool_factory.members(healthy=True)) == 3, 60, "3 warm members")
    assert len(pool_factory.members()) == 3  # the size is the pool's, not each process's
    sampler = Sampler(docker_client, pool_factory.name)
    try:
        for i, proc in enumerate(procs):
            proc.send(f"claim 4 p{i}")
        for proc in procs:
            proc.wait(lambda f: "claimed" in f, 120)
    finally:
        sampler.stop()
    assert [e for p in procs for e in p.errors] == []
    leases = _check_leases(pool_factory, procs)
    assert len(leases) == 12 and sum(lease["from_pool"] for lease in leases) >= 3
    assert 0 < sampler.peak_held <= MAX_CONTAINERS, sampler.peak_held
    for proc in procs:
        proc.close()
    assert pool_factory.members() == {}  # the last one out removed the unclaimed members
    assert _bookkeeping(pool_factory) == []
    assert len(_check_leases(pool_factory, procs)) == 12  # every claimed container kept


def test_sigkill_of_the_upkeep_leader_mid_burst(
    processes: Callable[..., Proc], pool_factory: PoolFactory
) -> None:
    """SIGKILL the leader while all three claim: another takes over within a second, no
    container goes to two sessions, no claimed one is lost, the dead one's leftovers go."""
    procs = [processes(), processes(0.5), processes(0.5)]
    wait_until(lambda: len(pool_factory.members(healthy=True)) == 3, 60, "3 warm members")
    [leader] = [p for p in procs if p.leader]
    others = [p for p in procs if p is not leader]
    for i, proc in enumerate(procs):
        proc.send(f"claim 4 k{i}")
    time.sleep(0.3)
    killed_at = time.time()
    leader.kill()
    for proc in others:
        proc.wait(lambda f: "claimed" in f, 120)
    heirs = [p for p in others if p.leader]
    assert len(heirs) == 1, [p.facts for p in others]
    took_over = heirs[0].wait(lambda f: f.get("leader") is True and f["t"] > killed_at, 15)["t"]
    print(f"takeover after SIGKILL: {took_over - killed_at:.3f} s")
    assert took_over - killed_at < 5
    assert [e for p in others for e in p.errors] == []
    _check_leases(pool_factory, procs)
    wait_until(
        lambda: (
            all(
                f"-{next(f['started'] for f in leader.facts if 'started' in f)}" not in b
                for b in _bookkeeping(pool_factory)
            )
            and not any("exited" in b for b in _bookkeeping(pool_factory))
        ),
        15,
        "the killed process's presence and hands removed",
    )
    wait_until(
        lambda: len(pool_factory.members(healthy=True)) == 3, 60, "refilled by the new leader"
    )
    for proc in others:
        proc.close()
    assert pool_factory.members() == {}
    assert _bookkeeping(pool_factory) == []
    _check_leases(pool_factory, procs)
