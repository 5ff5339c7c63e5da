"""What a chaos run acts on and keeps track of: the engine (a direct client), the pool's config
file, its processes (which reach the engine through the fault proxy), the sessions asked for
and what became of each, and the counts the checks need (member creates, leader changes)."""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import docker

from tests.engine_help import engine_socket_path
from tests.fault_proxy import FaultProxy
from tests.integration.test_processes import Proc

IMAGE = "dockpool-stub:latest"
CAP = 8
RUN_LABEL = "dockpool.test.run"

CONFIG = """\
[sandbox]
container_pool_size = {size}

[dockpool]
name = "{name}"
image = "{image}"
ports = [8000]
labels = {{ "{run_key}" = "{run}" }}
max_containers = {cap}
resync_interval = 5

[dockpool.healthcheck]
test = ["CMD", "stub-check"]
interval = 1.0
timeout = 1.0
retries = 3
"""


class Row:
    """One row of a container list: what the faults and checks need."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.id: str = raw["Id"]
        self.name: str = (raw.get("Names") or ["/"])[0].lstrip("/")
        self.status: str = raw.get("State", "")
        self.labels: dict[str, str] = raw.get("Labels") or {}
        self.role: str = self.labels.get("dockpool.role", "member")


@attrs.define
class Session:
    """One claim the run asked for, and what became of it."""

    name: str
    proc: Proc
    lease: dict[str, Any] | None = None
    error: str | None = None
    recovered: bool = False  # its process died mid-claim; the host took it over
    ended: bool = False  # the host ended it (its container removed)
    retried: bool = False  # refused once, asked again
    errors: int = 0  # its errors seen before it was asked again


class EventCounter:
    """Counts the pool's member creates and leader-name renames from the engine's own event
    stream (a direct connection, reopened after a dockerd restart)."""

    def __init__(self, client: Any, pool: str) -> None:
        self.client, self.pool = client, pool
        self.creates = 0
        self.leader_renames = 0
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="chaos-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        leader = f"dockpool-{self.pool}-leader"
        while not self._stop.is_set():
            try:
                self._stream = self.client.api.events(
                    filters={"type": "container", "label": f"dockpool.pool={self.pool}"},
                    decode=True,
                )
                for event in self._stream:
                    attrs_ = (event.get("Actor") or {}).get("Attributes") or {}
                    action = event.get("Action")
                    if action == "create" and attrs_.get("dockpool.role") == "member":
                        self.creates += 1
                    elif action == "rename" and attrs_.get("name") == leader:
                        self.leader_renames += 1
            except Exception:  # the engine restarts: reconnect
                pass
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        self._thread.join(10)


class World:
    """One chaos run's engine, pool, processes and records."""

    def __init__(self, seed: int, workdir: Path, procs: int, dockerd: bool) -> None:
        self.rng = random.Random(seed)
        self.client = docker.from_env(timeout=60)
        self.run = uuid.uuid4().hex[:12]
        self.name = f"chaos{self.run[:6]}"
        self.config = workdir / "config.toml"
        self.size = 3
        self.nprocs = procs
        self.dockerd = dockerd
        self.write_config(self.size)
        self.proxy = FaultProxy(_engine_socket(), str(workdir / "proxy.sock")).start()
        self.procs: list[Proc] = []
        self.dead: list[Proc] = []
        self.closed: list[Proc] = []  # told to close (claims in flight): they answer them
        self.sessions: dict[str, Session] = {}
        self.renamed: dict[str, str] = {}  # id -> the name someone else gave it
        self.decoys: dict[str, str] = {}  # id -> name
        self.decoy_born: dict[str, int] = {}  # id -> the step it was made at
        self.step = 0
        self.touched: dict[str, str] = {}  # id -> the member name this script removed/renamed
        self.pruned: set[str] = set()  # ids this script's prunes removed
        self.cap_revoked = 0  # times this script removed the hand holding the capacity lock
        self.own_hits: set[str] = set()  # leases lost to this script's own stale view
        self.raced = 0  # renames by others made while the pool held that member's lock
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.starts: list[float] = []
        self.broken: list[str] = []
        self.events = EventCounter(self.client, self.name)

    def write_config(self, size: int) -> None:
        text = CONFIG.format(
            size=size, name=self.name, image=IMAGE, run_key=RUN_LABEL, run=self.run, cap=CAP
        )
        self.config.write_text(text)

    def labelled(self) -> list[Row]:
        """The pool's containers, in one list request (no inspect per row)."""
        label = f"dockpool.pool={self.name}"
        for _ in range(60):
            try:
                rows = self.client.api.containers(all=True, filters={"label": label})
                return [Row(r) for r in rows]
            except docker.errors.DockerException:
                time.sleep(1)  # the engine is restarting
        raise RuntimeError("the engine did not come back")

    def members(self) -> list[Row]:
        prefix = f"dockpool-{self.name}-"
        return [c for c in self.labelled() if c.name.startswith(prefix) and c.role == "member"]

    def start_proc(self) -> Proc:
        """Start a pool process behind the proxy. One started on a broken config refuses, as
        does one whose start meets a lost or refused answer (a pool does not start without
        the engine): like a host, fix the file and try again (a few times)."""
        t0 = time.monotonic()
        env = {"DOCKER_HOST": self.proxy.url, "DOCKPOOL_PROCESS_LOG": "1"}
        for attempt in range(6):
            proc = Proc(self.config, watch=True, env=env)
            try:
                proc.wait(lambda f: "started" in f, 120)
                break
            except AssertionError:
                try:
                    proc.popen.wait(10)  # it ended its output: let it finish exiting
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"a pool process hung: {proc.stderr()}") from None
                if attempt == 5:
                    raise AssertionError(f"a pool process did not start: {proc.stderr()}") from None
                self.write_config(self.size)
                time.sleep(1)
        self.procs.append(proc)
        self.starts.append(time.monotonic() - t0)
        return proc

    def claim(self, step: int) -> None:
        """One to three claims in flight at once, spread over the processes."""
        for i in range(self.rng.randint(1, 3)):
            proc = self.rng.choice(self.procs)
            prefix = f"c{self.run[:4]}s{step}x{i}"
            self.sessions[f"{prefix}-0"] = Session(f"{prefix}-0", proc)
            proc.send(f"spawn 1 {prefix}")

    def collect(self) -> None:
        """Record what each process answered to the claims it was sent."""
        for proc in self.procs + self.dead + self.closed:
            errors: dict[str, list[str]] = {}
            for fact in proc.facts:
                if "lease" in fact:
                    session = self.sessions.get(fact["lease"]["name"])
                    if session is not None and session.lease is None:
                        session.lease, session.error = fact["lease"], None
                elif "error" in fact:
                    errors.setdefault(fact.get("name", ""), []).append(fact["error"])
            for name, seen in errors.items():
                session = self.sessions.get(name)
                if session is not None and session.lease is None and len(seen) > session.errors:
                    session.error = seen[-1]  # (a retried session: only an error of the retry)

    def cleanup(self) -> None:
        """Stop everything this run started and remove every container of the run (one list
        request: a container gone meanwhile is no error)."""
        try:
            self.events.stop()
            for proc in self.procs:
                proc.kill()
            api = self.client.api
            for row in api.containers(all=True, filters={"label": f"{RUN_LABEL}={self.run}"}):
                with contextlib.suppress(docker.errors.NotFound):
                    api.remove_container(row["Id"], force=True)
        finally:
            self.proxy.stop()


def _engine_socket() -> str:
    """The unix socket of the engine DOCKER_HOST names (the proxy's upstream)."""
    try:
        return engine_socket_path()
    except RuntimeError as exc:
        raise SystemExit(f"chaos: {exc}") from None
