"""Several processes, one pool: who is here, and who does the upkeep.

Every process of a pool runs a *presence* container: `cat` on a stdin that the process holds
open through an attach connection. When the process ends, however it ends (SIGKILL included),
the kernel closes that connection, the engine closes cat's stdin, and the presence dies: a
`die` event that every other process of the pool receives. No heartbeat, no polling.

The upkeep leader is the process whose presence holds the name `dockpool-<pool>-leader`
(name reservation is atomic: exactly one can). When the leader's presence dies, the others
remove the dead one by its id and race to rename theirs to that name; one wins within a few
milliseconds of the event. Only the leader creates, replaces, retires and removes members; every
process tracks every member and claims any of them (the locks make that safe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from dockpool._adapters.api import Closeable, ContainerView, EngineApi
from dockpool._core.errors import ContainerNotFoundError, DockerError, NameConflictError
from dockpool._core.machine import ContainerId
from dockpool._core.spec import (
    OWNER_LABEL,
    POOL_LABEL,
    ROLE_LABEL,
    leader_name,
    presence_name,
    role_of,
)


class Peers:
    """This process's presence on the engine, and its part in choosing the upkeep leader."""

    def __init__(
        self,
        api: EngineApi,
        pool: str,
        token: str,
        image: Callable[[], tuple[str, dict[str, str]]],
        on_lead: Callable[[bool], None],
        on_peer_gone: Callable[[], None] = lambda: None,
    ) -> None:
        self._api = api
        self._pool = pool
        self.token = token
        self._image = image
        self._on_lead = on_lead
        self._on_peer_gone = on_peer_gone
        self._mutex = threading.RLock()
        self._id: ContainerId | None = None
        self._attached: Closeable | None = None
        self.leader = False
        self.leaving = False

    @property
    def presence_id(self) -> ContainerId | None:
        return self._id

    def join(self) -> None:
        """Start this process's presence (again, if the engine lost it) and contend for upkeep."""
        with self._mutex:
            if self.leaving:
                return
            if self._id is not None:
                try:
                    if self._api.inspect(self._id).running:
                        self.contend()
                        return
                except ContainerNotFoundError:
                    pass
                self._drop()
            image, labels = self._image()
            labels.update({POOL_LABEL: self._pool, ROLE_LABEL: "presence", OWNER_LABEL: self.token})
            name = presence_name(self._pool, self.token)
            try:
                cid = self._api.create_marker(name, labels, image, stdin=True)
            except NameConflictError:  # an earlier presence of ours whose create answer was
                self._remove_own(name)  # lost (an engine restart): never started, nobody's
                cid = self._api.create_marker(name, labels, image, stdin=True)
            try:
                self._attached = self._api.attach_stdin(cid)
                self._api.start(cid)
            except DockerError:
                self._api.remove(cid)
                raise
            self._id = cid
        self.contend()

    def contend(self) -> bool:
        """Try to become the upkeep leader; True if this process is it."""
        with self._mutex:
            if self.leader or self._id is None or self.leaving:
                return self.leader
            won = self._rename_to_leader()
            if not won:
                holder = self._leader_view()
                if holder is not None and not holder.running:  # a dead leader: clear it
                    self._api.remove(holder.id)
                    won = self._rename_to_leader()
                elif holder is None:
                    won = self._rename_to_leader()
            self.leader = won
        if won:
            logger.info("pool {}: this process ({}) now does the upkeep", self._pool, self.token)
            self._on_lead(True)
        return won

    def _rename_to_leader(self) -> bool:
        assert self._id is not None
        try:
            self._api.rename(self._id, leader_name(self._pool))
        except NameConflictError:
            return False
        return True

    def _leader_view(self) -> ContainerView | None:
        try:
            return self._api.inspect(leader_name(self._pool))
        except ContainerNotFoundError:
            return None

    def on_event(self, container_id: ContainerId, action: str, name: str) -> None:
        """A presence container's event (from the reconciler thread)."""
        if action not in ("die", "destroy"):
            return
        if container_id == self._id:
            was = self.leader
            with self._mutex:
                self.leader = False
            if was:
                logger.warning("pool {}: this process's presence ended; upkeep paused", self._pool)
                self._on_lead(False)
            return  # rejoined when the engine is reachable again (see join)
        if name == leader_name(self._pool):
            self.contend()
        elif self.leader:  # a follower went away: its hands may hold locks; clear them now
            self._on_peer_gone()

    def dead_owners(self, views: list[ContainerView]) -> set[str]:
        """Tokens of processes that left hands or presences behind and have no running
        presence."""
        alive = {
            v.labels.get(OWNER_LABEL)
            for v in views
            if role_of(v.labels) == "presence" and v.running
        }
        owners = {
            v.labels.get(OWNER_LABEL, "")
            for v in views
            if role_of(v.labels) in ("hand", "presence")
        }
        return {o for o in owners if o and o not in alive and o != self.token}

    def others_alive(self) -> bool:
        """True if a presence of another process of this pool is running."""
        views = self._api.list({POOL_LABEL: self._pool, ROLE_LABEL: "presence"})
        return any(v.running and v.id != self._id for v in views)

    def leave(self) -> None:
        """End this process's presence (handing the upkeep to another process, if any), and
        remove any other container labelled as its presence (one whose create answer was lost)."""
        with self._mutex:
            self.leaving = True
            self.leader = False
            self._drop()
            try:
                own = {POOL_LABEL: self._pool, ROLE_LABEL: "presence", OWNER_LABEL: self.token}
                for view in self._api.list(own):
                    self._api.remove(view.id)
            except DockerError as exc:
                logger.warning("removing presence of pool {} failed: {}", self._pool, exc)

    def _remove_own(self, name: str) -> None:
        """Remove the container named `name` if it carries this process's token."""
        view = self._api.inspect(name)
        if view.labels.get(OWNER_LABEL) != self.token:
            raise NameConflictError(f"{name} is taken by a container of another owner")
        self._api.remove(view.id)

    def _drop(self) -> None:
        if self._attached is not None:
            self._attached.close()
            self._attached = None
        if self._id is not None:
            try:
                self._api.remove(self._id)
            except DockerError as exc:
                logger.warning("removing presence of pool {} failed: {}", self._pool, exc)
            self._id = None
