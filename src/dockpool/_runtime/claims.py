"""Serving a claim from the pool: a ready member renamed to the session's name.

A claim picks a ready member (inside this process the table's lock decides: picking moves it
to CLAIMING), then the executor carries out the machine's Rename: it takes the member's lock on
the engine (one name per member, held by renaming one of this process's hands to it: across
processes exactly one claimer holds it; a loser learns it at once and picks again), renames
the member *by its member name* to the session's name, and reads it back. A member that died
on the way is never handed out: the machine discards it and the claim picks again. With none
ready: a member already warming (warming.py), else a cold start (cold.py).
"""

from __future__ import annotations

import re
import threading
import time

from dockpool._core import machine as m
from dockpool._core.errors import (
    ClaimError,
    NameConflictError,
    NameInUseError,
)
from dockpool._core.spec import NAME_PREFIX
from dockpool._runtime import handover
from dockpool._runtime.executor import Executor
from dockpool._runtime.lease import Lease
from dockpool._runtime.locks import Hand

_DOCKER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
#: A claim that found ready members locked by another process retries them for this long
#: before it cold-starts (a process alone holds its members' locks ahead, and lets go of them
#: as soon as it sees another process of the pool: see ahead.py).
_LOCKED_WAIT = 0.5


def check_name(name: str) -> None:
    """Refuse a session name that is not a container name, or that the pool could mistake for
    its own: every name beginning with `dockpool-` is dockpool's (members, locks, presences,
    the leader), and a claimed container under such a name would look unclaimed to a process
    that missed its rename."""
    if not _DOCKER_NAME.match(name):
        raise ClaimError(f"{name!r} is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")
    if name.lstrip("/").startswith(NAME_PREFIX):
        raise ClaimError(
            f"{name!r} cannot be a session's name: names beginning with {NAME_PREFIX!r} are "
            "dockpool's own (its members, locks and processes)"
        )


def lease_of(member: m.Member, session: str, ports: dict[int, int], pool: bool, t0: float) -> Lease:
    return Lease(
        container_id=member.container_id or m.ContainerId(""),
        name=session,
        ports=ports,
        from_pool=pool,
        seconds=time.perf_counter() - t0,
        spec_fingerprint=member.fingerprint,
    )


def claim_member(
    ex: Executor,
    member: m.Member,
    session: str,
    cancel: threading.Event | None,
    hand: Hand | None = None,
    left: m.Effects | None = None,
    payload: str | None = None,
) -> tuple[m.Event | None, dict[int, int]]:
    """Ask the machine for `member`'s claim and carry it out; the outcome event and ports
    (None: the member was not claimable any more, nothing was done). `left`: the effects of
    a ClaimRequested the caller already applied; `payload`: the on-claim request's body."""
    if left is None:
        left = ex.apply(member.key, m.ClaimRequested(session))
    if not any(isinstance(e, m.Rename) for e in left):
        # another claimer picked it first (picks are not exclusive; the request is): this
        # outcome concerns no one but this claimer, and must not reach the member's record
        return None, {}
    claiming = ex.state.table.get(member.key) or member
    try:
        outcome, ports = handover.rename(ex, claiming, session, cancel, hand, payload)
    except NameConflictError as exc:
        raise NameInUseError(f"claim {session!r}: the name is already in use") from exc
    return outcome, dict(ports)


def claim_from_pool(
    ex: Executor,
    session: str,
    started: float,
    cancel: threading.Event | None = None,
    payload: str | None = None,
) -> Lease | None:
    """Hand over a ready member renamed to `session`; None when the pool has none."""
    state = ex.state
    tried: set[m.MemberKey] = set()
    locked: set[m.MemberKey] = set()  # held by another process: may be let go in a moment
    give_up = time.monotonic() + _LOCKED_WAIT
    while True:
        if cancel is not None and cancel.is_set():
            return None
        request = m.ClaimRequested(session)
        with state.lock:  # the pick and the request at once: concurrent claimers pick apart
            member = state.table.pick_for_claim(
                state.fingerprint, frozenset(tried), prefer=ex.locks.held()
            )
            moved = ex.transition(member.key, request) if member is not None else None
        if member is None and locked and time.monotonic() < give_up:
            with state.lock:  # a process that held locks ahead lets go when it sees us
                state.changed.wait(0.02)
            tried -= locked
            locked.clear()
            continue
        if member is None:
            return None
        tried.add(member.key)
        left = ex.follow(moved, request)
        outcome, ports = claim_member(ex, member, session, cancel, left=left, payload=payload)
        if outcome is None:
            continue
        lease = lease_of(member, session, ports, True, started)
        if handed_over(ex, member, outcome, lease):
            with state.lock:
                state.counters.hits += 1
            return lease
        if isinstance(outcome, m.ClaimFailed) and outcome.reason == "locked by another process":
            locked.add(member.key)
            with state.lock:
                state.counters.lost_races += 1


def handed_over(ex: Executor, member: m.Member, outcome: m.Event, lease: Lease) -> bool:
    """Give the machine the claim's outcome; True if it let the claim through.

    A member that died while its rename was in flight is turned down by the machine (and
    discarded) even though the rename succeeded: a dead sandbox is never handed out.
    """
    if not (isinstance(outcome, m.ClaimSucceeded) and outcome.alive):
        ex.apply(member.key, outcome)
        return False
    moved = ex.transition(member.key, outcome)
    # (not "it left the table": a member turned down is discarded, and so leaves it too)
    claimed = moved is not None and moved[1].state is m.State.CLAIMED
    ex.follow(moved, outcome, lease=lease)
    return claimed
