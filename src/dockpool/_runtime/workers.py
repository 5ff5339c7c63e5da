"""A small fixed set of worker threads with a bounded, join-able shutdown.

The pool runs Docker calls here (creates with `create_concurrency` workers, removals with a
few more) so that the reconciler thread never blocks on the engine. Unlike
`concurrent.futures.ThreadPoolExecutor`, `stop(timeout)` returns after at most `timeout`
seconds and reports whether every thread ended, which the pool's shutdown relies on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from loguru import logger

_STOP = object()


class Workers:
    """`size` daemon threads running submitted callables in submission order."""

    def __init__(self, size: int, name: str) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._name = name
        self._threads: list[threading.Thread] = []
        self._size = 0
        self._busy = 0
        self._lock = threading.Lock()
        self.resize(size)

    def resize(self, size: int) -> None:
        """Grow by starting threads, or shrink by ending threads once the queued jobs ran."""
        with self._lock:
            for i in range(self._size, size):
                thread = threading.Thread(target=self._run, name=f"{self._name}-{i}", daemon=True)
                self._threads.append(thread)
                thread.start()
            for _ in range(size, self._size):
                self._queue.put(_STOP)
            self._size = size

    def submit(self, job: Callable[[], None]) -> None:
        self._queue.put(job)

    @property
    def busy(self) -> int:
        """Jobs running right now."""
        return self._busy

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            assert callable(job)
            with self._lock:
                self._busy += 1
            try:
                job()
            except Exception:
                logger.opt(exception=True).error("pool worker job failed")
            finally:
                with self._lock:
                    self._busy -= 1

    def stop(self, timeout: float) -> bool:
        """Let queued jobs finish, then end the threads; True if all ended within `timeout`."""
        for _ in range(self._size):
            self._queue.put(_STOP)
        self._size = 0
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
