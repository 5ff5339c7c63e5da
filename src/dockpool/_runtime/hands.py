"""This process's hand containers: the bookkeeping behind the member locks (see locks.py).

A hand is a small container, created and never started, labelled with the process's token; it
rests under its home name and holds a lock by being renamed to the lock's name. This module
knows which hands exist, which are free, which failed to go home (`stuck`), and which the engine
destroyed under the process (`lost`: `docker container prune`, `rm -f`, a leader's
housekeeping). It decides nothing about locks: locks.py does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import attrs
from loguru import logger

from dockpool._adapters.api import EngineApi
from dockpool._core.errors import ContainerNotFoundError, DockerError
from dockpool._core.machine import ContainerId
from dockpool._core.spec import OWNER_LABEL, POOL_LABEL, ROLE_LABEL, hand_name

#: lost hands remembered (a claim holding one reads its flags; older ones are done)
_GONE_KEPT = 64


@attrs.define
class Hand:
    """One of this process's hand containers."""

    id: ContainerId
    home: str  # its resting name
    holds: str | None = None  # the lock name it holds, if any
    lost: bool = False  # the engine destroyed it (prune, rm -f, a leader's housekeeping)
    #: ... and its `destroy` event was applied (ordered with the other events: a claim's
    #: rename event applied before it means the lock held at the rename; a resync's list is
    #: not ordered with them)
    destroy_seen: bool = False


class Hands:
    """The hands of one process on one pool: made on demand, reused, never shared."""

    def __init__(
        self,
        api: EngineApi,
        pool: str,
        token: str,
        image: Callable[[], tuple[str, dict[str, str]]],
    ) -> None:
        self._api = api
        self._pool = pool
        self._token = token
        self._image = image
        self._mutex = threading.Lock()
        self._hands: dict[ContainerId, Hand] = {}  # every hand this process made, not lost
        self._gone: list[Hand] = []  # hands lost lately (their destroy event may still come)
        self._free: list[Hand] = []
        self._stuck: list[Hand] = []  # failed to go home: holding a name we no longer want
        self._count = 0

    @property
    def labels(self) -> Mapping[str, str]:
        return {POOL_LABEL: self._pool, ROLE_LABEL: "hand", OWNER_LABEL: self._token}

    def take(self) -> Hand:
        """A free hand, or a new one. Raises DockerError."""
        with self._mutex:
            if self._free:
                return self._free.pop()
            self._count += 1
            index = self._count
        home = hand_name(self._pool, self._token, index)
        image, labels = self._image()
        cid = self._api.create_marker(home, {**labels, **self.labels}, image, stdin=False)
        hand = Hand(cid, home)
        with self._mutex:
            self._hands[cid] = hand
        return hand

    def put(self, hand: Hand) -> None:
        """`hand` is home and free again (a lost one is dropped)."""
        with self._mutex:
            if not hand.lost:
                self._free.append(hand)

    def set_aside(self, hand: Hand) -> None:
        """`hand` may still hold the name in `hand.holds`: kept out of use until it goes home."""
        with self._mutex:
            if not hand.lost:
                self._stuck.append(hand)

    def stuck_holding(self, target: str) -> Hand | None:
        """The hand set aside holding `target`, now the caller's (to read back), if any."""
        with self._mutex:
            hand = next((h for h in self._stuck if h.holds == target), None)
            if hand is not None:
                self._stuck.remove(hand)
            return hand

    def holding(self, target: str) -> bool:
        """Does one of these hands hold `target` (in use, being let go, or set aside)?"""
        with self._mutex:
            return any(h.holds == target for h in self._hands.values())

    def stuck(self) -> list[Hand]:
        """Every hand set aside, now the caller's (to send home)."""
        with self._mutex:
            stuck, self._stuck = self._stuck, []
            return stuck

    def name_now(self, hand: Hand) -> str | None:
        """`hand`'s name on the engine: "" if it is gone (then it is lost), None if the engine
        cannot say."""
        try:
            return self._api.inspect(hand.id).name
        except ContainerNotFoundError:
            self.lost(hand.id)
            return ""
        except DockerError:
            return None

    def ids(self) -> set[ContainerId]:
        with self._mutex:
            return set(self._hands)

    def lost(self, container_id: ContainerId, *, event: bool = False) -> Hand | None:
        """The engine destroyed hand `container_id` (its `destroy` event, with `event`, or a
        resync's list without it): it is never used again. Returns it if this is news."""
        with self._mutex:
            hand = next((h for h in self._gone if h.id == container_id), None)
            if hand is not None:  # known lost already: only the event is news
                hand.destroy_seen = hand.destroy_seen or event
                return None
            hand = self._hands.pop(container_id, None)
            if hand is None:
                return None
            hand.lost, hand.destroy_seen = True, event
            self._gone.append(hand)
            del self._gone[:-_GONE_KEPT]
            self._free = [h for h in self._free if h is not hand]
            self._stuck = [h for h in self._stuck if h is not hand]
        logger.warning("pool {}: hand {} ({}) was removed by someone; its lock is no longer held",
                       self._pool, hand.home, hand.holds or "no lock")  # fmt: skip
        return hand

    def reconcile(self, before: set[ContainerId], listed: set[ContainerId]) -> list[Hand]:
        """A resync's list showed this process's hands as `listed`: of the hands it had
        before the list began (`before`, from `ids`), the others are gone (returned)."""
        with self._mutex:
            missing = [cid for cid in before - listed if cid in self._hands]
        return [hand for cid in missing if (hand := self.lost(cid)) is not None]

    def close(self) -> None:
        """Remove every hand of this process (a lock still held is released by that): the
        ones it knows, then any other container labelled as its hand, which it lost track of
        (a create whose answer was lost in an engine restart, a hand dropped from the free
        list when the engine said it was gone). Its token is its own: nobody else uses them."""
        with self._mutex:
            ids = list(self._hands)
            self._hands, self._free, self._stuck = {}, [], []
        try:
            ids += [view.id for view in self._api.list(self.labels) if view.id not in ids]
        except DockerError as exc:
            logger.warning("pool {}: cannot list this process's hands: {}", self._pool, exc)
        for cid in ids:
            try:
                self._api.remove(cid)
            except ContainerNotFoundError:
                continue
            except DockerError as exc:
                logger.warning("removing hand {} failed: {}", cid[:12], exc)
