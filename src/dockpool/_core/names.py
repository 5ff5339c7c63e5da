"""The names and labels by which a pool knows its containers on the engine.

Labels are fixed at a container's creation: they say which pool a container belongs to, what
it is to the pool (a member, a process's presence, a hand that holds a lock) and who made it.
Names change: an unclaimed member's name is in the pool's range (`dockpool-<pool>-...`), and a
claim renames it to a session's name, the durable record that it belongs to that session.
Every name beginning with `dockpool-` is dockpool's own; no session may take one.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Label keys every pool member carries. Docker labels are fixed at creation.
POOL_LABEL = "dockpool.pool"
SPEC_LABEL = "dockpool.spec"
#: What a labelled container is to the pool (see ROLES); a container without it is a member.
ROLE_LABEL = "dockpool.role"
#: The process (its presence token) that made a presence or hand container.
OWNER_LABEL = "dockpool.owner"
#: How a member was made: "refill" (upkeep) or "cold" (a claim's cold start).
ORIGIN_LABEL = "dockpool.origin"

#: member: a pooled sandbox; presence: one per pool process, alive while the process is
#: (its stdin is the process's connection); hand: a created, never started container that a
#: process renames to a member's lock name to hold that member's lock (see _runtime/locks.py).
ROLES = ("member", "presence", "hand")

#: Prefix of an unclaimed member's name; the pool name and a short token follow.
NAME_PREFIX = "dockpool-"
#: Suffix of a lock's name (`lock_name`).
LOCK_SUFFIX = "-lock"
#: Suffix a hand's name takes for a moment to say its process wants a lock (see _runtime/ahead.py).
WANT_SUFFIX = "-want"


def member_name(pool: str, token: str) -> str:
    """The name of an unclaimed member: never a name a host application lists as a session."""
    return f"{NAME_PREFIX}{pool}-{token}"


def is_member_name(pool: str, name: str) -> bool:
    """True if `name` (with or without Docker's leading slash) is an unclaimed member's name."""
    return name.lstrip("/").startswith(f"{NAME_PREFIX}{pool}-")


def role_of(labels: Mapping[str, str]) -> str:
    """The role of a pool-labelled container (containers of older runs carry none: members)."""
    return labels.get(ROLE_LABEL, "member")


def lock_name(member: str) -> str:
    """The name whose holder owns `member`'s lock: one engine-wide name per member."""
    return f"{member}{LOCK_SUFFIX}"


def presence_name(pool: str, token: str) -> str:
    """The name of a pool process's presence container while it is not the upkeep leader."""
    return f"{NAME_PREFIX}{pool}-proc-{token}"


def leaving_name(pool: str, token: str) -> str:
    """The name a closing process's presence takes while it finishes (it no longer leads, and
    no longer counts as a process that stays: see `_runtime/peers.py`)."""
    return f"{NAME_PREFIX}{pool}-bye-{token}"


def leader_name(pool: str) -> str:
    """The name the upkeep leader's presence container holds (one per pool on an engine)."""
    return f"{NAME_PREFIX}{pool}-leader"


def hand_name(pool: str, token: str, index: int) -> str:
    """The resting name of hand `index` of process `token`."""
    return f"{NAME_PREFIX}{pool}-hand-{token}-{index}"
