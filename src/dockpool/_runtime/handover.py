"""A claim's `Rename`, carried out: lock the member, rename it by its member name, check
that what was handed over is alive, let go of the lock (see locks.py for why the lock)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping

from dockpool._core import machine as m
from dockpool._core.errors import ContainerNotFoundError, DockerError, NameConflictError
from dockpool._runtime.executor import Executor
from dockpool._runtime.locks import Hand

#: How long a claim waits for its rename's event before it checks the member the slow way
#: (the event is logged before the rename's answer is sent: it normally comes with it).
_EVENT_WAIT = 0.5


def rename(
    ex: Executor,
    member: m.Member,
    session_name: str,
    cancel: threading.Event | None,
    hand: Hand | None = None,
) -> tuple[m.Event, Mapping[int, int]]:
    """Carry out a claim's Rename: lock, rename by member name, check, unlock.

    The check, for a member whose published ports the warm-up probe read: the engine's own
    event for the rename, applied by the reconciler (so every earlier event of the member was
    applied first: a death seen before the rename turns the claim down; renames.py). It
    costs no call. Without a stream that can vouch for it (a gap, no event within
    `_EVENT_WAIT`), and for other members: `prober.check` after the rename (a GET to its
    server; an inspect first if its ports are not known). With `readiness.check_at_claim`,
    a GET to its server sent alongside the rename (it answers, so it runs). Returns the
    machine event it ended with and the member's published ports. Raises NameConflictError if
    the session name is taken (after putting the member back). `hand`: the member's lock, if
    the caller took it already.
    """
    assert member.container_id is not None
    own = hand is None
    if own:
        try:
            hand = ex.locks.claim_hand(member.name)
        except DockerError as exc:
            return m.ClaimFailed(str(exc)), {}
        if hand is None:
            return m.ClaimFailed("locked by another process"), {}
    handed, waiter = False, None
    try:
        if cancel is not None and cancel.is_set():
            return m.ClaimFailed("cancelled"), {}
        known = ex.prober.ports_of(member)
        if known is not None and not ex.prober.checks_at_claim(member):
            waiter = ex.renames.expect(member.container_id, session_name)
        checked = ex.prober.alongside(member) if waiter is None else None
        try:
            ex.api.rename(member.name, session_name)
        except NameConflictError:
            ex.apply(member.key, m.ClaimFailed("session name in use"))
            raise
        except ContainerNotFoundError:
            return m.ClaimFailed("taken or removed elsewhere", alive=False, gone=True), {}
        except DockerError as exc:
            return m.ClaimFailed(str(exc)), {}
        if checked is not None:
            outcome = checked()
        elif waiter is not None and known is not None and waiter.wait(_EVENT_WAIT):
            outcome = (m.ClaimSucceeded(alive=True), known)  # the machine knows if it died
        else:
            outcome = ex.prober.check(member)
        handed = isinstance(outcome[0], m.ClaimSucceeded) and outcome[0].alive
        return outcome
    finally:
        ex.renames.forget(waiter)
        if own and hand is not None:
            ex.removes.submit(functools.partial(_let_go, ex, hand, handed))


def _let_go(ex: Executor, hand: Hand, handed: bool) -> None:
    """Let go of a claim's lock. After a hand-over its name guards nothing any more (the
    member is the session's now), so the rename that frees it waits for this process's
    claims in flight (at most `refill_yield` s): in a burst, the engine renames members for
    sessions first. After a failed claim the member may go back to READY: at once."""
    if handed:
        ex.state.yield_to_claims(ex.state.refill_yield)
    ex.locks.release(hand)
