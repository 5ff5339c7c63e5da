"""The member table: the pool's records, indexed by key, container id and name, with the counts
and choices (who to claim, who to retire, how many to create) that the pool makes from them.

No I/O and no locking here: the pool holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Iterator

from dockpool._core.machine import (
    HOLDING,
    LIVE,
    TERMINAL,
    ContainerId,
    Member,
    MemberKey,
    State,
)


class MemberTable:
    """The live (non-terminal) members of one pool."""

    #: How many container ids of members that left the table are remembered.
    TOMBSTONES = 10_000

    def __init__(self) -> None:
        self._members: dict[MemberKey, Member] = {}
        self._by_id: dict[ContainerId, MemberKey] = {}
        self.ready_since: dict[MemberKey, float] = {}
        #: bumped by every store: a resync ignores what it listed about a member that changed
        #: after its list began (the list is older than what the table knows)
        self.version = 0
        self._versions: dict[MemberKey, int] = {}
        #: ids of members that were claimed or went away: never discovered again from a list
        #: that may predate their departure (a stale row must not bring a claimed one back)
        self._departed: dict[ContainerId, None] = {}

    def __iter__(self) -> Iterator[Member]:
        return iter(list(self._members.values()))

    def __len__(self) -> int:
        return len(self._members)

    def get(self, key: MemberKey) -> Member | None:
        return self._members.get(key)

    def key_of(self, container_id: ContainerId) -> MemberKey | None:
        return self._by_id.get(container_id)

    def ids(self) -> set[ContainerId]:
        return set(self._by_id)

    def version_of(self, key: MemberKey) -> int:
        return self._versions.get(key, 0)

    def departed(self, container_id: ContainerId) -> bool:
        return container_id in self._departed

    def store(self, member: Member, now: float) -> None:
        """Record `member`'s new state; terminal members are forgotten (their id remembered)."""
        key = member.key
        self.version += 1
        if member.state in TERMINAL:
            self._members.pop(key, None)
            self._versions.pop(key, None)
            self.ready_since.pop(key, None)
            if member.container_id is not None:
                self._by_id.pop(member.container_id, None)
                self._departed[member.container_id] = None
                if len(self._departed) > self.TOMBSTONES:
                    self._departed.pop(next(iter(self._departed)))
            return
        self._versions[key] = self.version
        self._members[key] = member
        if member.container_id is not None:
            self._by_id[member.container_id] = key
        if member.state is State.READY:
            self.ready_since.setdefault(key, now)
        else:
            self.ready_since.pop(key, None)

    def count(self, *states: State) -> int:
        return sum(1 for m in self._members.values() if m.state in states)

    @property
    def live(self) -> int:
        """Members that count toward the target size (creates in flight included)."""
        return self.count(*LIVE)

    @property
    def holding(self) -> int:
        """Members that hold (or are about to hold) a container on the engine."""
        return self.count(*HOLDING)

    def to_create(self, target: int, cap: int, extra_holding: int = 0) -> int:
        """How many members to create now to reach `target` without exceeding `cap`."""
        deficit = target - self.live
        room = cap - self.holding - extra_holding
        return max(0, min(deficit, room))

    def pick_for_claim(
        self,
        fingerprint: str,
        skip: frozenset[MemberKey] = frozenset(),
        prefer: frozenset[str] = frozenset(),
    ) -> Member | None:
        """The ready, unreserved member of `fingerprint` (not in `skip`) that has been ready
        longest, so members age evenly; among them first those named in `prefer` (whose lock
        this process holds ahead). Other processes pick alike; the one that loses the
        member's lock learns it at once and picks again with that member in `skip`."""
        ready = [
            m
            for m in self._members.values()
            if m.state is State.READY
            and m.fingerprint == fingerprint
            and m.reserved_for is None
            and m.key not in skip
        ]
        if not ready:
            return None
        return min(
            ready, key=lambda m: (m.name not in prefer, self.ready_since.get(m.key, 0.0), m.born)
        )

    def surplus(self, target: int) -> list[Member]:
        """Members to retire to shrink to `target`: not-yet-ready ones first, newest first (they
        have cost least and serve no claim yet), then ready ones, oldest first (closest to max_age).
        """
        candidates = [
            m
            for m in self._members.values()
            if m.state in LIVE - {State.CLAIMING} and m.reserved_for is None
        ]
        # members being claimed still count toward the size (until the claim is done), but a
        # cold start's member is its claim's, not the pool's: counting it retired a warm
        # member that another claim was waiting for
        claiming = sum(
            1
            for m in self._members.values()
            if m.state is State.CLAIMING and m.reserved_for is None
        )
        excess = len(candidates) + claiming - target
        if excess <= 0:
            return []
        pending = sorted(
            (m for m in candidates if m.state is not State.READY), key=lambda m: -m.born
        )
        ready = sorted((m for m in candidates if m.state is State.READY), key=lambda m: m.born)
        return (pending + ready)[:excess]

    def outdated(self, fingerprint: str) -> list[Member]:
        """Unclaimed members made of another spec than `fingerprint` (after a spec change)."""
        return [
            m
            for m in self._members.values()
            if m.fingerprint != fingerprint
            and m.state in LIVE - {State.CLAIMING}
            and m.reserved_for is None
        ]

    def expired(self, now: float, max_age: float) -> list[Member]:
        """Ready members older than `max_age` seconds (none when max_age is 0)."""
        if max_age <= 0:
            return []
        return [
            m for m in self._members.values() if m.state is State.READY and now - m.born >= max_age
        ]

    def overdue(self, now: float, ready_timeout: float) -> list[Member]:
        """Unreserved members not ready `ready_timeout` seconds after they were made or found."""
        if ready_timeout <= 0:
            return []
        waiting = {State.CREATING, State.STARTING, State.WARMING}
        return [
            m
            for m in self._members.values()
            if m.state in waiting and m.reserved_for is None and now - m.born >= ready_timeout
        ]

    def next_expiry(self, max_age: float) -> float | None:
        """Clock time at which the next ready member reaches `max_age`."""
        if max_age <= 0:
            return None
        births = [m.born for m in self._members.values() if m.state is State.READY]
        return min(births) + max_age if births else None
