"""Claims across processes, and the upkeep takeover, on the real engine.

    .venv/bin/python -m tests.bench_processes [--rounds 20] [--size 6]

It lives in tests/, not in dockpool.bench, because it drives the test suite's pool processes
(`tests.integration.test_processes.Proc`): a checkout's benchmark, like `tests.chaos`.

Pool processes (tests/integration/pool_process.py, one pool name) on one engine:
- one process, alone on its pool (it holds its members' locks ahead), claims `rounds` times;
- two more join; once their appearance is forgotten (5 s: see _runtime/ahead.py) one of the
  three claims alone, `rounds` times (after a first claim, not measured, it is the pool's only
  claimer and holds the ready members' locks ahead: one rename); then all three claim at the
  same moment, `rounds` times (three claims at once, each from another process: the pool is
  contended, every claim takes its member's lock: two renames);
- dockerd is restarted (scripts/dockerd-ctl.sh, only an engine this project started): the
  time until the engine answers again, and until the pool is full again with exactly one
  upkeep leader (every presence and member was stopped by the restart);
- then the upkeep leader is SIGKILLed, `takeovers` times: the time from the kill to the
  rename event that gives `dockpool-<pool>-leader` to another process's presence.
Baseline in the same run: one bare rename of an idle container (docker-py, same engine),
for the ratio. The load average is printed with every figure. Figures are the pool's own
`lease.seconds` (call to return, in the claiming process).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker

from dockpool.bench._harness import percentile
from tests.integration.test_processes import Proc

IMAGE = "dockpool-stub:latest"
LABEL = "dockpool.bench.run"

CONFIG = """\
[sandbox]
container_pool_size = {size}

[dockpool]
name = "{name}"
image = "{image}"
ports = [8000]
labels = {{ "{label}" = "{run}" }}
max_containers = {cap}

[dockpool.healthcheck]
test = ["CMD", "stub-check"]
interval = 30
timeout = 1.0
retries = 1

