"""A seeded chaos run against the real engine: three pool processes share one pool while
faults rain on it, claims keep coming, and at the end the one promise is checked.

    .venv/bin/python -m tests.chaos --faults 1000 [--seed N] [--no-dockerd]

Faults (chosen by a seeded RNG; the seed is printed first, so a run can be replayed): docker
kill / rm -f / pause / stop / restart of an unclaimed member, `stub-ctl unhealthy`, a rename by
someone else, a dockerd restart, SIGKILL of a pool process (a new one replaces it), garbage
bytes and invalid TOML written to the watched config.toml (each followed, later, by a valid
edit of the size), and decoy containers (without the pool label, or with another pool's).

Invariants, checked on the engine: no container in two leases; every leased container still
exists under its session's name; unclaimed members never above max_containers (sampled all
along); decoys and containers renamed by others untouched; the last valid config applied;
after every process closed, no unclaimed member and no bookkeeping container left, and every
claimed container kept. Exit status 0 iff all hold. CI runs `--faults 100`
(tests/integration/test_chaos.py).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from tests.integration.test_pool_concurrency import Sampler
from tests.integration.test_processes import Proc

ROOT = Path(__file__).resolve().parents[1]
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
retries = 1
"""


class Row:
    """One row of a container list: what the checks need."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.id: str = raw["Id"]
        self.name: str = (raw.get("Names") or ["/"])[0].lstrip("/")
        self.status: str = raw.get("State", "")
        self.role: str = (raw.get("Labels") or {}).get("dockpool.role", "member")


class Chaos:
    """One chaos run: its engine, its processes, its bookkeeping of what must hold."""

    def __init__(self, seed: int, workdir: Path, dockerd: bool) -> None:
        self.rng = random.Random(seed)
        self.client = docker.from_env(timeout=60)
        self.run = uuid.uuid4().hex[:12]
        self.name = f"chaos{self.run[:6]}"
        self.config = workdir / "config.toml"
        self.size = 3
        self.write_config(self.size)
        self.procs: list[Proc] = []
        self.dead: list[Proc] = []
        self.renamed: dict[str, str] = {}  # id -> the name someone else gave it
        self.decoys: dict[str, str] = {}  # id -> name
        self.counts: dict[str, int] = {}
        self.claims = 0
        self.raced = 0  # renames by others made while the pool held that member's lock
        self.touched: dict[str, str] = {}  # id -> the member name this script removed/renamed
        self.own_hits: set[str] = set()  # leases lost to this script's own stale view
        self.starts: list[float] = []  # seconds each pool process took to start
        self.seconds: dict[str, float] = {}  # time spent in each kind of fault
        self.ended: set[str] = set()  # leases verified and ended
        self.broken: list[str] = []
        self.dockerd = dockerd

    # -- helpers ---------------------------------------------------------------------------

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

    def start_proc(self) -> None:
        """Start a pool process (one started on a broken config refuses: fix it, retry)."""
        t0 = time.monotonic()
        proc = Proc(self.config, watch=True)
        try:
            proc.wait(lambda f: "started" in f, 120)
        except AssertionError:
            try:
                proc.popen.wait(10)  # it ended its output: let it finish exiting
            except subprocess.TimeoutExpired:
                raise AssertionError(f"a pool process did not start: {proc.stderr()}") from None
            self.write_config(self.size)
            proc = Proc(self.config, watch=True)
            proc.wait(lambda f: "started" in f, 120)
        self.procs.append(proc)
        self.starts.append(time.monotonic() - t0)

    def victim(self) -> Row | None:
        """A running unclaimed member, as the list showed it. Faults act on it by its name, as
        a person at the CLI would: one claimed meanwhile no longer answers to that name."""
        running = sorted((c for c in self.members() if c.status == "running"), key=lambda c: c.id)
        return self.rng.choice(running) if running else None

    # -- faults ------------------------------------------------------------------------------

    def fault(self) -> str:
        api = self.client.api
        kinds: list[tuple[str, float, Callable[[], None]]] = [
            ("kill", 3, lambda: self._on_member(api.kill)),
            ("rm -f", 3, lambda: self._on_member(lambda n: self._touch(n, api.remove_container, force=True))),
            ("pause", 1, lambda: self._on_member(api.pause)),
            ("stop", 2, lambda: self._on_member(lambda n: api.stop(n, timeout=0))),
            ("restart", 1, lambda: self._on_member(lambda n: api.restart(n, timeout=0))),
            ("unhealthy", 2, lambda: self._on_member(
                lambda n: api.exec_start(api.exec_create(n, ["stub-ctl", "unhealthy"])))),
            ("rename by others", 1, self._rename_by_others),
            ("SIGKILL a pool process", 1, self._sigkill),
            ("garbage config", 1, self._garbage),
            ("invalid config", 1, self._invalid),
            ("valid config", 2, self._resize),
            ("decoy", 1, self._decoy),
        ]  # fmt: skip
        if self.dockerd:
            kinds.append(("dockerd restart", 0.3, self._restart_dockerd))
        names = [k[0] for k in kinds]
        weights = [k[1] for k in kinds]
        choice = self.rng.choices(range(len(kinds)), weights)[0]
        t0 = time.monotonic()
        with contextlib.suppress(docker.errors.DockerException):  # gone under the fault: fine
            kinds[choice][2]()
        self.seconds[names[choice]] = self.seconds.get(names[choice], 0.0) + time.monotonic() - t0
        self.counts[names[choice]] = self.counts.get(names[choice], 0) + 1
        return names[choice]

    def _on_member(self, act: Callable[[str], Any]) -> None:
        c = self.victim()
        if c is not None:
            act(c.name)

    def _touch(self, name: str, act: Callable[..., Any], **options: Any) -> None:
        """Remove or rename by name, and remember which container that hit: by the time the
        request runs, a claim may have made it a session's (the engine resolves the name
        before it locks the container), and that is this script's race, not the pool's."""
        try:
            cid = self.client.api.inspect_container(name)["Id"]
        except docker.errors.NotFound:
            return
        act(name, **options)
        self.touched[cid] = name

    def _rename_by_others(self) -> None:
        c = self.victim()
        if c is not None:
            new = f"other-{uuid.uuid4().hex[:8]}"
            locked = self._locked(c.name)
            self._touch(c.name, lambda n: self.client.api.rename(n, new))
            if c.id not in self.touched:
                return
            if locked or self._locked(c.name):
                # a pool process held the member's lock (a claim or a removal in flight): this
                # rename ignored the pool's protocol and raced it; whoever wins is the engine's
                # call, so it is counted, not checked
                self.raced += 1
            else:
                self.renamed[c.id] = new

    def _locked(self, member: str) -> bool:
        rows = self.client.api.containers(all=True, filters={"name": f"^/{member}-lock$"})
        return bool(rows)

    def _sigkill(self) -> None:
        proc = self.rng.choice(self.procs)
        proc.kill()
        self.procs.remove(proc)
        self.dead.append(proc)
        self.start_proc()

    def _garbage(self) -> None:
        self.config.write_bytes(self.rng.randbytes(64))

    def _invalid(self) -> None:
        self.config.write_text("[sandbox]\ncontainer_pool_size = -1\n")

    def _resize(self) -> None:
        self.size = self.rng.randint(1, 4)
        self.write_config(self.size)

    def _decoy(self) -> None:
        other = self.rng.random() < 0.5
        name = f"dockpool-{self.name}-decoy{len(self.decoys)}"
        labels = {RUN_LABEL: self.run}
        if other:
            labels["dockpool.pool"] = f"{self.name}x"
        c = self.client.containers.run(IMAGE, name=name, labels=labels, detach=True)
        self.decoys[c.id] = name

    def _restart_dockerd(self) -> None:
        subprocess.run(["bash", str(ROOT / "scripts/dockerd-ctl.sh"), "restart"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        for decoy in self.decoys:  # decoys were stopped with the engine; they stay untouched
            self.client.containers.get(decoy).start()

    # -- the run -------------------------------------------------------------------------

    def claim(self, step: int) -> None:
        proc = self.rng.choice(self.procs)
        proc.send(f"claim 1 c{self.run[:4]}s{step}")
        self.claims += 1

    def leases(self) -> list[dict[str, Any]]:
        return [lease for p in self.procs + self.dead for lease in p.leases]

    def check(self, sampler: Sampler) -> list[str]:
        problems = []
        leases = self.leases()
        ids = [lease["container_id"] for lease in leases]
        if len(ids) != len(set(ids)):
            problems.append("a container was handed to two sessions")
        problems += self.verify_leases()
        if sampler.peak_held > CAP:
            problems.append(f"{sampler.peak_held} unclaimed members at once (cap {CAP})")
        for cid, name in {**self.decoys, **self.renamed}.items():
            try:
                if self.client.containers.get(cid).name != name:
                    problems.append(f"{name} was renamed by the pool")
            except docker.errors.NotFound:
                problems.append(f"{name} (not the pool's) was removed")
        return problems

    def verify_leases(self, end_sessions: bool = False) -> list[str]:
        """Each new lease's container exists under its session's name; with `end_sessions`,
        the sessions then end (their containers are removed, as a host would), which keeps a
        long run from piling up containers on two cores."""
        by_id = {c.id: c.name for c in self.labelled()}
        problems = []
        for lease in self.leases():
            cid = lease["container_id"]
            if cid in self.ended:
                continue
            if by_id.get(cid) != lease["name"]:
                if cid in self.touched:  # this script hit it under its old member name
                    self.own_hits.add(lease["name"])
                else:
                    problems.append(f"leased container {lease['name']} lost or renamed")
            elif end_sessions:
                self.client.api.remove_container(cid, force=True)
                self.ended.add(cid)
        return problems

    def settle(self) -> list[str]:
        """Write a last valid config and wait until every live process applies it."""
        self.write_config(self.size)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sizes = []
            for proc in self.procs:
                sizes.append(proc.ask_size())
            if all(s == self.size for s in sizes):
                return []
            time.sleep(1)
        return [f"the last valid config (size {self.size}) was not applied: {sizes}"]

    def close(self) -> list[str]:
        problems = []
        for proc in self.procs:
            proc.close(timeout=90)
        left = [c.name for c in self.members()]
        if left:
            problems.append(f"unclaimed members left after close: {left}")
        book = [c.name for c in self.labelled() if c.role in ("presence", "hand")]
        if book:
            problems.append(f"bookkeeping containers left after close: {book}")
        return problems

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
        for c in self.client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={self.run}"}
        ):
            c.remove(force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-dockerd", action="store_true", help="no dockerd restarts")
    parser.add_argument("--pace", type=float, default=0.3, help="seconds between faults")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"chaos: seed {seed}, {args.faults} faults", flush=True)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        chaos = Chaos(seed, Path(tmp), dockerd=not args.no_dockerd)
        started = time.monotonic()
        sampler: Sampler | None = None
        try:
            for _ in range(3):
                chaos.start_proc()
            sampler = Sampler(chaos.client, chaos.name)
            for step in range(args.faults):
                chaos.fault()
                chaos.claim(step)
                time.sleep(args.pace)
                if step % 10 == 9:
                    chaos.broken += chaos.verify_leases(end_sessions=True)
            problems = list(chaos.broken)
            print(f"chaos: faults done in {time.monotonic() - started:.0f} s; settling", flush=True)
            problems += chaos.settle()
            for proc in chaos.procs:  # let the claims in flight finish
                proc.send("stats")
            time.sleep(2)
            sampler.stop()
            problems += chaos.check(sampler)
            problems += chaos.close()
            problems += chaos.check(sampler)
            errors = [e for p in chaos.procs + chaos.dead for e in p.errors]
        finally:
            if sampler is not None:
                sampler.stop()
            chaos.cleanup()
        leases = chaos.leases()
        print(f"chaos: seed {seed}: {args.faults} faults in {time.monotonic() - started:.0f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(chaos.counts.items())))  # fmt: skip
        print(f"chaos: {chaos.claims} claims asked, {len(leases)} leases "
              f"({sum(lease['from_pool'] for lease in leases)} from the pool), "
              f"{len(errors)} claims refused; peak unclaimed members {sampler.peak_held if sampler else 0} (cap {CAP})")  # fmt: skip
        print("chaos: seconds per kind: " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(chaos.seconds.items())))  # fmt: skip
        print("chaos: process starts (s): " + " ".join(f"{s:.1f}" for s in chaos.starts))
        for error in errors[:5]:
            print(f"chaos: refused: {error}")
        print(
            f"chaos: renames by others that raced a claim or removal holding the lock: {chaos.raced}"
        )
        if chaos.own_hits:
            print(
                f"chaos: leases this script itself hit by a stale member name: {sorted(chaos.own_hits)}"
            )
        problems = list(dict.fromkeys(problems))
        for problem in problems:
            print(f"chaos: BROKEN: {problem}")
        print(
            f"chaos: {'all invariants hold' if not problems else f'{len(problems)} invariants broken'}"
        )
        return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
