"""The faults of a chaos run, chosen by the run's seeded RNG, each acting on the real engine (or
through the proxy the pool processes reach it by) the way a person, a cron job or a network
would: on members, on the pool's bookkeeping, on its answers, on its processes and its file."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from tests.chaos.world import IMAGE, RUN_LABEL, Session, World

ROOT = Path(__file__).resolve().parents[2]

Kind = tuple[str, float, Callable[[World], object]]


def kinds(dockerd: bool) -> list[Kind]:
    """Every fault kind, with its weight."""
    found: list[Kind] = [
        ("kill", 3, lambda w: _on_member(w, _api(w).kill)),
        ("rm -f", 3, lambda w: _on_member(w, lambda n: _touch(w, n, _api(w).remove_container, force=True))),
        ("pause", 1, lambda w: _on_member(w, _api(w).pause)),
        ("stop", 2, lambda w: _on_member(w, lambda n: _api(w).stop(n, timeout=0))),
        ("restart", 1, lambda w: _on_member(w, lambda n: _api(w).restart(n, timeout=0))),
        ("unhealthy", 2, lambda w: _on_member(
            w, lambda n: _api(w).exec_start(_api(w).exec_create(n, ["stub-ctl", "unhealthy"])))),
        ("rename by others", 1, _rename_by_others),
        ("presence killed", 1, lambda w: _on_book(w, "presence", _api(w).kill)),
        ("presence stopped", 1, lambda w: _on_book(w, "presence", lambda i: _api(w).stop(i, timeout=0))),
        ("presence removed", 0.5, lambda w: _on_book(w, "presence", lambda i: _api(w).remove_container(i, force=True))),
        ("hand removed", 1, _remove_hand),
        ("prune", 1, _prune),
        ("prune mid claims", 1, _prune_mid_claims),
        ("attach cut", 1, lambda w: w.proxy.cut("attach")),
        ("events cut", 1, lambda w: w.proxy.cut("events")),
        ("session rename lost", 2, lambda w: w.proxy.plan.arm("rename", "lose", match=f"name=c{w.run[:4]}")),
        ("lock rename lost", 1, lambda w: w.proxy.plan.arm("rename", "lose", match="-lock")),
        ("release lost", 1, lambda w: w.proxy.plan.arm("rename", "lose", match="-hand-")),
        ("rename refused", 1, lambda w: w.proxy.plan.arm("rename", "refuse")),
        ("create lost", 1, lambda w: w.proxy.plan.arm("create", "lose")),
        ("remove lost", 1, lambda w: w.proxy.plan.arm("remove", "lose")),
        ("inspects refused", 0.5, lambda w: w.proxy.plan.arm("inspect", "refuse", count=3)),
        ("slow list", 0.5, lambda w: w.proxy.plan.arm("list", "delay", seconds=2.0)),
        ("let-go lost, claims race", 1, _lost_let_go_race),
        ("remove refused", 0.5, lambda w: w.proxy.plan.arm("remove", "refuse", count=2)),
        ("close with claims in flight", 0.5, _close_mid_claims),
        ("retry a refused session", 1, _retry_refused),
        ("SIGKILL a pool process", 1, _sigkill),
        ("garbage config", 1, lambda w: w.config.write_bytes(w.rng.randbytes(64))),
        ("invalid config", 1, lambda w: w.config.write_text("[sandbox]\ncontainer_pool_size = -1\n")),
        ("valid config", 2, _resize),
        ("decoy", 1, _decoy),
    ]  # fmt: skip
    if dockerd:
        found.append(("dockerd restart", 0.3, _restart_dockerd))
    return found


def _api(w: World) -> Any:
    return w.client.api


#: Kinds that damage an unclaimed member (each may cost a create to replace it).
MEMBER_FAULTS = ("kill", "rm -f", "pause", "stop", "restart", "unhealthy", "rename by others")


def _on_member(w: World, act: Callable[[str], Any]) -> None:
    """Act on a running unclaimed member by its name, as a person at the CLI would: one
    claimed meanwhile no longer answers to that name."""
    running = sorted((c for c in w.members() if c.status == "running"), key=lambda c: c.id)
    if running:
        act(w.rng.choice(running).name)


def _on_book(w: World, role: str, act: Callable[[str], Any]) -> None:
    """Act on one of the pool's presences or hands (by id)."""
    rows = sorted((c for c in w.labelled() if c.role == role), key=lambda c: c.id)
    if rows:
        act(w.rng.choice(rows).id)


def _touch(w: World, name: str, act: Callable[..., Any], **options: Any) -> None:
    """Remove or rename by name, and remember which container that hit: by the time the
    request runs, a claim may have made it a session's (the engine resolves the name before
    it locks the container), and that is this script's race, not the pool's."""
    try:
        cid = w.client.api.inspect_container(name)["Id"]
    except docker.errors.NotFound:
        return
    act(name, **options)
    w.touched[cid] = name


def _remove_hand(w: World) -> None:
    rows = sorted((c for c in w.labelled() if c.role == "hand"), key=lambda c: c.id)
    if rows:
        hand = w.rng.choice(rows)
        w.cap_revoked += hand.name.endswith("-cap-lock")
        w.client.api.remove_container(hand.id, force=True)


def _prune(w: World) -> None:
    """`docker container prune` of the pool's stopped containers: hands, dead presences and
    members; also claimed sandboxes and containers renamed by others that a dockerd restart
    stopped: those are this script's doing, remembered as such."""
    w.cap_revoked += any(c.name.endswith("-cap-lock") for c in w.labelled())
    done = w.client.api.prune_containers(filters={"label": f"dockpool.pool={w.name}"})
    w.pruned.update(done.get("ContainersDeleted") or [])


