"""Several processes, one pool: who is here, and who does the upkeep.

Every process of a pool runs a *presence* container: `cat` on a stdin that the process holds
open through an attach connection. When the process ends, however it ends (SIGKILL included),
the kernel closes that connection, the engine closes cat's stdin, and the presence dies: a
`die` event that every other process of the pool receives. No heartbeat, no polling.

A presence can also end while its process lives: someone stops or kills it, an attach over
tcp or ssh drops, an engine restart stops it (with no event at all). So the end of a presence
says "maybe gone", never "gone": the process itself notices at once (its presence's own event,
or the resync after a reconnect), stops using its locks (`present` turns false, and the locks
refuse to serve a claim) and rejoins with a new presence. The others leave its hands (the
locks it may hold mid-claim) alone for `Timeouts.peer_grace` after they first saw it gone,
and only then count it dead (departures.py).

The upkeep leader is the process whose presence holds the name `dockpool-<pool>-leader`
(name reservation is atomic: exactly one can). The engine, not a flag, says who leads: a
process leads while, and only while, its running presence holds that name (checked at every
resync and on every presence event; an engine restart that stopped the old leader's presence
silently cannot leave two leaders). A name is never enough to act on: a container holding
the leader name that is not a presence of this pool is left alone (an error says so), and
nobody leads until it is gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from dockpool._adapters.api import Closeable, ContainerView, EngineApi
from dockpool._core.errors import (
    AlreadyNamedError,
    ContainerNotFoundError,
    DockerError,
    NameConflictError,
)
from dockpool._core.machine import ContainerId
from dockpool._core.spec import (
    NAME_PREFIX,
    OWNER_LABEL,
    POOL_LABEL,
    ROLE_LABEL,
    leader_name,
    leaving_name,
    presence_name,
    role_of,
)
from dockpool._runtime.departures import Departures


class Peers:
    """This process's presence on the engine, and its part in choosing the upkeep leader."""

    def __init__(
        self,
        api: EngineApi,
        pool: str,
        token: str,
        image: Callable[[], tuple[str, dict[str, str]]],
        *,
        clock: Callable[[], float],
        grace: float,
        on_lead: Callable[[bool], None],
        resync_in: Callable[[float], None],
    ) -> None:
        self._api = api
        self._pool = pool
        self.token = token
        self._image = image
        #: who of the others is gone for sure enough to free their locks (departures.py)
        self.departures = Departures(token, clock, grace)
        self._on_lead = on_lead
        self._resync_in = resync_in  # ask the reconciler for a resync within N seconds
        self._mutex = threading.RLock()
        self._id: ContainerId | None = None
        self._attached: Closeable | None = None
        self._present = threading.Event()  # our presence runs (as far as we know)
        self._foreign_warned = False
        self.leader = False
        self.leaving = False

    @property
    def presence_id(self) -> ContainerId | None:
        return self._id

    @property
    def present(self) -> bool:
        """True while this process's presence runs: only then may it use its locks."""
        return self._present.is_set()

    def wait_present(self, timeout: float) -> bool:
        return self._present.wait(timeout)

    def join(self) -> None:
        """Start this process's presence (again, if the engine lost it) and contend for upkeep."""
        with self._mutex:
            if self.leaving:
                return
            if self._id is not None:
                try:
                    if self._api.inspect(self._id).running:
                        self._present.set()
                        self.contend()
                        return
                except ContainerNotFoundError:
                    pass
                self._absent()
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
            self._present.set()
        self.contend()

    def contend(self) -> bool:
        """Become the upkeep leader if the leader name is free or held by a dead presence of
        this pool; True if this process leads now (the engine says so, not a flag)."""
        with self._mutex:
            won = self.present and self._id is not None and not self.leaving and self._win()
        return self._set_leader(won)

    def _win(self) -> bool:
        if self._rename_to_leader():
            return True
        holder = self._leader_view()
        if holder is None:
            return self._rename_to_leader()
        if holder.id == self._id:
            return True
        if not self._is_presence(holder):
            self._foreign(holder)
            return False
        if holder.running:
            return False
        self._api.remove(holder.id)  # a dead leader of this pool: cleared by its id
        return self._rename_to_leader()

    def _set_leader(self, leads: bool) -> bool:
        with self._mutex:
            changed, self.leader = leads != self.leader, leads
        if changed:
            what = "now does" if leads else "no longer does"
            logger.info("pool {}: this process ({}) {} the upkeep", self._pool, self.token, what)
            self._on_lead(leads)
        return leads

    def _rename_to_leader(self) -> bool:
        assert self._id is not None
        try:
            self._api.rename(self._id, leader_name(self._pool))
        except NameConflictError:
            return False
        except AlreadyNamedError:  # ours already (a retry after a lost answer)
            return True
        return True

    def _leader_view(self) -> ContainerView | None:
        try:
            return self._api.inspect(leader_name(self._pool))
        except ContainerNotFoundError:
            return None

    def _is_presence(self, view: ContainerView) -> bool:
        return view.labels.get(POOL_LABEL) == self._pool and role_of(view.labels) == "presence"

    def _foreign(self, holder: ContainerView) -> None:
        if not self._foreign_warned:
            self._foreign_warned = True
            logger.error(
                "pool {}: the name {} is held by container {}, which is not a presence of this "
                "pool; dockpool never removes it, and nobody does the upkeep until it is gone",
                self._pool, leader_name(self._pool), holder.id[:12],
            )  # fmt: skip

    # -- what the engine says: events and resyncs -------------------------------------------------

    def on_event(
        self, container_id: ContainerId, action: str, name: str, old_name: str | None = None
    ) -> None:
        """A presence container's event (from the reconciler thread)."""
        leader = leader_name(self._pool)
        if container_id == self._id:
            if action in ("die", "destroy"):
                self._absent()
                self._resync_in(0.0)  # rejoin at once (the resync finds the presence gone)
            return
        if action == "rename" and name == leader and self.leader:
            self._set_leader(False)  # another presence holds the name: the engine says it leads
        elif (action in ("die", "destroy") and name == leader) or (
            action == "rename" and old_name == leader  # the leader stepped down
        ):
            self.contend()
        elif action == "die" and self.leader:
            # a follower's presence ended: it may be gone (its hands hold locks), or alive and
            # rejoining; look again once the grace is over
            self._resync_in(self.departures.grace + 0.1)

    def sync(self, views: list[ContainerView]) -> None:
        """A resync's list: rejoin if the engine lost our presence; lead exactly when our
        running presence holds the leader name; contend when no running presence does."""
        mine = next((v for v in views if v.id == self._id), None)
        if mine is None or not mine.running:
            self._absent()
            self.join()
            return
        holder = next((v for v in views if v.name == leader_name(self._pool)), None)
        self._set_leader(holder is not None and holder.id == self._id)
        if holder is None or (not holder.running and self._is_presence(holder)):
            self.contend()
        elif not self._is_presence(holder):
            self._foreign(holder)

    def _absent(self) -> None:
        """Our presence is gone: stop using our locks, stop leading (until the rejoin)."""
        if self._present.is_set():
            logger.warning("pool {}: this process's presence ended; rejoining", self._pool)
        self._present.clear()
        self._set_leader(False)

    def others_alive(self) -> bool:
        """True if another process of this pool runs and is not closing. (Each closing process
        steps down before it asks: of two closing at once, at least the later sees the other's
        leaving name, and sweeps.)"""
        views = self._api.list({POOL_LABEL: self._pool, ROLE_LABEL: "presence"})
        bye = f"{NAME_PREFIX}{self._pool}-bye-"
        return any(v.running and v.id != self._id and not v.name.startswith(bye) for v in views)

    def step_down(self) -> None:
        """Closing: give up the upkeep, and say so on the engine by renaming the presence to
        its leaving name. It keeps running, so this process's locks stay its own while it
        finishes (the last process sweeps the pool holding them)."""
        with self._mutex:
            self.leaving = True
            if self._id is not None:
                try:
                    self._api.rename(self._id, leaving_name(self._pool, self.token))
                except AlreadyNamedError:
                    pass
                except DockerError as exc:
                    logger.warning("pool {}: stepping down: {}", self._pool, exc)
        self._set_leader(False)

    def leave(self) -> None:
        """End this process's presence, and remove any other container labelled as its
        presence (one whose create answer was lost)."""
        with self._mutex:
            self.leaving = True
            self.leader = False
            self._present.clear()
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
        if view.labels.get(OWNER_LABEL) != self.token or not self._is_presence(view):
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
