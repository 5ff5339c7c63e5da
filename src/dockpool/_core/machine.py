"""The life of one pool member, as a pure function: `transition(member, event)`.

The reconciler owns a table of `Member` records and feeds each one the events that concern it,
in order. This module decides what each event means; it performs nothing. Effects are plain
data that the runtime executes in one place (create, start, rename, remove, replace, notify).

    CREATING -created-> STARTING -started-> WARMING -healthy/answered-> READY -claim-> CLAIMING
       | create failed    | start failed,     | died, oom,         | died, oom,      | ok: CLAIMED
       v                  | died              | unhealthy, paused  | unhealthy       | lost: READY
     GONE <-destroyed- RETIRING <-------------+--------------------+------- died ----+
                      (remove in flight)

`CLAIMED` and `GONE` are terminal: a claimed container belongs to its session and nothing that
happens to it afterwards is the pool's business.

Every process of a pool keeps a record of every member on the engine, whoever created it:
`discover` makes the record of a container the process did not create (another process's
member, or one left by an earlier run) from what a list or an event showed, so that adoption
goes through this module too. A member made by a cold start is `reserved_for` its claimer's
session from birth and is never picked by another claim.
"""

from __future__ import annotations

from dockpool._core.effects import (
    NOTHING,
    Create,
    Discard,
    Effect,
    Effects,
    Failure,
    Notify,
    Probe,
    Remove,
    Rename,
    Replace,
    Start,
)
from dockpool._core.member import (
    HOLDING,
    LIVE,
    TERMINAL,
    Member,
    MemberInfo,
    MemberKey,
    State,
    discover,
    moved_to,
    provision,
)
from dockpool._core.member_events import (
    EVENT_TYPES,
    Answered,
    ClaimFailed,
    ClaimRequested,
    ClaimSucceeded,
    ContainerId,
    Created,
    CreateFailed,
    Destroyed,
    Died,
    Event,
    Healthy,
    Observed,
    Oom,
    Paused,
    Renamed,
    RetireRequested,
    Started,
    StartFailed,
    Unhealthy,
    WarmUpFailed,
)

__all__ = [
    "EVENT_TYPES", "HOLDING", "LIVE", "NOTHING", "TERMINAL", "Answered", "ClaimFailed",
    "ClaimRequested", "ClaimSucceeded", "ContainerId", "Create", "CreateFailed", "Created",
    "Destroyed", "Died", "Discard", "Effect", "Effects", "Event", "Failure", "Healthy", "Member",
    "MemberInfo",
    "MemberKey", "Notify", "Observed", "Oom", "Paused", "Probe", "Remove", "Rename", "Renamed",
    "Replace", "RetireRequested",
    "Start", "StartFailed", "Started", "State", "Unhealthy", "WarmUpFailed", "discover",
    "provision", "transition",
]  # fmt: skip


def _lost(member: Member, reason: str, *, failed: bool) -> tuple[Member, Effects]:
    """The container is broken but still exists: remove it and replace it."""
    fail: tuple[Effect, ...] = (Failure(reason),) if failed else ()
    lost = Notify("member_lost", reason)
    return moved_to(member, State.RETIRING, Remove(), *fail, Replace(reason), lost)


def _vanished(member: Member, reason: str, *, failed: bool) -> tuple[Member, Effects]:
    """The container no longer exists, or is no longer ours: just replace it."""
    fail: tuple[Effect, ...] = (Failure(reason),) if failed else ()
    return moved_to(member, State.GONE, *fail, Replace(reason), Notify("member_lost", reason))


def _observed_as(member: Member, seen: Observed) -> Event | None:
    """Translate a resync observation into the event it implies for this member, if any."""
    if seen.name.lstrip("/") != member.name and member.state is not State.CLAIMING:
        return Renamed(seen.name.lstrip("/"))
    if seen.status == "paused":
        return Paused()
    if seen.status in {"exited", "dead"}:
        return Died(None)
    if seen.status == "created" and member.state in {State.WARMING, State.READY}:
        return Died(None)
    if seen.status != "running":
        return None
    if seen.health == "healthy" or (
        seen.health is None and not member.needs_health and not member.probed
    ):
        return Healthy() if member.state is not State.STARTING else Started()
    if seen.health == "unhealthy":
        return Unhealthy()
    if member.state is State.STARTING:
        return Started()
    return None


def transition(member: Member, event: Event) -> tuple[Member, Effects]:
    """Decide what `event` means for `member`: its next record and the effects to carry out."""
    state = member.state
    if state in TERMINAL:
        return member, NOTHING
    if isinstance(event, Observed):
        if state is State.RETIRING:  # still there: the remove failed earlier; try again
            if event.name.lstrip("/") != member.name:  # renamed: not ours any more
                return moved_to(member, State.GONE, Notify("member_retired", "renamed"))
            return member, (Remove(),)
        implied = _observed_as(member, event)
        return (member, NOTHING) if implied is None else transition(member, implied)
    if state is State.CREATING:
        return _creating(member, event)
    if state is State.RETIRING:
        return _retiring(member, event)
    if state is State.CLAIMING:
        return _claiming(member, event)
    return _running(member, event)


