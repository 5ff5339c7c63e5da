"""A pool member's record, and how records begin: `provision` (a member this process makes)
and `discover` (a container it finds on the engine). What happens to a record afterwards is
`machine.transition`; `machine` re-exports all of this.
"""

from __future__ import annotations

import enum
from typing import Any, NewType

import attrs

from dockpool._core.effects import Create, Effect, Effects, Notify, Probe, Remove
from dockpool._core.member_events import ContainerId, Observed

MemberKey = NewType("MemberKey", str)


class State(enum.Enum):
    """Where a member is in its life."""

    CREATING = "creating"  # create call in flight; no container id yet
    STARTING = "starting"  # created; start call in flight
    WARMING = "warming"  # running; waiting for Docker's "healthy" or dockpool's probe
    READY = "ready"  # healthy (or running, without a health check): claimable
    CLAIMING = "claiming"  # a claim's rename is in flight
    CLAIMED = "claimed"  # renamed to its session's name: no longer managed
    RETIRING = "retiring"  # being removed by the pool
    GONE = "gone"  # removed, failed or lost: forgotten by the pool


TERMINAL = frozenset({State.CLAIMED, State.GONE})
#: States that count toward the pool's size (a create in flight counts, so refills never overshoot).
LIVE = frozenset({State.CREATING, State.STARTING, State.WARMING, State.READY, State.CLAIMING})
#: States that hold a container on the engine (for the max_containers cap).
HOLDING = LIVE | {State.RETIRING}


@attrs.frozen
class Member:
    """The pool's record of one member container."""

    key: MemberKey
    name: str
    state: State = State.CREATING
    container_id: ContainerId | None = None
    needs_health: bool = True
    probed: bool = False  # ready when dockpool's readiness probe answers (see spec.Readiness)
    warms: bool = False  # ...and its warm-up ran: then only the probe makes it ready
    born: float = 0.0  # pool clock time of provisioning (for max_age)
    fingerprint: str = ""  # the spec it is made of (a config reload can change the pool's spec)
    dead: bool = False  # died while a claim's rename was in flight
    reserved_for: str | None = None  # a cold start's member: only this session may claim it


@attrs.frozen
class MemberInfo:
    """What the member signals carry (`member`): a snapshot of one member, taken when the
    signal was sent. Public and stable, unlike the pool's own record."""

    key: str  # the member's key, also the end of its name; stable for its life
    name: str  # its member name `dockpool-<pool>-<key>` (a claim: the lease has the session)
    state: State
    container_id: str | None  # None while its create is in flight
    born: float  # when the pool began to provision it (the pool's monotonic clock)
    reserved_for: str | None  # a cold start's member: the one session that may claim it

    @classmethod
    def of(cls, member: Member) -> MemberInfo:
        return cls(member.key, member.name, member.state, member.container_id, member.born,
                   member.reserved_for)  # fmt: skip


def provision(
    key: MemberKey,
    name: str,
    *,
    needs_health: bool,
    now: float,
    fingerprint: str = "",
    reserved_for: str | None = None,
    probed: bool = False,
    warms: bool = False,
) -> tuple[Member, Effects]:
    """A new member, and the effect that makes its container."""
    member = Member(
        key=key,
        name=name,
        needs_health=needs_health,
        probed=probed,
        warms=warms,
        born=now,
        fingerprint=fingerprint,
        reserved_for=reserved_for,
    )
    return member, (Create(), Notify("member_creating"))


def discover(
    key: MemberKey,
    container_id: ContainerId,
    seen: Observed,
    *,
    needs_health: bool,
    fingerprint: str,
    current: str,
    now: float,
    probed: bool = False,
    warms: bool = False,
    upkeep: bool = True,
) -> tuple[Member, Effects]:
    """The record of a container this process did not create, from what the engine showed.

    A healthy member of the current spec is adopted as ready (warmed again first if the spec
    has a warm-up: whoever made it may have died before its warm-up ended), one still warming
    as warming; anything else (another spec, never started, exited, paused, unhealthy) is
    retired. Except by a process that does not do the `upkeep`: it cannot remove anything, and
    a member created but not started yet is the leader's refill on its way (its start event
    follows), so it follows it as starting (if it never starts, the upkeep retires it once it
    is not ready within ready_timeout). A
    retiring member is removed only by the upkeep leader and only while holding its lock, so
    a cold start in flight elsewhere (it holds its member's lock from before its create) is
    never removed by this.
    """
    member = Member(
        key=key,
        name=seen.name.lstrip("/"),
        state=State.STARTING,
        container_id=container_id,
        needs_health=needs_health,
        probed=probed,
        warms=warms,
        born=now,
        fingerprint=fingerprint,
    )
    healthy = seen.health == "healthy" or (seen.health is None and not needs_health)
    if fingerprint != current:
        why = "made of an older spec"
    elif seen.status == "running" and seen.health == "healthy" and not warms:
        return moved_to(member, State.READY, Notify("member_ready", "adopted"))
    elif seen.status == "running" and probed and seen.health != "unhealthy":
        return moved_to(member, State.WARMING, Probe(), Notify("member_started", "discovered"))
    elif seen.status == "running" and healthy and not warms:
        return moved_to(member, State.READY, Notify("member_ready", "adopted"))
    elif seen.status == "running" and seen.health == "starting":
        return moved_to(member, State.WARMING, Notify("member_started", "discovered"))
    elif seen.status == "created" and not upkeep:
        return moved_to(member, State.STARTING, Notify("member_creating", "discovered"))
    else:
        why = f"found {seen.status}/{seen.health}"
    return moved_to(member, State.RETIRING, Remove(), Notify("member_retiring", f"stale: {why}"))


def moved_to(
    member: Member, state: State, *effects: Effect, **changes: Any
) -> tuple[Member, Effects]:
    return attrs.evolve(member, state=state, **changes), effects
