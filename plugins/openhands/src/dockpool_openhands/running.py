"""`RunningSandboxes`: how many sandboxes run now, without asking the engine per request.

The pools' headroom is `max_num_sandboxes` minus the sandboxes running now. Listing the
engine's containers on every start, pause, resume and delete to learn that number costs an
engine call per request; instead the services tell this tally what they did (a start or a
resume runs a sandbox; a pause or a delete stops it), and the engine's list is read only to
begin with and then once every `RECOUNT_AFTER` seconds, for what the services cannot see:
a sandbox that stopped by itself, one another worker or the Docker CLI started or stopped.
Between two listings the count is off by those at most.

The listing is the caller's (`count(prefix, list_names)`), a blocking engine call: asyncio
hosts call `count` in a worker thread. The tally's lock is never held while it lists, and
what the services report during a listing is applied on top of its result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["RECOUNT_AFTER", "RunningSandboxes"]

#: Seconds after which the next count lists the engine's running containers again.
RECOUNT_AFTER = 60.0


class RunningSandboxes:
    """Names of the containers running now, as last listed and since kept up to date.
    Thread-safe."""

    def __init__(
        self, recount_after: float = RECOUNT_AFTER, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._recount_after = recount_after
        self._clock = clock
        self._names: set[str] | None = None  # None: never listed
        self._listed_at = 0.0
        #: what was reported while a listing runs (name -> running); None: no listing runs
        self._during: dict[str, bool] | None = None

    def note(self, name: str, *, running: bool) -> None:
        """The container `name` runs now (`running`) or does not."""
        with self._lock:
            if self._names is not None:
                _mark(self._names, name, running)
            if self._during is not None:
                self._during[name] = running

    def count(self, prefix: str, list_names: Callable[[], Iterable[str]]) -> int | None:
        """How many running containers' names start with `prefix`, listed with `list_names`
        (the running containers' names; blocking) when the last listing is older than
        `recount_after`. While another thread lists, the count as it stands (None if there
        has never been a listing). Whatever `list_names` raises is raised."""
        with self._lock:
            stale = self._clock() - self._listed_at >= self._recount_after
            if self._during is not None or (self._names is not None and not stale):
                return self._count(prefix)
            during = self._during = {}
        listed: set[str] | None = None
        try:
            listed = set(list_names())
        finally:
            with self._lock:
                if listed is not None:
                    for name, running in during.items():
                        _mark(listed, name, running)
                    self._names, self._listed_at = listed, self._clock()
                self._during = None
        with self._lock:
            return self._count(prefix)

    def _count(self, prefix: str) -> int | None:
        if self._names is None:
            return None
        return sum(1 for name in self._names if name.startswith(prefix))


def _mark(names: set[str], name: str, running: bool) -> None:
    if running:
        names.add(name)
    else:
        names.discard(name)
