"""A small fixed set of worker threads with a bounded, join-able shutdown.

The pool runs Docker calls here (creates with `create_concurrency` workers, removals with a
few more) so that the reconciler thread never blocks on the engine. Unlike
`concurrent.futures.ThreadPoolExecutor`, `stop(timeout)` returns after at most `timeout`
seconds and reports whether every thread ended, which the pool's shutdown relies on.

`in_own_thread` runs one blocking call for an asyncio caller in a thread of its own.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from loguru import logger

_STOP = object()
T = TypeVar("T")


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


def in_own_thread(
    loop: asyncio.AbstractEventLoop,
    job: Callable[[], T],
    name: str,
    undelivered: Callable[[T], None],
) -> asyncio.Future[T]:
    """`job()` in a new daemon thread; its outcome as a future of `loop`.

    Not the loop's default executor: it has min(32, cores + 4) threads (6 on 2 cores), and a
    claim that waits for a cold start holds its thread for up to ready_timeout, so a burst of
    cold starts would queue every later claim (and the host's own `to_thread` calls) behind
    them. If the loop is gone when `job` returns, its result reaches nobody: `undelivered`
    gets it (in this thread).
    """
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, outcome: object) -> None:
        if future.done():
            return
        if ok:
            future.set_result(outcome)  # type: ignore[arg-type]
        else:
            assert isinstance(outcome, BaseException)
            future.set_exception(outcome)

    def run() -> None:
        try:
            result = job()
        except BaseException as exc:  # handed to the awaiting caller, as an executor would
            _post(loop, settle, False, exc)
            return
        if not _post(loop, settle, True, result):
            undelivered(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


async def cancellable_in_own_thread(
    job: Callable[[threading.Event], T], name: str, undelivered: Callable[[T], None]
) -> T:
    """Await `job(cancel)` run by `in_own_thread`. If the awaiting task is cancelled, `cancel`
    is set (the job should stop early if it can) and a result it returns all the same goes to
    `undelivered`: nobody received it."""
    cancel = threading.Event()
    future = in_own_thread(asyncio.get_running_loop(), lambda: job(cancel), name, undelivered)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.set()

        def settled(done: asyncio.Future[T]) -> None:
            if not done.cancelled() and done.exception() is None:
                undelivered(done.result())

        future.add_done_callback(settled)
        raise


def _post(loop: asyncio.AbstractEventLoop, settle: Callable[[bool, object], None],
          ok: bool, outcome: object) -> bool:  # fmt: skip
    try:
        loop.call_soon_threadsafe(settle, ok, outcome)
    except RuntimeError:  # the loop is closed
        return False
    return True
