"""Taking over a sandbox whose claim was interrupted: the host's way back after a crash.

A claim renames a member to the session's name and then returns its lease. A process killed
between the two (SIGKILL, a crash, a power cut) leaves a running container under the session's
name that nobody received. It cannot be told from a delivered one on the engine (both carry the
pool's label and a session's name, and a claimed container belongs to its session: dockpool
never removes it on its own), but the host knows which sessions it was starting when it died.
So the interrupted claim is recognisable by its name, and the host settles it:
`ContainerPool.lease_for(session)` rebuilds the lease from the engine (the host takes the
sandbox over), `ContainerPool.release(session)` removes it (the host starts anew).

The same path resumes a claim of this process whose rename answer was lost and could not be
read back in time (doubts.py): a retry of that claim gets the container its rename made.
"""

from __future__ import annotations

from loguru import logger

from dockpool._adapters.api import ContainerView, EngineApi
from dockpool._core.errors import ClaimError, ContainerNotFoundError, DockerError
from dockpool._core.spec import ORIGIN_LABEL, POOL_LABEL, SPEC_LABEL, role_of
from dockpool._runtime.doubts import Doubt, Doubts
from dockpool._runtime.lease import Lease


def _session_view(api: EngineApi, pool: str, session: str) -> ContainerView | None:
    """The pool's member container that carries the name `session`, if any."""
    try:
        view = api.inspect(session)
    except ContainerNotFoundError:
        return None
    if view.labels.get(POOL_LABEL) != pool or role_of(view.labels) != "member":
        return None  # not this pool's sandbox: none of its business
    return view


def _lease(view: ContainerView, session: str) -> Lease:
    return Lease(
        container_id=view.id,
        name=session,
        ports=dict(view.ports),
        from_pool=view.labels.get(ORIGIN_LABEL) != "cold",
        seconds=0.0,
        spec_fingerprint=view.labels.get(SPEC_LABEL, ""),
    )


def lease_for(api: EngineApi, pool: str, session: str) -> Lease | None:
    """The lease of the pool's container named `session` (running), rebuilt from the engine;
    None if there is none. Raises DockerError if the engine cannot be asked."""
    view = _session_view(api, pool, session)
    if view is None or not view.running:
        return None
    logger.info("pool {}: {} taken over by its host ({})", pool, session, view.id[:12])
    return _lease(view, session)


def release(api: EngineApi, pool: str, session: str) -> bool:
    """Remove the pool's container named `session` for its host; True if one was removed."""
    view = _session_view(api, pool, session)
    if view is None:
        return False
    logger.info("pool {}: {} released by its host; removing {}", pool, session, view.id[:12])
    return api.remove(view.id)


def resume(api: EngineApi, pool: str, doubt: Doubt) -> Lease | None:
    """A retried claim of a session whose earlier rename was left in doubt by a lost answer:
    the container, if the rename made it the session's and it runs; else None (one that
    took the name but no longer runs is removed: nobody ever received it)."""
    try:
        view = api.inspect(doubt.container_id)
    except ContainerNotFoundError:
        return None
    if view.name != doubt.session:
        return None
    if not view.running:
        api.remove(view.id)
        return None
    logger.info("claim {}: resumed with {} (its rename's answer was lost earlier)",
                doubt.session, view.id[:12])  # fmt: skip
    return _lease(view, doubt.session)


def resume_claim(api: EngineApi, pool: str, doubts: Doubts, session: str) -> Lease | None:
    """Before a claim of `session`: if an earlier claim of it lost its rename's answer, the
    container that rename made, if it is the session's (`resume`); None otherwise. Raises
    ClaimError if the engine still cannot say (the doubt stays, settled when it can)."""
    doubt = doubts.take(session)
    if doubt is None:
        return None
    if not doubt.exclusive:
        doubts.add(doubt, again=True)  # another's, maybe: left to the resync
        return None
    try:
        return resume(api, pool, doubt)
    except DockerError as exc:
        doubts.add(doubt, again=True)  # the engine still cannot say: still a doubt
        raise ClaimError(
            f"claim {session!r}: an earlier claim of it renamed a member, and the engine "
            f"still cannot say what became of it ({exc}); it is settled when it can"
        ) from exc


def discard(api: EngineApi, lease: Lease) -> None:
    """Remove a container renamed for a claim whose caller went away before receiving it."""
    try:
        api.remove(lease.container_id)
    except DockerError as exc:
        logger.error("removing {} failed: {}", lease.name, exc)
