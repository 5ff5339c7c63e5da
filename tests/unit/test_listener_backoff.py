"""The listener's replay and de-duplication, the back-off's arithmetic, the table's choices."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import attrs

from dockpool._core import machine as m
from dockpool._core.events import ContainerEvent
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.listener import Listener
from dockpool._runtime.members import MemberTable
from tests.fakes import wait_for


def ev(cid: str, action: str, t: int) -> ContainerEvent:
    return ContainerEvent(m.ContainerId(cid), action, "n", {}, t)


class Script:
    """An event source that plays one list of events per connection, then ends the stream."""

    def __init__(self, *connections: list[ContainerEvent]) -> None:
        self.connections = list(connections)
        self.sinces: list[str | None] = []
        self.done = threading.Event()

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        self.sinces.append(since)
        if not self.connections:
            self.done.set()
            self.done.wait()
            return iter(())
        events = self.connections.pop(0)

        def play() -> Iterator[ContainerEvent]:
            yield from events
            raise ConnectionError("stream ended")

        return play()

    def close(self) -> None:
        self.done.set()


def test_replay_after_reconnect_drops_duplicates_and_resyncs() -> None:
    """After a disconnect the listener replays from just before the last event, once each."""
    first = [ev("a", "start", 5_000_000_123), ev("a", "die", 5_100_000_000)]
    second = [ev("a", "die", 5_100_000_000), ev("b", "start", 5_200_000_000)]
    source = Script(first, second)
    got: list[tuple[str, str]] = []
    connects: list[bool] = []
    lost: list[str] = []
    listener = Listener(
        source,
        on_event=lambda e: got.append((e.container_id, e.action)),
        on_connect=connects.append,
        on_lost=lambda reason, delay: lost.append(reason),
        backoff=Backoff(base=0.001, cap=0.002),
    )
    listener.start()
    assert wait_for(lambda: len(source.sinces) >= 3)
    assert listener.stop(timeout=2)
    assert got == [("a", "start"), ("a", "die"), ("b", "start")]
    assert connects[:2] == [False, True]
    assert source.sinces[0] is None
    assert source.sinces[1] == "5.050000000"  # 50 ms of slack before the last event seen
    assert lost and "stream ended" in lost[0]


def test_backoff_doubles_to_cap_and_resets() -> None:
    """Delays double up to the cap; success resets; remaining() follows the clock."""
    now = [100.0]
    backoff = Backoff(base=0.5, cap=3.0, clock=lambda: now[0], jitter=0.0)
    assert [backoff.fail() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.remaining() == 3.0
    now[0] += 1.0
    assert backoff.remaining() == 2.0
    assert backoff.succeed() is True
    assert backoff.remaining() == 0.0 and backoff.succeed() is False


def test_backoff_jitter_spreads_processes_that_failed_together() -> None:
    """Each delay gets its own random extra of up to `jitter` (default: one base), within the
    cap; two processes that lost the engine at one instant do not retry in lock step."""
    draws = iter([0.0, 0.5, 0.999, 0.25, 0.75])
    backoff = Backoff(base=0.5, cap=2.2, clock=lambda: 0.0, draw=lambda: next(draws))
    assert [backoff.fail() for _ in range(4)] == [0.5, 1.25, 2.2, 2.2]
    wide = Backoff(base=1.0, cap=100.0, clock=lambda: 0.0, jitter=4.0, draw=lambda: 0.75)
    assert wide.fail() == 4.0 and wide.fail() == 5.0
    first, second = Backoff(base=0.5, cap=30.0), Backoff(base=0.5, cap=30.0)
    together = [(first.fail(), second.fail()) for _ in range(8)]
    assert all(0.5 * 2**i <= a < 0.5 * 2**i + 0.5 for i, (a, _) in enumerate(together[:5]))
    assert any(a != b for a, b in together)  # (equal in all 8: probability 0)


def _member(key: str, state: m.State, born: float) -> m.Member:
    return m.Member(key=m.MemberKey(key), name=key, state=state, born=born)


def test_shrink_retires_pending_newest_first_then_oldest_ready() -> None:
    """Shrinking retires members not yet ready (newest first), then the oldest ready ones."""
    table = MemberTable()
    for key, state, born in [
        ("r-old", m.State.READY, 1), ("r-new", m.State.READY, 5), ("w-old", m.State.WARMING, 6),
        ("w-new", m.State.CREATING, 9), ("claiming", m.State.CLAIMING, 0),
    ]:  # fmt: skip
        table.store(_member(key, state, born), now=born)
    assert [mem.key for mem in table.surplus(2)] == ["w-new", "w-old", "r-old"]
    assert table.surplus(5) == []
    assert table.to_create(target=7, cap=6) == 1
    assert table.to_create(target=7, cap=9, extra_holding=1) == 2


def test_a_cold_start_s_member_being_claimed_does_not_shrink_the_pool() -> None:
    """Pool of 1: its member warming, a cold start's member (reserved) being claimed. Nothing
    is surplus: the cold start's member was counted, and the warming member that another claim
    waited for was retired (a CI flake showed it, under load)."""
    table = MemberTable()
    table.store(_member("warming", m.State.WARMING, 1), now=1)
    cold = attrs.evolve(_member("cold", m.State.CLAIMING, 2), reserved_for="s1")
    table.store(cold, now=2)
    assert table.surplus(1) == []
    table.store(_member("claiming", m.State.CLAIMING, 3), now=3)  # the pool's own: counts
    assert [mem.key for mem in table.surplus(1)] == ["warming"]


def test_claim_picks_the_longest_ready() -> None:
    """Claims take the member that has been ready longest."""
    table = MemberTable()
    table.store(_member("b", m.State.READY, 1), now=10)
    table.store(_member("a", m.State.READY, 2), now=3)
    picked = table.pick_for_claim("")
    assert picked is not None and picked.key == "a"
