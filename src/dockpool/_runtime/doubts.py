"""Claims whose outcome the engine did not tell: resolved from the engine, never left as neither.

A claim renames a member to its session's name. Two things can leave that rename in doubt:

- its answer was lost (the connection broke after the engine acted) and the engine could not
  be asked within `Timeouts.resolve` what became of it (handover.py reads it back first);
- the hand that held the member's lock was destroyed before the rename (by `docker container
  prune`, say), so another process may have taken the lock and renamed the member too.

Either way the claim fails (the caller is told, nothing is handed out), and the container is
recorded here. It is resolved at the next resync, from the engine: a container that no longer
carries the session's name is someone else's now (left alone); one that still does was never
handed to anyone: it is removed, or, when this process's rename had taken it from another
session (the rename event's old name says so), given back that name. When the claim could
not see its rename's event (a gap in the stream), the old name may come from the stream later
(a late event, or the replay after a reconnect: renames.py remembers the latest renames); a
doubt that may be another session's, whose old name the stream never told, is left alone after
`_PATIENCE` seconds, with an error (`lease_for` takes it over). A container a claim
renamed and then had to discard (it died under the claim) whose removal failed is recorded too,
and removed by its id. A later claim of the same session, or `ContainerPool.lease_for`, takes a
doubt over instead (see `take`). Only this process knows its doubts: `lease_for` on another
process of the pool is for sessions whose claiming process is gone (a doubt of a live process
is settled by that process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import attrs
from loguru import logger

from dockpool._adapters.api import EngineApi
from dockpool._core.errors import ContainerNotFoundError, DockerError, NameConflictError
from dockpool._core.machine import ContainerId

#: Seconds a doubt that may be another session's waits for the stream to tell its old name.
_PATIENCE = 30.0


@attrs.frozen
class Doubt:
    """A container renamed (maybe) to `session` by a claim that did not hand it over."""

    container_id: ContainerId
    session: str
    member: str  # the member name it had before the claim
    #: the name it had when this process's rename reached it, if the event said; a name other
    #: than `member` means the rename took it from another session
    old_name: str | None = None
    #: the claim held a valid lock: if it carries the session's name, only this claim named it
    exclusive: bool = True
    #: a container this process renamed for a claim and must remove (it died under the claim;
    #: the removal failed): removed by its id whatever its name, nobody ever received it
    discard: bool = False
    since: float = attrs.field(factory=time.monotonic, eq=False)  # when it was recorded


class Doubts:
    """The doubts of one process, resolved at every resync."""

    def __init__(
        self,
        api: EngineApi,
        pool: str,
        recall: Callable[[ContainerId, str], str | None] = lambda cid, name: None,
    ) -> None:
        self._api = api
        self._pool = pool
        self._recall = recall  # the old name of a rename the stream saw (renames.py)
        self._mutex = threading.Lock()
        self._pending: dict[str, Doubt] = {}

    def add(self, doubt: Doubt, *, again: bool = False) -> None:
        if not again and not doubt.discard:
            logger.error(
                "pool {}: claim {}: the engine did not say whether it renamed {} to that name; "
                "nothing was handed out, and it is resolved at the next resync",
                self._pool, doubt.session, doubt.container_id[:12],
            )  # fmt: skip
        with self._mutex:
            self._pending[doubt.session or f"#{doubt.container_id}"] = doubt

    def __len__(self) -> int:
        with self._mutex:
            return len(self._pending)

    def take(self, session: str) -> Doubt | None:
        """Hand the doubt about `session` to the caller, who resolves it (a retried claim of
        that session, or a host taking the sandbox over); None if there is none."""
        with self._mutex:
            return self._pending.pop(session, None)

    def resolve(self) -> None:
        """Ask the engine about every doubt; those it answers are settled (see the module).
        (Under the lock: a `take` of the same session waits, and never gets a removed one.)"""
        with self._mutex:
            for doubt in list(self._pending.values()):
                key = doubt.session or f"#{doubt.container_id}"
                if doubt.old_name is None and not doubt.discard:
                    old = self._recall(doubt.container_id, doubt.session)
                    if old is not None:
                        doubt = self._pending[key] = attrs.evolve(doubt, old_name=old)
                try:
                    settled = self._settle(doubt)
                except DockerError as exc:
                    logger.warning("pool {}: claim {} still in doubt: {}",
                                   self._pool, doubt.session, exc)  # fmt: skip
                    continue
                if settled:
                    del self._pending[key]

    def settle_now(self, session: str) -> None:
        """Settle the doubt about `session` now, if the engine answers (else at a resync)."""
        with self._mutex:
            doubt = self._pending.get(session)
            try:
                if doubt is not None and self._settle(doubt):
                    del self._pending[session]
            except DockerError as exc:
                logger.warning("pool {}: claim {} still in doubt: {}", self._pool, session, exc)

    def _settle(self, doubt: Doubt) -> bool:
        """Settle `doubt` from the engine; False to ask again at the next resync."""
        if doubt.discard:
            self._api.remove(doubt.container_id)
            return True
        try:
            name = self._api.inspect(doubt.container_id).name
        except ContainerNotFoundError:
            return True
        if name != doubt.session:
            logger.info("pool {}: claim {}: {} is named {} now; not ours",
                        self._pool, doubt.session, doubt.container_id[:12], name)  # fmt: skip
            return True
        if doubt.old_name is not None and doubt.old_name != doubt.member:
            logger.warning(
                "pool {}: claim {}: giving {} back its name {}",
                self._pool, doubt.session, doubt.container_id[:12], doubt.old_name,
            )  # fmt: skip
            try:
                self._api.rename(doubt.session, doubt.old_name)
            except NameConflictError as exc:
                logger.error("pool {}: claim {}: {}; left alone", self._pool, doubt.session, exc)
            return True
        if not doubt.exclusive and doubt.old_name is None:
            if time.monotonic() - doubt.since < _PATIENCE:
                return False  # the stream may still tell whose it was (a late event, a replay)
            logger.error(
                "pool {}: claim {}: {} may be another session's too; left alone (a host that "
                "knows it is its own takes it over with lease_for)",
                self._pool, doubt.session, doubt.container_id[:12],
            )  # fmt: skip
            return True
        logger.warning("pool {}: claim {}: removing {} (never handed out)",
                       self._pool, doubt.session, doubt.container_id[:12])  # fmt: skip
        self._api.remove(doubt.container_id)
        return True