def _creating(member: Member, event: Event) -> tuple[Member, Effects]:
    match event:
        case Created(container_id):
            return moved_to(member, State.STARTING, Start(), container_id=container_id)
        case CreateFailed(reason, capped) if capped:
            return moved_to(member, State.GONE, Notify("member_failed", reason))
        case CreateFailed(reason):
            return moved_to(member, State.GONE, Failure(reason), Notify("member_failed", reason))
        case RetireRequested(reason):
            return moved_to(member, State.RETIRING, Notify("member_retiring", reason))
    return member, NOTHING


def _retiring(member: Member, event: Event) -> tuple[Member, Effects]:
    match event:
        case Created(container_id):  # retired while its create was in flight
            return moved_to(member, State.RETIRING, Remove(), container_id=container_id)
        case CreateFailed():
            return moved_to(member, State.GONE, Notify("member_retired"))
        case Destroyed():
            return moved_to(member, State.GONE, Notify("member_retired"))
        case Renamed(new_name) if new_name != member.name:  # claimed elsewhere before the remove
            return moved_to(member, State.GONE, Notify("member_retired", f"renamed to {new_name}"))
    return member, NOTHING


def _claiming(member: Member, event: Event) -> tuple[Member, Effects]:
    match event:
        case ClaimSucceeded(alive) if alive and not member.dead:
            return moved_to(member, State.CLAIMED, Replace("claimed"), Notify("member_claimed"))
        case ClaimSucceeded():  # renamed, but dead: never handed out; this process removes it
            why = "died during its claim"
            return moved_to(
                member, State.RETIRING, Discard(), Replace(why), Notify("member_lost", why)
            )
        case ClaimFailed(reason, _, gone) if gone:
            return _vanished(member, f"claim failed: {reason}", failed=False)
        case ClaimFailed(reason, alive) if alive and not member.dead:
            return moved_to(member, State.READY, Notify("member_ready", f"claim failed: {reason}"))
        case ClaimFailed(reason):
            return _lost(member, f"claim failed: {reason}", failed=False)
        case Died() | Oom() | Unhealthy() | Paused() | Destroyed():
            return moved_to(member, State.CLAIMING, dead=True)
    return member, NOTHING


def _running(member: Member, event: Event) -> tuple[Member, Effects]:
    """STARTING, WARMING and READY: the container exists and the pool holds it."""
    state = member.state
    early = state is not State.READY  # a failure before ready counts toward back-off
    match event:
        case Started() if state is State.STARTING:
            if member.probed:
                return moved_to(member, State.WARMING, Probe(), Notify("member_started"))
            if member.needs_health:
                return moved_to(member, State.WARMING, Notify("member_started"))
            return moved_to(member, State.READY, Notify("member_ready"))
        case StartFailed(reason) if state is State.STARTING:
            return moved_to(member, State.RETIRING, Remove(), Failure(reason),
                       Notify("member_failed", reason))  # fmt: skip
        case Healthy() if state is State.STARTING and member.warms:
            return moved_to(member, State.WARMING, Probe(), Notify("member_started"))
        case Healthy() if state is not State.READY and not member.warms:
            return moved_to(member, State.READY, Notify("member_ready"))
        case Answered() if state is State.WARMING:
            return moved_to(member, State.READY, Notify("member_ready", "answered"))
        case WarmUpFailed(reason) if state is State.WARMING:
            return _lost(member, f"warm-up failed: {reason}", failed=True)
        case Unhealthy():
            return _lost(member, "unhealthy", failed=early)
        case Died(exit_code):
            return _lost(member, f"died (exit code {exit_code})", failed=early)
        case Oom():
            return _lost(member, "out of memory", failed=early)
        case Paused():
            return _lost(member, "paused by someone else", failed=False)
        case Destroyed():
            return _vanished(member, "removed by someone else", failed=False)
        case Renamed(new_name) if new_name != member.name:
            return _vanished(member, f"renamed to {new_name} by someone else", failed=False)
        case ClaimRequested(session_name) if state is State.READY and (
            member.reserved_for in (None, session_name)
        ):
            return moved_to(member, State.CLAIMING, Rename(session_name))
        case RetireRequested(reason, replace):
            extra: tuple[Effect, ...] = (Replace(reason),) if replace else ()
            return moved_to(
                member, State.RETIRING, Remove(), *extra, Notify("member_retiring", reason)
            )
    return member, NOTHING
