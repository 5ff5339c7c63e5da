"""Serving a claim: a ready member renamed to the session's name, or a cold start.

The rename is the lock: Docker refuses a rename onto a taken name, and two claimers can never
pick the same member because picking moves it to CLAIMING under the engine's lock. A member
found dead at the re-check is dropped and the next one tried; with none left, the claim
creates and starts a container under the session's name itself and waits for it to be ready,
on its own container's events (the listener delivers them: it carries the pool label).
"""

from __future__ import annotations

import re
import threading
import time

from loguru import logger

from dockpool import signals
from dockpool._adapters.docker_api import ContainerView
from dockpool._core import machine as m
from dockpool._core.errors import (
    ClaimError,
    ContainerNotFoundError,
    DockerError,
    NameConflictError,
    NameInUseError,
)
from dockpool._core.events import ContainerEvent
from dockpool._runtime.engine import Engine
from dockpool._runtime.lease import Lease
from dockpool._runtime.reconciler import Reconciler

_DOCKER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
#: While a cold start waits for its health events, it double-checks with one inspect this often
#: (events can be lost; this wait is the only place dockpool looks twice).
_COLD_RECHECK = 2.0


class _NotReady(Exception):
    """A cold-started container did not become ready."""


def check_name(name: str) -> None:
    if not _DOCKER_NAME.match(name):
        raise ClaimError(f"{name!r} is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")


def claim_from_pool(engine: Engine, session_name: str, started: float) -> Lease | None:
    """Hand over a ready member renamed to `session_name`; None when the pool has none."""
    while True:
        with engine.lock:
            member = engine.table.pick_for_claim(engine.fingerprint)
            if member is None:
                return None
            engine.apply(member.key, m.ClaimRequested(session_name))
        assert member.container_id is not None
        cid, key = member.container_id, member.key
        try:
            view = engine.adapter.inspect(cid)
        except ContainerNotFoundError:
            engine.apply(key, m.ClaimFailed("container gone", alive=False))
            continue
        except DockerError as exc:
            engine.apply(key, m.ClaimFailed(str(exc)))
            raise ClaimError(f"claim {session_name!r}: {exc}") from exc
        healthy = view.health == "healthy" or not member.needs_health
        if not (view.running and healthy):
            why = f"found {view.status}/{view.health} at claim"
            engine.apply(key, m.ClaimFailed(why, alive=False))
            continue
        try:
            engine.adapter.rename(cid, session_name)
        except NameConflictError as exc:
            engine.apply(key, m.ClaimFailed("name in use"))
            raise NameInUseError(f"claim {session_name!r}: the name is already in use") from exc
        except ContainerNotFoundError:
            engine.apply(key, m.ClaimFailed("container gone", alive=False))
            continue
        except DockerError as exc:
            engine.apply(key, m.ClaimFailed(str(exc)))
            raise ClaimError(f"claim {session_name!r}: {exc}") from exc
        lease = Lease(
            container_id=cid,
            name=session_name,
            ports=dict(view.ports),
            from_pool=True,
            seconds=time.perf_counter() - started,
            spec_fingerprint=member.fingerprint,
        )
        with engine.lock:
            engine.counters.hits += 1
        engine.apply(key, m.ClaimSucceeded(), lease=lease)
        return lease


def cold_start(
    engine: Engine, reconciler: Reconciler, session_name: str, started: float, timeout: float
) -> Lease:
    """Create, start and wait for a container named `session_name`, outside the pool."""
    deadline = time.monotonic() + timeout
    with engine.lock:
        cap = engine.config.max_containers
        room = engine.changed.wait_for(
            lambda: engine.table.holding + engine.cold_in_flight < cap or engine.closing,
            timeout=timeout,
        )
        if engine.closing:
            raise ClaimError(f"claim {session_name!r}: the pool is closing")
        if not room:
            raise ClaimError(
                f"claim {session_name!r}: max_containers ({cap}) reached for {timeout} s"
            )
        engine.cold_in_flight += 1
        recipe = engine.recipe
    cid: m.ContainerId | None = None
    try:
        cid = engine.adapter.create(
            recipe.spec, session_name, engine.labels(recipe.fingerprint), image=recipe.image_id
        )
        view = _start_and_wait(engine, reconciler, cid, deadline)
    except NameConflictError as exc:
        raise NameInUseError(f"claim {session_name!r}: the name is already in use") from exc
    except (DockerError, _NotReady) as exc:
        if cid is not None:
            _discard(engine, cid)
        raise ClaimError(f"claim {session_name!r} (cold start): {exc}") from exc
    finally:
        with engine.lock:
            engine.cold_in_flight -= 1
            engine.changed.notify_all()
    lease = Lease(
        container_id=cid,
        name=session_name,
        ports=dict(view.ports),
        from_pool=False,
        seconds=time.perf_counter() - started,
        spec_fingerprint=recipe.fingerprint,
    )
    with engine.lock:
        engine.counters.misses += 1
    logger.info("claim {}: cold start in {:.2f} s (pool empty)", session_name, lease.seconds)
    signals.send("cold_start", engine.sender, lease=lease)
    return lease


def _start_and_wait(
    engine: Engine, reconciler: Reconciler, cid: m.ContainerId, deadline: float
) -> ContainerView:
    news = threading.Event()
    outcome: list[str] = []

    def watch(event: ContainerEvent) -> None:
        change = machine_outcome(event)
        if change:
            outcome.append(change)
            news.set()

    with engine.lock:
        reconciler.watchers[cid] = watch
    try:
        engine.adapter.start(cid)
        while True:
            view = engine.adapter.inspect(cid)
            if not view.running:
                raise _NotReady(f"container exited ({view.status}) before it was ready")
            if view.health == "unhealthy":
                raise _NotReady("container turned unhealthy before it was ready")
            if view.health == "healthy" or not engine.needs_health:
                return view
            left = deadline - time.monotonic()
            if left <= 0:
                raise _NotReady("container not healthy within ready_timeout")
            news.wait(min(left, _COLD_RECHECK))
            news.clear()
    finally:
        with engine.lock:
            reconciler.watchers.pop(cid, None)


def machine_outcome(event: ContainerEvent) -> str:
    """The events that end a cold start's wait."""
    if event.action.startswith("health_status") or event.action in {"die", "destroy", "oom"}:
        return event.action
    return ""


def _discard(engine: Engine, cid: m.ContainerId) -> None:
    try:
        engine.adapter.remove(cid)
    except DockerError as exc:
        logger.warning("removing failed cold start {} failed: {}", cid[:12], exc)
