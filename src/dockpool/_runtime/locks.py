"""Member locks that hold across processes, built on the engine's one atomic primitive.

A rename is not a lock: two processes that rename one container to *different* names both
succeed. Name reservation is: of two containers renamed to one name, exactly one gets it. So a
member's lock is a name, `<member name>-lock`, and a process holds it by renaming one of its
own *hands* to it: small containers, created and never started, labelled with the process's
token (hands.py). The loser of a race gets a conflict at once and tries another member.

Holding the lock, a claimer renames the member *by its member name*, never by id: a claimer
that takes the lock after an earlier holder let go finds no container under that name any more
(404), so a stale view can never take a member that was already handed out. Upkeep removes a
member only while holding its lock, after reading its name back, so it never removes one that
a claim just renamed. A lock whose holder died (its hand keeps the name) is freed by the upkeep
leader, which removes hands whose owner's presence has been gone for a grace period (see
peers.py: a presence can end while its process lives, so its locks are not freed at once).

A process alone on a pool holds the locks of its ready members *ahead* of any claim (`hold`),
so that a claim's path is the one rename of the member: nothing else can take a member whose
lock it holds, and nobody else needs it. When another process of the pool shows up, it lets
all of them go (`let_go`), and from then on locks are taken per claim again.

A lock is only as good as its hand, and hands can vanish under a live process: `docker
container prune` removes them all (they are never started), someone may `rm -f` one, and the
leader frees the locks of a process it counts as gone. So the locks refuse to serve while this
process has no presence on the engine (`present`: the leader may count it gone), a hand that
the engine reports destroyed (its `destroy` event, or missing from a resync's list) is `lost`
at once and never used again, and a claim checks after its rename that its hand was not lost
before it (see handover.py). A call whose answer was lost is resolved by reading the hand back.

The other side of a broken lock: a process that takes a lock whose hand was destroyed a moment
ago (any process's: `broke`) cannot know whether the old holder's rename of the member is still
in flight; dockerd resolves a rename's old name before it locks the container, so that rename
can land right after this one. Such a claim reads its member's name back before handing it over
(`broke_lately`, handover.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from loguru import logger

from dockpool._adapters.api import EngineApi
from dockpool._core.errors import (
    AlreadyNamedError,
    ContainerNotFoundError,
    DockerError,
    NameConflictError,
)
from dockpool._core.machine import ContainerId
from dockpool._core.spec import WANT_SUFFIX, lock_name
from dockpool._runtime.hands import Hand, Hands

#: How long a lock whose hand was destroyed counts as broken lately (see `broke_lately`).
_BROKEN_FOR = 30.0

__all__ = ["Hand", "Locks"]


class Locks:
    """Acquire and release member locks through this process's hands."""

    def __init__(
        self,
        api: EngineApi,
        pool: str,
        token: str,
        image: Callable[[], tuple[str, dict[str, str]]],
        present: Callable[[float], bool],
        rejoin_wait: float,
    ) -> None:
        self._api = api
        self._pool = pool
        self._hands = Hands(api, pool, token, image)
        #: waits at most N s for this process's presence to run: only then may it take locks
        self._present = present
        self._rejoin_wait = rejoin_wait
        self._mutex = threading.Lock()
        self._held: dict[str, Hand] = {}  # member name -> the hand holding its lock, ahead
        self._pending: set[str] = set()  # being held ahead right now
        self._broken: dict[str, float] = {}  # lock name -> when a hand holding it was destroyed
        #: called when a member's lock is held by another process (ahead.py: `want`)
        self.on_locked: Callable[[], None] = lambda: None

    @property
    def labels(self) -> Mapping[str, str]:
        return self._hands.labels

    def acquire(self, member_name: str) -> Hand | None:
        """Hold `member_name`'s lock; None if another holder has it. Raises DockerError (also
        if this process has no presence on the engine, after waiting a little for its rejoin:
        it takes no lock without one)."""
        target = lock_name(member_name)
        for _ in range(3):
            if not self._present(self._rejoin_wait):
                raise DockerError(
                    f"pool {self._pool}: this process has no presence on the engine (rejoining); "
                    "it takes no lock until it is back"
                )
            hand = self._hands.take()
            try:
                self._api.rename(hand.id, target)
            except NameConflictError:
                self._hands.put(hand)
                return self._own_stuck(target)  # None: another holder has it
            except ContainerNotFoundError:  # removed under us (prune, rm -f): the others may be
                self.lost(hand.id)  # gone too; the resync's list tells
                continue
            except AlreadyNamedError:  # it holds that name already: ours
                pass
            except DockerError:
                if not self._read_back(hand, target):  # the answer was lost: did it happen?
                    raise
            hand.holds = target
            return hand
        raise DockerError(f"cannot keep a hand container for pool {self._pool}")

    def _own_stuck(self, target: str) -> Hand | None:
        """A hand of ours set aside holding `target` (letting go of it failed), read back:
        if the engine says it holds `target` still, the lock is ours and the caller gets the
        hand; if it went home after all (the answer was lost), or the engine cannot say, the
        lock is not ours to use (another process may hold it now). None then."""
        hand = self._hands.stuck_holding(target)
        if hand is None:
            return None
        name = self._hands.name_now(hand)
        if name == "":
            return None
        if name == target:
            return hand
        if name == hand.home:
            hand.holds = None
            self._hands.put(hand)
        else:
            self._hands.set_aside(hand)
        return None

    def _read_back(self, hand: Hand, target: str) -> bool:
        """After a rename of `hand` to `target` whose answer was lost: True if the engine did
        rename it (the lock is held); False if not (the hand is free again). If the engine
        cannot say, the hand is set aside holding `target`, and `repair` lets go of it."""
        name = self._hands.name_now(hand)
        if name is None:
            hand.holds = target
            self._hands.set_aside(hand)
            return False
        if name == target:
            return True
        if name:
            self._hands.put(hand)
        return False

    def hold(self, member_name: str) -> bool:
        """Hold `member_name`'s lock ahead of a claim (see `take`); False if someone else
        holds it. Raises DockerError."""
        with self._mutex:
            if member_name in self._held or member_name in self._pending:
                return True
            self._pending.add(member_name)
        try:
            hand = self.acquire(member_name)
        except DockerError:
            with self._mutex:
                self._pending.discard(member_name)
            raise
        with self._mutex:
            self._pending.discard(member_name)
            if hand is not None:
                self._held[member_name] = hand
        return hand is not None

    def claim_hand(self, member_name: str) -> Hand | None:
        """A hand holding `member_name`'s lock for the caller (who releases it): the one held
        ahead, else a new acquire; None if another process holds it. Raises DockerError."""
        hand = self.take(member_name)
        if hand is not None:
            return hand
        hand = self.acquire(member_name)
        if hand is not None:
            return hand
        for _ in range(100):  # our own `hold` may be taking it this very moment
            with self._mutex:
                if member_name in self._held:
                    return self._held.pop(member_name)
                if member_name not in self._pending:
                    break
            time.sleep(0.01)
        if not self._ours(lock_name(member_name)):  # (held by another process: say we want it)
            self.on_locked()
        return None

    def _ours(self, name: str) -> bool:
        """Does one of this process's hands hold the lock `name` (a claim's, one being let go
        or set aside)?"""
        return self._hands.holding(name)

    def signal_want(self) -> None:
        """Tell every process of the pool that this one wants a lock another may hold ahead
        (ahead.py): one of its hands renamed to `<home>-want` and back; the renames' events
        are the signal."""
        try:
            hand = self._hands.take()
        except DockerError as exc:
            logger.debug("pool {}: signalling a want: {}", self._pool, exc)
            return
        hand.holds = f"{hand.home}{WANT_SUFFIX}"
        try:
            self._api.rename(hand.id, hand.holds)
        except ContainerNotFoundError:
            self.lost(hand.id)
            return
        except DockerError as exc:  # it may have happened: sent home either way (`repair`)
            logger.debug("pool {}: signalling a want: {}", self._pool, exc)
        self.release(hand)

    def take(self, member_name: str) -> Hand | None:
        """The hand holding `member_name`'s lock ahead, now the caller's to release; or None
        (also while this process has no presence: its locks are not used then)."""
        if not self._present(0.0):
            return None
        with self._mutex:
            hand = self._held.pop(member_name, None)
        return hand if hand is not None and not hand.lost else None

    def held(self) -> frozenset[str]:
        with self._mutex:
            return frozenset(self._held)

    def let_go(self) -> None:
        """Release every lock held ahead (another process of the pool appeared, or closing)."""
        with self._mutex:
            hands, self._held = list(self._held.values()), {}
        for hand in hands:
            self.release(hand)

    def release(self, hand: Hand) -> None:
        """Let go of the lock `hand` holds (rename it home); a failure is retried by `repair`."""
        if hand.lost:
            return  # destroyed: the lock is free, and the hand is gone
        try:
            self._api.rename(hand.id, hand.home)
        except ContainerNotFoundError:
            self.lost(hand.id)
            return
        except AlreadyNamedError:
            pass  # home already (an earlier release whose answer was lost went through)
        except DockerError as exc:
            logger.warning("releasing lock {} failed: {} (retried later)", hand.holds, exc)
            self._hands.set_aside(hand)
            return
        hand.holds = None
        self._hands.put(hand)

    def repair(self) -> None:
        """Retry the releases that failed (called at every resync)."""
        for hand in self._hands.stuck():
            self.release(hand)

    def ids(self) -> set[ContainerId]:
        return self._hands.ids()

    def lost(self, container_id: ContainerId, *, event: bool = False) -> None:
        """The engine destroyed this process's hand `container_id` (its `destroy` event, with
        `event`, or a resync's list without it): the lock it held is free now, so it is never
        used again."""
        hand = self._hands.lost(container_id, event=event)
        if hand is not None:
            self._forget(hand)

    def reconcile(self, before: set[ContainerId], listed: set[ContainerId]) -> None:
        """A resync's list showed this process's hands as `listed`: of the hands it had
        before the list began (`before`, from `ids`), the others are gone."""
        for hand in self._hands.reconcile(before, listed):
            self._forget(hand)

    def close(self) -> None:
        """Remove every hand of this process (a lock still held is released by that)."""
        with self._mutex:
            self._held = {}
        self._hands.close()

    def broke(self, name: str) -> None:
        """A hand (any process's) was destroyed while it held the lock `name`."""
        now = time.monotonic()
        with self._mutex:
            self._broken = {k: t for k, t in self._broken.items() if now - t < _BROKEN_FOR}
            self._broken[name] = now

    def broke_lately(self, name: str | None) -> bool:
        """Was the lock `name` broken (its hand destroyed) in the last `_BROKEN_FOR` s? Its
        old holder's rename of the member may then land after a new holder's."""
        with self._mutex:
            when = self._broken.get(name or "")
        return when is not None and time.monotonic() - when < _BROKEN_FOR

    def _forget(self, hand: Hand) -> None:
        with self._mutex:
            self._held = {m: h for m, h in self._held.items() if h is not hand}
