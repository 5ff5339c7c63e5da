"""The chaos run itself: its arguments, the loop of faults and claims, and the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import docker

from tests.chaos import checks
from tests.chaos.kinds import kinds, retire_decoys
from tests.chaos.world import CAP, World
from tests.integration.test_pool_concurrency import Sampler


def fault(w: World, dockerd: bool) -> str:
    """Apply one fault, chosen by the run's RNG; its kind."""
    found = kinds(dockerd)
    choice = w.rng.choices(range(len(found)), [k[1] for k in found])[0]
    name, _, act = found[choice]
    t0 = time.monotonic()
    with contextlib.suppress(docker.errors.DockerException):  # gone under the fault: fine
        act(w)
    w.seconds[name] = w.seconds.get(name, 0.0) + time.monotonic() - t0
    w.counts[name] = w.counts.get(name, 0) + 1
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A seeded chaos run (see tests/chaos).")
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--procs", type=int, default=2, help="pool processes (2 or 3)")
    parser.add_argument("--no-dockerd", action="store_true", help="no dockerd restarts")
    parser.add_argument("--pace", type=float, default=0.3, help="seconds between faults")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"chaos: seed {seed}, {args.faults} faults, {args.procs} processes", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        w = World(seed, Path(tmp), args.procs, dockerd=not args.no_dockerd)
        started = time.monotonic()
        sampler: Sampler | None = None
        problems: list[str] = []
        leaders = 0
        try:
            for _ in range(args.procs):
                w.start_proc()
            sampler = Sampler(w.client, w.name)
            for step in range(args.faults):
                w.step = step
                fault(w, not args.no_dockerd)
                w.claim(step)
                time.sleep(args.pace)
                w.broken += retire_decoys(w)
                if step % 10 == 9:
                    w.broken += checks.verify_leases(w, end_sessions=True)
            w.proxy.plan.clear()
            problems = list(w.broken)
            print(f"chaos: faults done in {time.monotonic() - started:.0f} s; settling", flush=True)
            problems += checks.settle(w)
            w.broken.clear()
            problems += checks.verify_leases(w)
            problems += checks.check_sessions(w)
            found, leaders = checks.check_leader(w)
            problems += found + w.broken
            sampler.stop()
            claims = len(w.sessions)
            problems += checks.check_creates(w, claims, args.faults)
            problems += checks.check_untouched(w, sampler)
            problems += checks.check_closed(w)
            problems += checks.check_untouched(w, sampler)
        finally:
            if sampler is not None:
                sampler.stop()
            w.cleanup()
        _report(w, seed, args.faults, started, sampler, leaders)
        problems = list(dict.fromkeys(problems))
        for problem in problems:
            print(f"chaos: BROKEN: {problem}")
        verdict = "all invariants hold" if not problems else f"{len(problems)} invariants broken"
        if problems:
            print(f"chaos: the pool processes' logs and facts: {_keep_logs(w, seed)}")
        print(f"chaos: seed {seed}: {verdict}")
        return 0 if not problems else 1


def _keep_logs(w: World, seed: int) -> Path:
    """Write every pool process's log (dockpool's records, INFO and up) and facts to a kept
    directory, for the post-mortem of a failed run."""
    keep = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-"))
    for i, proc in enumerate(w.procs + w.dead + w.closed):
        (keep / f"proc-{i}-{proc.popen.pid}.log").write_text(proc.stderr())
        facts = "".join(json.dumps(fact) + "\n" for fact in proc.facts)
        (keep / f"proc-{i}-{proc.popen.pid}.facts").write_text(facts)
    return keep


def _reason(error: str) -> str:
    """A refusal's reason without the names and ids that make each one unique."""
    text = re.sub(r"'[^']*'", "'…'", error)
    text = re.sub(r"[0-9a-f]{12,}", "…", text)
    return re.sub(r"dockpool-[\w-]+", "dockpool-…", text)[:220]


def _report(
    w: World, seed: int, faults: int, started: float, sampler: Sampler | None, leaders: int
) -> None:
    sessions = list(w.sessions.values())
    delivered = [s for s in sessions if s.lease is not None]
    print(f"chaos: seed {seed}: {faults} faults in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(w.counts.items())))  # fmt: skip
    print(
        f"chaos: {len(sessions)} claims asked, {len(delivered)} leases "
        f"({sum(bool(s.lease and s.lease.get('from_pool')) for s in sessions)} from the pool, "
        f"{sum(s.recovered and s.lease is not None for s in sessions)} recovered after a "
        f"SIGKILL), {sum(s.error is not None for s in sessions)} refused; "
        f"peak unclaimed members {sampler.peak_unclaimed if sampler else 0} (cap {CAP}; "
        f"capacity lock revoked by this script {w.cap_revoked}x)"
    )
    creates = w.events.creates
    per = creates / len(sessions) if sessions else 0.0
    print(f"chaos: member creates {creates} ({per:.2f} per claim); leader changes seen "
          f"{w.events.leader_renames}; processes leading after settling: {leaders}")  # fmt: skip
    print("chaos: proxy faults applied: " + ", ".join(
        f"{k} {v}" for k, v in sorted(w.proxy.plan.counts().items())))  # fmt: skip
    print("chaos: seconds per kind: " + ", ".join(
        f"{k} {v:.1f}" for k, v in sorted(w.seconds.items())))  # fmt: skip
    print("chaos: process starts (s): " + " ".join(f"{s:.1f}" for s in w.starts))
    reasons = Counter(_reason(s.error) for s in sessions if s.error)
    for reason, n in reasons.most_common(8):
        print(f"chaos: refused {n}x: {reason}")
    print(f"chaos: renames by others that raced a claim or removal holding the lock: {w.raced}")
    if w.own_hits:
        print(f"chaos: leases this script itself hit by a stale member name: {sorted(w.own_hits)}")
