"""A claim's `Rename`, carried out: lock the member, rename it by its member name, check
that what was handed over is alive, let go of the lock (see locks.py for why the lock).

Two things can make a rename's outcome uncertain; neither may leave a container handed to
nobody, or to two sessions:

- **An answer lost after the engine acted** (a connection reset, a timeout): still holding the
  lock, the claim reads the member back by its id and goes on from what it finds: renamed (the
  claim proceeds as if the answer had come), not renamed (a clean failure: the member is
  back), gone. If the engine cannot say within `Timeouts.resolve`, the claim fails and the
  container is recorded as a doubt, settled at the next resync (doubts.py).
- **A lock lost before the rename** (its hand destroyed by `docker container prune` or
  `rm -f`): another process may have taken the lock and renamed the member as well, and two
  renames of one container by its old name can both succeed. The event stream tells at no
  cost whether the hand's `destroy` came before the rename (renames.py); without the stream
  the hand is read back. The claim fails, nothing is handed out, and the container is a doubt.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping

import attrs
from loguru import logger

from dockpool._core import machine as m
from dockpool._core.errors import (
    AlreadyNamedError,
    ClaimError,
    ContainerNotFoundError,
    DockerError,
    NameConflictError,
)
from dockpool._runtime.doubts import Doubt
from dockpool._runtime.executor import Executor
from dockpool._runtime.locks import Hand
from dockpool._runtime.renames import Waiter

#: How long a claim waits for its rename's event before it checks the member the slow way
#: (the event is logged before the rename's answer is sent: it normally comes with it).
_EVENT_WAIT = 0.5
#: ... and, after a check of its own, for the event to tell whether its lock held (else the
#: hand is read back, which cannot tell a hand destroyed after the rename from one before).
_LATE_EVENT = _EVENT_WAIT


def rename(
    ex: Executor,
    member: m.Member,
    session_name: str,
    cancel: threading.Event | None,
    hand: Hand | None = None,
    payload: str | None = None,
) -> tuple[m.Event, Mapping[int, int]]:
    """Carry out a claim's Rename: lock, deliver, rename by member name, check, unlock.

    Deliver: if the spec has an on-claim request (`Readiness.on_claim`), it is sent first,
    with `payload` as its body; a member that does not take it, or that took it and then could
    not be renamed, is discarded (it may hold part of the session's identity) and the claim
    goes on to the next member.

    The check, for a member whose published ports the warm-up probe read: the engine's own
    event for the rename, applied by the reconciler (so every earlier event of the member was
    applied first: a death seen before the rename turns the claim down; renames.py). It
    costs no call. Without a stream that can vouch for it (a gap, no event within
    `_EVENT_WAIT`), and for other members: `prober.check` after the rename (a GET to its
    server; an inspect first if its ports are not known). With `readiness.check_at_claim`,
    a GET to its server sent alongside the rename (it answers, so it runs). Returns the
    machine event it ended with and the member's published ports. Raises NameConflictError if
    the session name is taken (after putting the member back), ClaimError if the lock was
    lost before the rename (see the module). `hand`: the member's lock, if the caller took
    it already.
    """
    assert member.container_id is not None
    own = hand is None
    if hand is None:
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
        if hand.lost or not ex.peers_present(ex.timeouts.rejoin_wait):
            return m.ClaimFailed("its lock is no longer held (this process is rejoining)"), {}
        delivered = ex.prober.delivers(member)
        if delivered:
            failure = ex.prober.deliver(member, payload)
            if failure is not None:
                why = f"its on-claim request failed: {failure}"
                return m.ClaimFailed(why, alive=False), {}
        known = ex.prober.ports_of(member)
        lock = hand  # (bound for the guard below)
        waiter = ex.renames.expect(member.container_id, session_name, lambda: lock.destroy_seen)
        checked = None
        if waiter is None or known is None or ex.prober.checks_at_claim(member):
            checked = ex.prober.alongside(member)
        failed = _rename(ex, member, session_name, delivered)
        if failed is not None:
            return failed, {}
        if checked is not None:  # the check's call first: the event arrives meanwhile
            outcome = checked()
            seen = waiter is not None and waiter.wait(_LATE_EVENT)
        else:
            seen = waiter is not None and waiter.wait(_EVENT_WAIT)
            if seen and known is not None:
                outcome = (m.ClaimSucceeded(alive=True), known)  # the machine knows if it died
            else:
                outcome = ex.prober.check(member)
        if _lock_was_lost(ex, hand, waiter if seen else None):
            _in_doubt(ex, member, session_name, waiter if seen else None)
        handed = isinstance(outcome[0], m.ClaimSucceeded) and outcome[0].alive
        if handed and ex.locks.broke_lately(hand.holds):
            kept = _keep_name(ex, member, session_name)
            if kept is not None:
                handed, outcome = False, (kept, {})
        return outcome
    finally:
        ex.renames.forget(waiter)
        if own:
            ex.removes.submit(functools.partial(_let_go, ex, hand, handed))


def _rename(ex: Executor, member: m.Member, session: str, delivered: bool) -> m.Event | None:
    """Rename the member by its member name; None if the engine renamed it, else the claim's
    failure. Raises NameConflictError if the session's name is taken. A member that took an
    on-claim request (`delivered`) and is not renamed is not put back: it is discarded."""
    try:
        ex.api.rename(member.name, session)
    except NameConflictError:
        ex.apply(member.key, m.ClaimFailed("session name in use", alive=not delivered))
        raise
    except ContainerNotFoundError:
        return m.ClaimFailed("taken or removed elsewhere", alive=False, gone=True)
    except DockerError as exc:
        failed = _read_back(ex, member, session, exc, delivered)
        if failed is not None and delivered and isinstance(failed, m.ClaimFailed):
            return attrs.evolve(failed, alive=False)
        return failed
    return None


def _read_back(
    ex: Executor, member: m.Member, session: str, error: DockerError, delivered: bool
) -> m.Event | None:
    """The rename's answer was lost: ask the engine, by the member's id, whether it renamed it
    (None: it did, the claim goes on), for at most `Timeouts.resolve` seconds; ClaimError if
    the engine cannot say (a doubt: doubts.py). The member then stays this process's: back in
    the pool (the next claim renames it by its member name: if this rename went through,
    nothing answers to that name any more), or, if it took an on-claim request, retired."""
    assert member.container_id is not None
    deadline = time.monotonic() + ex.timeouts.resolve
    delay = 0.05
    while True:
        try:
            name = ex.api.inspect(member.container_id).name
        except ContainerNotFoundError:
            return m.ClaimFailed(f"{error} (and it is gone)", alive=False, gone=True)
        except DockerError as exc:
            if time.monotonic() + delay > deadline:
                why = f"{error}; the engine did not say whether it renamed the member"
                ex.apply(member.key, m.ClaimFailed(why, alive=not delivered))
                _doubt(ex, Doubt(member.container_id, session, member.name))
                raise ClaimError(f"claim {session!r}: {why} (settled at the next resync)") from exc
            time.sleep(delay)
            delay = min(2 * delay, 1.0)
            continue
        if name == session:
            logger.info("claim {}: the rename's answer was lost, but the engine renamed {}",
                        session, member.name)  # fmt: skip
            return None
        if name == member.name:
            return m.ClaimFailed(str(error))  # not renamed: the member is back
        return m.ClaimFailed(f"{error}; renamed to {name} by someone", alive=False, gone=True)


def _lock_was_lost(ex: Executor, hand: Hand, waiter: Waiter | None) -> bool:
    """Was the claim's lock gone before its rename? The event stream says so for free; without
    it, the hand is read back (a hand that still holds the lock name held it all along)."""
    if waiter is not None:
        return waiter.lost_before
    try:
        return ex.api.inspect(hand.id).name != hand.holds
    except ContainerNotFoundError:
        return True
    except DockerError:
        return hand.lost  # the engine cannot say: what the events told


def _keep_name(ex: Executor, member: m.Member, session: str) -> m.Event | None:
    """The claim's lock was broken a moment before it took it (the old holder's hand was
    destroyed): that holder's rename of the member, if it was in flight, may land right after
    this claim's (dockerd resolves a rename's old name before it locks the container; the
    stale claimer gives the name back when it sees that, see `_in_doubt`). So the name is read
    back, and a member moved away is renamed back by its id (this claim renamed it, nobody has
    received it). None if it carries the session's name; else the claim's failure. If the
    engine cannot say within `Timeouts.resolve`, None: the member is this claim's either way."""
    assert member.container_id is not None
    deadline = time.monotonic() + ex.timeouts.resolve
    while True:
        try:
            name = ex.api.inspect(member.container_id).name
            if name == session:
                return None
            logger.warning("claim {}: a stale rename (its lock was broken) moved {} to {}; "
                           "renaming it back", session, member.name, name)  # fmt: skip
            ex.api.rename(member.container_id, session)
            return None
        except ContainerNotFoundError:
            return m.ClaimFailed("removed under the claim", alive=False, gone=True)
        except AlreadyNamedError:
            return None
        except DockerError as exc:  # NameConflictError too: look again
            if time.monotonic() > deadline:
                if isinstance(exc, NameConflictError):
                    return m.ClaimFailed(f"its name was taken: {exc}", alive=False, gone=True)
                logger.error("claim {}: cannot read {}'s name back: {}", session, member.name, exc)
                return None
            time.sleep(0.05)


