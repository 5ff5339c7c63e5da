"""A claim's `Rename`, carried out: lock the member, rename it by its member name, check
that what was handed over answers, let go of the lock (see locks.py for why the lock)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping

from dockpool._core import machine as m
from dockpool._core.errors import ContainerNotFoundError, DockerError, NameConflictError
from dockpool._runtime.executor import Executor
from dockpool._runtime.locks import Hand


def rename(
    ex: Executor,
    member: m.Member,
    session_name: str,
    cancel: threading.Event | None,
    hand: Hand | None = None,
) -> tuple[m.Event, Mapping[int, int]]:
    """Carry out a claim's Rename: lock, rename by member name, check, unlock.

    The check: for a member of a spec with `readiness` whose published ports the warm-up
    probe read, one GET to its server, sent alongside the rename (it answers, so it runs);
    otherwise one inspect after the rename (running, not unhealthy, its ports), then that
    GET if the spec has `readiness`. Returns the machine event it ended with and the
    member's published ports. Raises NameConflictError if the session name is taken (after
    putting the member back). `hand`: the member's lock, if the caller took it already.
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
    handed = False
    try:
        if cancel is not None and cancel.is_set():
            return m.ClaimFailed("cancelled"), {}
        checked = ex.prober.alongside(member)
        try:
            ex.api.rename(member.name, session_name)
        except NameConflictError:
            ex.apply(member.key, m.ClaimFailed("session name in use"))
            raise
        except ContainerNotFoundError:
            return m.ClaimFailed("taken or removed elsewhere", alive=False, gone=True), {}
        except DockerError as exc:
            return m.ClaimFailed(str(exc)), {}
        outcome = checked()
        handed = isinstance(outcome[0], m.ClaimSucceeded) and outcome[0].alive
        return outcome
    finally:
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