def _prune_mid_claims(w: World) -> None:
    """Every process claims at once, and a prune destroys the hands holding locks mid-claim:
    a claim whose rename is in flight when its lock is broken races the process that takes the
    lock next (dockerd resolves a rename's old name before it locks the container: both
    renames can land, the stale one last; the 28.5 run found a leased container renamed so)."""
    for proc in list(w.procs):
        prefix = f"c{w.run[:4]}s{w.step}p{w.procs.index(proc)}"
        for i in range(2):
            w.sessions[f"{prefix}-{i}"] = Session(f"{prefix}-{i}", proc)
        proc.send(f"spawn 2 {prefix}")
    time.sleep(w.rng.uniform(0.0, 0.03))
    _prune(w)


def _rename_by_others(w: World) -> None:
    running = sorted((c for c in w.members() if c.status == "running"), key=lambda c: c.id)
    if not running:
        return
    c = w.rng.choice(running)
    new = f"other-{uuid.uuid4().hex[:8]}"
    locked = _locked(w, c.name)
    _touch(w, c.name, lambda n: w.client.api.rename(n, new))
    if c.id not in w.touched:
        return
    if locked or _locked(w, c.name):
        # a pool process held the member's lock (a claim or a removal in flight): this rename
        # ignored the pool's protocol and raced it; whoever wins is the engine's call, so it
        # is counted, not checked
        w.raced += 1
    else:
        w.renamed[c.id] = new


def _locked(w: World, member: str) -> bool:
    return bool(w.client.api.containers(all=True, filters={"name": f"^/{member}-lock$"}))


def _lost_let_go_race(w: World) -> None:
    """The next let-go of a lock loses its answer (the hand went home; its process may think
    it still holds the lock), and every process claims at the same moment: they race for the
    same members' locks (the review's finding: one container went to two sessions)."""
    w.proxy.plan.arm("rename", "lose", match="-hand-")
    for proc in list(w.procs):
        prefix = f"c{w.run[:4]}s{w.step}r{w.procs.index(proc)}"
        w.sessions[f"{prefix}-0"] = Session(f"{prefix}-0", proc)
        proc.send(f"spawn 1 {prefix}")


def _close_mid_claims(w: World) -> None:
    """A pool process is told to close (a SIGTERM of a host) right after two claims were sent
    to it: its claims in flight must end with a lease or an error, never a container under a
    session's name that nobody received; a new process replaces it."""
    proc = w.rng.choice(w.procs)
    prefix = f"c{w.run[:4]}s{w.step}c"
    for i in range(2):
        w.sessions[f"{prefix}-{i}"] = Session(f"{prefix}-{i}", proc)
    proc.send(f"spawn 2 {prefix}")
    proc.send("close")
    w.procs.remove(proc)
    w.closed.append(proc)
    w.start_proc()


def _retry_refused(w: World) -> None:
    """A host retries a session whose claim was refused (e.g. the engine did not say whether
    it renamed the member): on the process that refused it, so an earlier rename is resumed."""
    w.collect()
    # (only the first of a spawn's names can be asked again: `spawn 1 PREFIX` claims PREFIX-0)
    refused = [s for s in w.sessions.values()
               if s.error and not s.retried and s.proc in w.procs and s.name.endswith("-0")]  # fmt: skip
    if not refused:
        return
    session = w.rng.choice(refused)
    session.retried, session.error, session.errors = True, None, session.errors + 1
    session.proc.send(f"spawn 1 {session.name.rsplit('-', 1)[0]}")


def _sigkill(w: World) -> None:
    proc = w.rng.choice(w.procs)
    proc.kill()
    w.procs.remove(proc)
    w.dead.append(proc)
    w.start_proc()


def _resize(w: World) -> None:
    w.size = w.rng.randint(1, 4)
    w.write_config(w.size)


def _decoy(w: World) -> None:
    """A container that is not the pool's, named inside its range: by a member's, a hand's,
    a presence's or the leader's pattern, with another pool's label or none, created but
    never started (a stopped container is what the pool removes when it is its own)."""
    shapes = [f"decoy{len(w.decoys)}", uuid.uuid4().hex[:12], f"proc-{uuid.uuid4().hex[:8]}",
              f"hand-{uuid.uuid4().hex[:8]}-1", "leader"]  # fmt: skip
    name = f"dockpool-{w.name}-{w.rng.choice(shapes)}"
    labels = {RUN_LABEL: w.run}
    if w.rng.random() < 0.5:
        labels["dockpool.pool"] = f"{w.name}x"
    try:
        c = w.client.containers.create(IMAGE, name=name, labels=labels)
    except docker.errors.APIError:
        return  # the name is taken (the leader's, most likely): no decoy this time
    w.decoys[c.id] = name
    w.decoy_born[c.id] = w.step


def retire_decoys(w: World) -> list[str]:
    """A decoy holding the leader's name keeps the pool leaderless: its owner removes it a few
    faults later (checking first that nobody touched it)."""
    problems = []
    for cid, name in list(w.decoys.items()):
        if name.endswith("-leader") and w.step - w.decoy_born.get(cid, w.step) >= 3:
            try:
                if w.client.containers.get(cid).name != name:
                    problems.append(f"{name} was renamed by the pool")
                w.client.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                problems.append(f"{name} (not the pool's) was removed")
            del w.decoys[cid]
    return problems


def _restart_dockerd(w: World) -> None:
    subprocess.run(["bash", str(ROOT / "scripts/dockerd-ctl.sh"), "restart"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