def _in_doubt(ex: Executor, member: m.Member, session: str, waiter: Waiter | None) -> None:
    assert member.container_id is not None
    lost = m.ClaimFailed("its lock was lost before the rename", alive=False, gone=True)
    ex.apply(member.key, lost)
    old = waiter.old_name if waiter is not None else None
    _doubt(ex, Doubt(member.container_id, session, member.name, old, exclusive=False))
    if old is not None and old != member.name:  # it took the name of another claim's session:
        ex.doubts.settle_now(session)  # given back at once, not at the next resync
    raise ClaimError(
        f"claim {session!r}: the lock on {member.name} was lost before its rename (its hand "
        "was removed by someone), so another process may have taken it too; nothing was "
        "handed out"
    )


def _doubt(ex: Executor, doubt: Doubt) -> None:
    """Record a doubt, settled at a resync that comes soon (not a periodic one a minute away)."""
    ex.doubts.add(doubt)
    ex.state.resync_soon(1.0)
    ex.wake()


def _let_go(ex: Executor, hand: Hand, handed: bool) -> None:
    """Let go of a claim's lock. After a hand-over its name guards nothing any more (the
    member is the session's now), so the rename that frees it waits for this process's
    claims in flight (at most `refill_yield` s): in a burst, the engine renames members for
    sessions first. After a failed claim the member may go back to READY: at once."""
    if handed:
        ex.state.yield_to_claims(ex.state.refill_yield)
    ex.locks.release(hand)
