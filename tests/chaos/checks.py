"""The invariants a chaos run checks on the engine itself (see the package docstring)."""

from __future__ import annotations

import functools
import time
from typing import Any

import docker

from tests.chaos.kinds import MEMBER_FAULTS
from tests.chaos.world import CAP, World
from tests.integration.test_pool_concurrency import Sampler


def leases(w: World) -> list[dict[str, Any]]:
    return [s.lease for s in w.sessions.values() if s.lease is not None]


def verify_leases(w: World, end_sessions: bool = False) -> list[str]:
    """Each lease's container exists under its session's name; with `end_sessions` the
    sessions then end (their containers removed, as a host would), which keeps a long run
    from piling up containers on two cores."""
    w.collect()
    by_id = {c.id: c.name for c in w.labelled()}
    problems = []
    for session in w.sessions.values():
        lease = session.lease
        if lease is None or session.ended:
            continue
        cid = lease["container_id"]
        if by_id.get(cid) != lease["name"]:
            if cid in w.touched or cid in w.pruned:  # this script hit it (by its old member
                w.own_hits.add(lease["name"])  # name, or pruned it once a restart stopped it)
            else:
                problems.append(f"leased container {lease['name']} lost or renamed")
        elif end_sessions:
            w.client.api.remove_container(cid, force=True)
        if end_sessions:
            session.ended = True
    return problems


def recover(w: World) -> None:
    """The host's part after a process died mid-claim: each of its unanswered sessions is
    asked for with `lease_for` through a live process, and taken over if it exists; each
    session it refused is released (a refusal whose outcome that process would have settled
    at its next resync, a doubt, died with it: the host starts that session anew)."""
    w.collect()
    for session in w.sessions.values():
        if session.lease or session.proc not in w.dead or session.recovered:
            continue
        proc = w.procs[0]
        word, answer = ("release", "released") if session.error else ("recover", "recovered")
        proc.send(f"{word} {session.name}")
        fact = proc.wait(functools.partial(_answered, session.name, answer), 60)
        session.recovered = True
        if fact.get("failed"):
            w.broken.append(f"{word} {session.name} failed: {fact['failed']}")
        elif answer == "recovered" and fact["recovered"] is not None:
            session.lease = fact["recovered"]


def _answered(name: str, answer: str, fact: dict[str, Any]) -> bool:
    return fact.get("name") == name and answer in fact


def check_sessions(w: World) -> list[str]:
    """After settling: each session has one delivered lease (checked by verify_leases), or
    a recorded failure and no container under its name, or (its process died mid-claim) was
    recovered by the host or left nothing."""
    recover(w)
    prefix = f"c{w.run[:4]}s"
    on_engine: dict[str, list[str]] = {}
    for row in w.labelled():
        if row.name.startswith(prefix):
            on_engine.setdefault(row.name, []).append(row.id)
    problems = []
    ids = [lease["container_id"] for lease in leases(w)]
    if len(ids) != len(set(ids)):
        problems.append("a container was handed to two sessions")
    for session in w.sessions.values():
        there = on_engine.get(session.name, [])
        if session.lease is not None:
            if there and there != [session.lease["container_id"]]:
                problems.append(f"{session.name}: its name is on {there}, not its lease's")
        elif there:
            why = session.error or "no answer"
            problems.append(f"{session.name} ({why}): {there[0][:12]} carries its name, nobody's")
        elif session.error is None and session.proc not in w.dead:
            problems.append(f"{session.name}: its process never answered")
    return problems


def check_leader(w: World) -> tuple[list[str], int]:
    """At most one leader once settled, and it is the presence holding the leader name; the
    number of processes that said they lead (the last answer of each) is returned too."""
    name = f"dockpool-{w.name}-leader"
    leaders: list[Any] = []
    for _ in range(30):
        leaders = [p for p in w.procs if p.ask_leader()]
        holder = [c for c in w.labelled() if c.name == name]
        tokens = {p.token for p in leaders}
        if (
            len(leaders) == 1
            and len(holder) == 1
            and holder[0].status == "running"
            and holder[0].labels.get("dockpool.owner") in tokens
        ):
            return [], 1
        time.sleep(1)
    return [f"{len(leaders)} processes lead after settling (want 1)"], len(leaders)


def check_creates(w: World, claims: int, faults: int) -> list[str]:
    """Member creates in proportion to what needed one: no storm."""
    member_faults = sum(n for k, n in w.counts.items() if k in MEMBER_FAULTS)
    restarts = w.counts.get("dockerd restart", 0)
    bound = 2 * (claims + faults) + CAP * (restarts + 1) + 20
    if w.events.creates > bound:
        return [f"{w.events.creates} member creates for {claims} claims and {member_faults} "
                f"member faults (bound {bound}): a create storm"]  # fmt: skip
    return []


def check_untouched(w: World, sampler: Sampler) -> list[str]:
    problems = []
    # (a session's container a fault restarted by its old member name, racing its claim,
    # starts again under the session's name: this script's race, so only the pool's range is
    # counted; and a capacity lock whose hand this script removed while it was held may let
    # one create more through: one more is allowed then, and counted)
    allowed = CAP + (1 if w.cap_revoked else 0)
    if sampler.peak_unclaimed > allowed:
        prefix = f"dockpool-{w.name}-"
        worst = max(sampler.samples, key=lambda rows: sum(n.startswith(prefix) for n, _ in rows))
        problems.append(f"{sampler.peak_unclaimed} unclaimed members at once (cap {CAP}): {worst}")
    for cid, name in {**w.decoys, **w.renamed}.items():
        if cid in w.pruned:
            continue  # stopped by a dockerd restart, then pruned by this script
        try:
            if w.client.containers.get(cid).name != name:
                problems.append(f"{name} was renamed by the pool")
        except docker.errors.NotFound:
            problems.append(f"{name} (not the pool's) was removed")
    return problems


def check_closed(w: World) -> list[str]:
    """Every process closes; nothing unclaimed and no bookkeeping is left."""
    problems = []
    for proc in w.procs:
        proc.close(timeout=90)
    left = [c.name for c in w.members()]
    if left:
        problems.append(f"unclaimed members left after close: {left}")
    book = [c for c in w.labelled() if c.role in ("presence", "hand")]
    for _ in range(15):  # (a removal in progress lists the container without a name)
        if not book:
            break
        time.sleep(1)
        book = [c for c in w.labelled() if c.role in ("presence", "hand")]
    # a removal the engine has begun and not finished (Engine 20.10 under load, seen for more
    # than 15 s once) is not a container left behind: somebody asked for it to go
    book = [c for c in book if c.status != "removing"]
    if book:
        rows = [f"{c.name or '(no name)'} {c.id[:12]} {c.status}" for c in book]
        problems.append(f"bookkeeping containers left after close: {rows}")
    return problems


def settle(w: World) -> list[str]:
    """Write a last valid config and wait until every live process applies it (and every
    claim it was sent has ended)."""
    w.write_config(w.size)
    for proc in w.closed:  # told to close with claims in flight: they answer them, then go
        proc.wait(lambda f: "closed" in f, 120)
    for proc in w.procs:
        proc.send("drain")
    for proc in w.procs:
        proc.wait(lambda f: "drained" in f, 180)
    deadline = time.monotonic() + 60
    sizes: list[int] = []
    while time.monotonic() < deadline:
        sizes = [proc.ask_size() for proc in w.procs]
        if all(s == w.size for s in sizes):
            return []
        time.sleep(1)
    return [f"the last valid config (size {w.size}) was not applied: {sizes}"]