[dockpool.readiness]
port = 8000
path = "/ready"
"""


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def stats(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"n={len(ms)} p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )


class Bench:
    def __init__(self, size: int) -> None:
        self.client = docker.from_env(timeout=60)
        self.run = uuid.uuid4().hex[:10]
        self.name = f"bp{self.run[:8]}"
        self.size = size
        self.tmp = tempfile.TemporaryDirectory()
        self.config = Path(self.tmp.name) / "config.toml"
        cap = size * 2 + 4
        text = CONFIG.format(
            size=size, name=self.name, image=IMAGE, label=LABEL, run=self.run, cap=cap
        )
        self.config.write_text(text)
        self.procs: list[Proc] = []

    def start(self, n: int) -> None:
        for _ in range(n):
            proc = Proc(self.config)
            proc.wait(lambda f: "started" in f, 120)
            self.procs.append(proc)

    def warm(self) -> None:
        """Wait until every process sees the pool's members ready (its readiness probe
        answered; Docker's slow health check does not decide)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(p.ask_stats()["stats"]["ready"] >= self.size for p in self.procs):
                return
            time.sleep(0.1)
        rows = self.client.api.containers(all=True, filters={"label": f"dockpool.pool={self.name}"})
        seen = [(r["Names"][0], r["Status"]) for r in rows]
        raise RuntimeError(f"the pool did not fill: {seen}; {[p.facts[-5:] for p in self.procs]}")

    def claim_round(self, procs: list[Proc], tag: str) -> list[float]:
        before = [len(p.leases) for p in procs]
        threads = [
            threading.Thread(target=p.send, args=(f"claim 1 {tag}p{i}",))
            for i, p in enumerate(procs)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for proc, n in zip(procs, before, strict=True):
            proc.wait(functools.partial(_answered, proc, n), 60)
        leases = [p.leases[-1] for p in procs]
        for lease in leases:  # the sessions end: their containers go (they are ours)
            self.client.api.remove_container(lease["container_id"], force=True)
        return [lease["seconds"] for lease in leases if lease["from_pool"]]

    def locks_held(self) -> int:
        """How many member locks are held on the engine now."""
        rows = self.client.api.containers(all=True, filters={"label": f"dockpool.pool={self.name}"})
        return sum(1 for row in rows if row["Names"][0].endswith("-lock"))

    def bare_renames(self, n: int) -> list[float]:
        c = self.client.containers.create(IMAGE, labels={LABEL: self.run})
        out = []
        try:
            for i in range(n):
                t0 = time.perf_counter()
                self.client.api.rename(c.id, f"bare-{self.run}-{i}")
                out.append(time.perf_counter() - t0)
                time.sleep(0.05)
        finally:
            c.remove(force=True)
        return out

    def restart_engine(self) -> tuple[float, float]:
        """Restart dockerd; seconds until it answers again, and until the pool is full again
        with exactly one leader."""
        script = Path(__file__).resolve().parents[1] / "scripts" / "dockerd-ctl.sh"
        t0 = time.monotonic()
        subprocess.run(["bash", str(script), "restart"], check=True, stdout=subprocess.DEVNULL)
        while True:
            try:
                self.client.ping()
                break
            except docker.errors.DockerException:
                time.sleep(0.05)
        answered = time.monotonic() - t0
        self.warm()
        while sum(p.ask_leader() for p in self.procs) != 1:
            time.sleep(0.1)
        return answered, time.monotonic() - t0

    def takeover(self) -> float:
        leader = next(p for p in self.procs if p.leader)
        events = self.client.api.events(
            filters={"type": "container", "event": ["rename"],
                     "label": [f"dockpool.pool={self.name}", "dockpool.role=presence"]},
            decode=True,
        )  # fmt: skip
        killed = time.time()
        leader.kill()
        self.procs.remove(leader)
        try:
            for event in events:
                name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
                if name == f"dockpool-{self.name}-leader":
                    return int(event["timeNano"]) / 1e9 - killed
        finally:
            events.close()
        raise RuntimeError("no takeover seen")

    def close(self) -> None:
        for p in self.procs:
            p.close()
        for row in self.client.api.containers(all=True, filters={"label": f"{LABEL}={self.run}"}):
            self.client.api.remove_container(row["Id"], force=True)
        self.tmp.cleanup()


def _answered(proc: Proc, leases_before: int, fact: dict[str, Any]) -> bool:
    return len(proc.leases) > leases_before or bool(proc.errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--size", type=int, default=6)
    parser.add_argument("--takeovers", type=int, default=3)
    parser.add_argument("--no-restart", action="store_true", help="skip the engine restart")
    args = parser.parse_args()
    bench = Bench(args.size)
    results: dict[str, Any] = {"engine": bench.client.version().get("Version")}
    try:
        bench.start(1)
        bench.warm()
        bare = bench.bare_renames(args.rounds)
        print(f"bare rename (baseline): {stats(bare)}; load {load()}", flush=True)
        alone: list[float] = []
        for r in range(args.rounds):
            bench.warm()
            time.sleep(0.3)  # (the locks of the new members are taken ahead)
            alone += bench.claim_round(bench.procs[:1], f"a{r}")
        print(f"1 process alone, 1 claim: {stats(alone)}; load {load()}", flush=True)
        bench.start(2)
        bench.warm()
        time.sleep(5.5)  # (the others' appearance is forgotten)
        bench.claim_round(bench.procs[:1], "first")  # (now the pool's only claimer)
        one: list[float] = []
        held: list[int] = []
        for r in range(args.rounds):
            bench.warm()
            time.sleep(0.3)  # (the locks of the new members are taken ahead)
            held.append(bench.locks_held())
            one += bench.claim_round(bench.procs[:1], f"o{r}")
        print(f"3 processes, 1 claim: {stats(one)}; load {load()}; locks held ahead before "
              f"the claims: {min(held)}..{max(held)} of {args.size}", flush=True)  # fmt: skip
        three: list[float] = []
        for r in range(args.rounds):
            bench.warm()
            three += bench.claim_round(bench.procs, f"t{r}")
        print(f"3 processes, 3 claims at once: {stats(three)}; load {load()}", flush=True)
        restart: tuple[float, float] | None = None
        if not args.no_restart:
            restart = bench.restart_engine()
            print(f"dockerd restart, 3 processes: engine answers after {restart[0]:.1f} s, "
                  f"pool full with one leader after {restart[1]:.1f} s; load {load()}", flush=True)  # fmt: skip
        takeovers = []
        for _ in range(args.takeovers):
            bench.warm()
            takeovers.append(bench.takeover())
            bench.start(1)
        print(f"takeover after SIGKILL of the leader: {stats(takeovers)}; load {load()}")
        p50 = percentile(bare, 50)
        p99 = percentile(bare, 99)
        for label, xs in (("1 process alone", alone), ("3 processes, 1 claim", one),
                          ("3 processes, 3 at once", three)):  # fmt: skip
            print(f"ratio to a bare rename, {label}: p50 {percentile(xs, 50) / p50:.2f}x, "
                  f"p99 {percentile(xs, 99) / p99:.2f}x")  # fmt: skip
        results.update(bare=bare, alone=alone, one=one, three=three, takeovers=takeovers,
                       restart=restart, load=load())  # fmt: skip
        out = Path("bench-results") / f"processes-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results))
        print(f"samples: {out} (pid {os.getpid()})")
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
