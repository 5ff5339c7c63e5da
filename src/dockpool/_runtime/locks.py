"""Member locks that hold across processes, built on the engine's one atomic primitive.

A rename is not a lock: two processes that rename one container to *different* names both
succeed. Name reservation is: of two containers renamed to one name, exactly one gets it. So a
member's lock is a name, `<member name>-lock`, and a process holds it by renaming one of its
own *hands* to it: small containers, created and never started, labelled with the process's
token. The loser of a race gets a conflict at once and tries another member.

Holding the lock, a claimer renames the member *by its member name*, never by id: a claimer
that takes the lock after an earlier holder let go finds no container under that name any more
(404), so a stale view can never take a member that was already handed out. Upkeep removes a
member only while holding its lock, after reading its name back, so it never removes one that
a claim just renamed. A lock whose holder died (its hand keeps the name) is freed by the upkeep
leader, which removes hands whose owner's presence is gone (see peers.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import attrs
from loguru import logger

from dockpool._adapters.api import EngineApi
from dockpool._core.errors import ContainerNotFoundError, DockerError, NameConflictError
from dockpool._core.machine import ContainerId
from dockpool._core.spec import OWNER_LABEL, POOL_LABEL, ROLE_LABEL, hand_name, lock_name


@attrs.define
class Hand:
    """One of this process's hand containers."""

    id: ContainerId
    home: str  # its resting name
    holds: str | None = None  # the lock name it holds, if any


class Locks:
    """Acquire and release member locks through this process's hands."""

    def __init__(
        self, api: EngineApi, pool: str, token: str, image: Callable[[], tuple[str, dict[str, str]]]
    ) -> None:
        self._api = api
        self._pool = pool
        self._token = token
        self._image = image
        self._mutex = threading.Lock()
        self._free: list[Hand] = []
        self._stuck: list[Hand] = []  # failed to go home: holding a name we no longer want
        self._count = 0

    @property
    def labels(self) -> Mapping[str, str]:
        return {POOL_LABEL: self._pool, ROLE_LABEL: "hand", OWNER_LABEL: self._token}

    def acquire(self, member_name: str) -> Hand | None:
        """Hold `member_name`'s lock; None if another holder has it. Raises DockerError."""
        for _ in range(3):
            hand = self._take()
            target = lock_name(member_name)
            try:
                self._api.rename(hand.id, target)
            except NameConflictError:
                self._put(hand)
                return None
            except ContainerNotFoundError:  # removed (the engine lost this process's presence and
                with self._mutex:  # the leader cleared its hands): the others are gone too
                    self._free.clear()
                continue
            except DockerError:
                self._put(hand)
                raise
            hand.holds = target
            return hand
        raise DockerError(f"cannot keep a hand container for pool {self._pool}")

    def release(self, hand: Hand) -> None:
        """Let go of the lock `hand` holds (rename it home); a failure is retried by `repair`."""
        try:
            self._api.rename(hand.id, hand.home)
        except ContainerNotFoundError:
            return  # removed: the lock is free, and the hand is gone
        except DockerError as exc:
            logger.warning("releasing lock {} failed: {} (retried later)", hand.holds, exc)
            with self._mutex:
                self._stuck.append(hand)
            return
        hand.holds = None
        self._put(hand)

    def repair(self) -> None:
        """Retry the releases that failed (called at every resync)."""
        with self._mutex:
            stuck, self._stuck = self._stuck, []
        for hand in stuck:
            self.release(hand)

    def ids(self) -> set[ContainerId]:
        with self._mutex:
            return {h.id for h in self._free + self._stuck}

    def close(self) -> None:
        """Remove every hand of this process (a lock still held is released by that)."""
        with self._mutex:
            hands, self._free, self._stuck = self._free + self._stuck, [], []
        for hand in hands:
            try:
                self._api.remove(hand.id)
            except DockerError as exc:
                logger.warning("removing hand {} failed: {}", hand.home, exc)

    def _take(self) -> Hand:
        with self._mutex:
            if self._free:
                return self._free.pop()
            self._count += 1
            index = self._count
        home = hand_name(self._pool, self._token, index)
        image, labels = self._image()
        cid = self._api.create_marker(home, {**labels, **self.labels}, image, stdin=False)
        return Hand(cid, home)

    def _put(self, hand: Hand) -> None:
        with self._mutex:
            self._free.append(hand)
