"""The running-sandbox tally (`dockpool_openhands.running`): an engine listing now and then,
the services' own reports in between. Pure: a fake clock and scripted listings."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from dockpool_openhands.running import RunningSandboxes

pytestmark = pytest.mark.oh1

PREFIX = "oh-"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Engine:
    """The running containers' names, and how often they were listed."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.listings = 0

    def __call__(self) -> Iterable[str]:
        self.listings += 1
        return sorted(self.names)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tally(clock: Clock) -> RunningSandboxes:
    return RunningSandboxes(recount_after=60.0, clock=clock)


def test_lists_at_first_then_counts_what_is_noted(tally: RunningSandboxes, clock: Clock) -> None:
    """The first count lists; starts, pauses and deletes then change it without a listing,
    until the listing is `recount_after` old: then the engine's word replaces the tally."""
    engine = Engine("oh-a", "oh-b", "dockpool-pool-x", "other")
    assert tally.count(PREFIX, engine) == 2 and engine.listings == 1
    tally.note("oh-c", running=True)
    tally.note("oh-a", running=False)
    tally.note("oh-a", running=False)  # (noted twice: counted once)
    clock.now += 59.0
    assert tally.count(PREFIX, engine) == 2 and engine.listings == 1
    engine.names = {"oh-a"}  # a sandbox stopped by itself, another started elsewhere
    clock.now += 1.0
    assert tally.count(PREFIX, engine) == 1 and engine.listings == 2


def test_notes_before_the_first_listing_are_its_business(tally: RunningSandboxes) -> None:
    """Before any listing there is nothing to keep up to date: the listing has the truth."""
    tally.note("oh-a", running=True)
    assert tally.count(PREFIX, Engine("oh-b")) == 1


@pytest.mark.parametrize(
    ("noted", "expected"),
    [
        pytest.param(("oh-new", True), {"oh-a", "oh-new"}, id="started-during-the-listing"),
        pytest.param(("oh-a", False), set(), id="stopped-during-the-listing"),
    ],
)
def test_what_is_noted_during_a_listing_is_kept(
    tally: RunningSandboxes, noted: tuple[str, bool], expected: set[str]
) -> None:
    """A start or a stop reported while the engine lists (the list may predate it) is applied
    on top of the listing; a count asked meanwhile does not list again."""
    engine = Engine("oh-a")
    during: list[int | None] = []

    def listing() -> Iterable[str]:
        names = engine()
        name, running = noted
        tally.note(name, running=running)
        during.append(tally.count(PREFIX, engine))
        return names

    assert tally.count(PREFIX, listing) == len(expected)
    assert during == [None] and engine.listings == 1  # never listed before: unknown


def test_a_failed_listing_is_tried_again(tally: RunningSandboxes, clock: Clock) -> None:
    """The listing's error reaches the caller, and the next count lists again."""

    def broken() -> Iterable[str]:
        raise ConnectionError("engine unreachable")

    engine = Engine("oh-a")
    assert tally.count(PREFIX, engine) == 1
    clock.now += 60.0
    with pytest.raises(ConnectionError):
        tally.count(PREFIX, broken)
    assert tally.count(PREFIX, engine) == 1 and engine.listings == 2
