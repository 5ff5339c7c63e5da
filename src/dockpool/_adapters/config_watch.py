"""Watching config.toml with watchfiles (the only module that imports it).

The watcher watches the file's folder, not the file: editors save through a temporary file
and a rename, or delete and recreate, and a watch on the old inode would go deaf. Changes to
other files in the folder are filtered out; a burst of quick edits is read once it settles
(`step_ms` of quiet), so the last one wins. Every valid, different config goes to
`on_change`; every invalid one to `on_error` as a `ConfigError` (naming file, key and line),
and the caller keeps its last good config.

The thread never dies of what it reads or whom it calls: bytes that are not UTF-8 are a
`ConfigError` like any other bad edit, an exception from a reload or a callback is logged and
the watch goes on, and if watchfiles itself fails the watch is set up again after a capped
back-off (and the file re-read then, so no edit made meanwhile is missed). Hot reload that
silently switches itself off for the rest of the process is the failure this module avoids.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles
from loguru import logger

from dockpool._core.config import PoolConfig
from dockpool._core.errors import ConfigError

#: The watch wakes up this often without a change (once, to report it is in place; then idle).
_TIMEOUT_MS = 1000


class ConfigWatcher:
    """Calls `on_change(config)` for each new valid config in `path`, `on_error(err)` otherwise."""

    def __init__(
        self,
        path: str | Path,
        on_change: Callable[[PoolConfig], None],
        on_error: Callable[[ConfigError], None],
        *,
        step_ms: int = 50,
        debounce_ms: int = 400,
        name: str = "dockpool-config-watcher",
        retry_delay: float = 0.5,
        retry_cap: float = 30.0,
    ) -> None:
        self.path = Path(path).absolute()
        self.on_change = on_change
        self.on_error = on_error
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self.retry_delay = retry_delay
        self.retry_cap = retry_cap
        self._stop = threading.Event()
        self._last_text: str | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, current_text: str | None = None) -> ConfigWatcher:
        """Start watching; `current_text` is the content already applied (not re-applied)."""
        self._last_text = current_text
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait until the watch is in place (the file is re-read then, so no edit is missed)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop watching; True if the thread ended within `timeout`."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _wanted(self, change: watchfiles.Change, path: str) -> bool:
        return Path(path).name == self.path.name

    def _run(self) -> None:
        delay = self.retry_delay
        try:
            while not self._stop.is_set():
                try:
                    if self._watch():
                        delay = self.retry_delay  # it worked for a while: start over
                    if self._stop.is_set():
                        return
                except Exception:  # a broken watch must not end hot reload; say so, retry
                    logger.opt(exception=True).error(
                        "watching {} failed; watching again in {:.1f} s", self.path, delay
                    )
                if self._stop.wait(delay):
                    return
                delay = min(self.retry_cap, delay * 2)
        finally:
            self._ready.set()

    def _watch(self) -> bool:
        """One watchfiles session until stopped or it ends; True if it woke up at least once."""
        woke = False
        for changes in watchfiles.watch(
            self.path.parent,
            watch_filter=self._wanted,
            stop_event=self._stop,
            step=self.step_ms,
            debounce=self.debounce_ms,
            rust_timeout=_TIMEOUT_MS,
            yield_on_timeout=True,
            recursive=False,
            raise_interrupt=False,
        ):
            if self._stop.is_set():
                break
            if not woke or changes:  # the first wake-up: the watch is in place now, so
                self._ready.set()  # catch up with any edit made while it was being set up
                self._reload_logged()
            woke = True
        return woke

    def _reload_logged(self) -> None:
        try:
            self.reload()
        except Exception:  # a raising on_change/on_error is the receiver's bug, not ours
            logger.opt(exception=True).error("reloading {} failed; still watching", self.path)

    def reload(self) -> None:
        """Read the file now and report a new valid config or the error."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._last_text = None
            self.on_error(ConfigError(f"{self.path}: file not found (deleted?)"))
            return
        except OSError as exc:
            self.on_error(ConfigError(f"{self.path}: cannot read: {exc}"))
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._last_text = None
            self.on_error(
                ConfigError(f"{self.path}: not valid UTF-8 at byte {exc.start} ({exc.reason})")
            )
            return
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads it
        if text == self._last_text:
            return
        try:
            config = PoolConfig.from_toml_text(text, self.path)
        except ConfigError as exc:
            self._last_text = None  # the fix of an error is applied even if it restores the text
            self.on_error(exc)
            return
        self._last_text = text
        self.on_change(config)
