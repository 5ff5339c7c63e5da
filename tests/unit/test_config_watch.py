"""The config watcher on real files: edits, bad edits, editor-style saves, bursts; and diff()."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import watchfiles

from dockpool._adapters.config_watch import ConfigWatcher
from dockpool._core.config import PoolConfig
from dockpool._core.config_change import ConfigChange, diff
from dockpool._core.errors import ConfigError
from dockpool._core.spec import ContainerSpec
from tests.fakes import wait_for

TEMPLATE = """\
[sandbox]
container_pool_size = {size}

[dockpool]
name = "w"
image = "img:1"
"""


class Seen:
    """Collects what the watcher reports."""

    def __init__(self) -> None:
        self.configs: list[PoolConfig] = []
        self.errors: list[ConfigError] = []
        self.lock = threading.Lock()

    def change(self, config: PoolConfig) -> None:
        with self.lock:
            self.configs.append(config)

    def error(self, error: ConfigError) -> None:
        with self.lock:
            self.errors.append(error)

    def sizes(self) -> list[int]:
        with self.lock:
            return [c.size for c in self.configs]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(TEMPLATE.format(size=1))
    return path


@pytest.fixture
def seen(config_file: Path) -> Iterator[Seen]:
    seen = Seen()
    watcher = ConfigWatcher(config_file, seen.change, seen.error, name="dockpool-test-watcher")
    watcher.start(current_text=config_file.read_text())
    assert watcher.wait_ready(5)
    yield seen
    assert watcher.stop(timeout=5)
    assert not [t for t in threading.enumerate() if t.name == "dockpool-test-watcher"]


def test_an_edit_is_reported(config_file: Path, seen: Seen) -> None:
    """Saving a new size reports a new config with that size."""
    config_file.write_text(TEMPLATE.format(size=4))
    assert wait_for(lambda: seen.sizes() == [4])


def test_a_bad_edit_is_an_error_and_the_fix_applies(config_file: Path, seen: Seen) -> None:
    """An invalid edit is reported as one ConfigError naming the key and line; the fix applies."""
    config_file.write_text(TEMPLATE.format(size=-2))
    # write_text truncates first, so the watcher may also catch an empty file on the way
    assert wait_for(lambda: any("container_pool_size" in str(e) for e in seen.errors))
    message = next(str(e) for e in seen.errors if "container_pool_size" in str(e))
    assert str(config_file) in message and "container_pool_size (line 2): must be >= 0" in message
    config_file.write_text(TEMPLATE.format(size=3))
    assert wait_for(lambda: seen.sizes() == [3])


def test_fixing_back_to_the_last_good_text_applies(config_file: Path, seen: Seen) -> None:
    """After an error, restoring the exact previous text is reported again (it is the fix)."""
    config_file.write_text(TEMPLATE.format(size=2))
    assert wait_for(lambda: seen.sizes() == [2])
    config_file.write_text("[sandbox\n")
    # wait for this error itself: a truncating write may have shown an empty file earlier
    assert wait_for(lambda: any("invalid TOML" in str(e) for e in seen.errors))
    config_file.write_text(TEMPLATE.format(size=2))
    assert wait_for(lambda: seen.sizes() == [2, 2])


def test_atomic_rename_save(config_file: Path, seen: Seen) -> None:
    """An editor's save through a temporary file and a rename is seen."""
    tmp = config_file.with_name(".config.toml.swp")
    tmp.write_text(TEMPLATE.format(size=5))
    os.replace(tmp, config_file)
    assert wait_for(lambda: seen.sizes() == [5])


def test_delete_and_recreate(config_file: Path, seen: Seen) -> None:
    """A deleted file is an error (the last config stays); recreating it applies it."""
    config_file.unlink()
    assert wait_for(lambda: any("file not found" in str(e) for e in seen.errors))
    config_file.write_text(TEMPLATE.format(size=6))
    assert wait_for(lambda: seen.sizes() == [6])


def test_other_files_in_the_folder_are_ignored(config_file: Path, seen: Seen) -> None:
    """Changes to other files in the same folder report nothing."""
    for i in range(5):
        (config_file.parent / f"other-{i}.toml").write_text("x = 1")
    time.sleep(0.5)
    assert seen.sizes() == [] and seen.errors == []


def test_a_burst_of_edits_ends_at_the_last_value(config_file: Path, seen: Seen) -> None:
    """Twenty edits in one second end with the last one applied."""
    for size in range(1, 21):
        config_file.write_text(TEMPLATE.format(size=size))
        time.sleep(0.05)
    assert wait_for(lambda: seen.sizes() and seen.sizes()[-1] == 20)
    assert len(seen.sizes()) < 20  # settled bursts are read once, not once per write


def test_half_written_file_then_completed(config_file: Path, seen: Seen) -> None:
    """A file caught half-written is an error; when the write completes, it applies."""
    full = TEMPLATE.format(size=7)
    config_file.write_text(full[:30])
    assert wait_for(lambda: seen.errors)
    config_file.write_text(full)
    assert wait_for(lambda: seen.sizes() == [7])


def test_undecodable_bytes_are_one_error_and_the_next_edit_applies(
    config_file: Path, seen: Seen
) -> None:
    """Bytes that are not UTF-8 are one ConfigError naming file and offset; the watcher lives on."""
    config_file.write_bytes(b"\xff\xfe\x00garbage")
    assert wait_for(lambda: any("UTF-8" in str(e) for e in seen.errors))
    bad = [str(e) for e in seen.errors if "UTF-8" in str(e)]
    assert len(bad) == 1 and str(config_file) in bad[0] and "byte 0" in bad[0]
    assert seen.sizes() == []  # the last good config stays
    config_file.write_text(TEMPLATE.format(size=8))
    assert wait_for(lambda: seen.sizes() == [8])


def _watching(path: Path, seen: Seen, on_change: Callable[[PoolConfig], None]) -> ConfigWatcher:
    watcher = ConfigWatcher(
        path, on_change, seen.error, name="dockpool-test-watcher", retry_delay=0.01
    )
    watcher.start(current_text=path.read_text())
    assert watcher.wait_ready(5)
    return watcher


def test_a_raising_callback_does_not_stop_later_edits(config_file: Path) -> None:
    """An on_change that raises is logged; the next edit is still read and reported."""
    seen = Seen()

    def change(config: PoolConfig) -> None:
        seen.change(config)
        if config.size == 2:
            raise RuntimeError("receiver broke")

    watcher = _watching(config_file, seen, change)
    try:
        config_file.write_text(TEMPLATE.format(size=2))
        assert wait_for(lambda: seen.sizes() == [2])
        config_file.write_text(TEMPLATE.format(size=3))
        assert wait_for(lambda: seen.sizes() == [2, 3])
    finally:
        assert watcher.stop(timeout=5)


def test_a_failing_watch_is_restarted(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If watchfiles itself raises, the watch is set up again and edits are seen after that."""
    real = watchfiles.watch
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Iterator[set[tuple[watchfiles.Change, str]]]:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("inotify went away")
        yield from real(*args, **kwargs)

    monkeypatch.setattr(watchfiles, "watch", flaky)  # the watcher looks it up at each start
    seen = Seen()
    watcher = _watching(config_file, seen, seen.change)
    try:
        assert len(calls) == 3
        config_file.write_text(TEMPLATE.format(size=4))
        assert wait_for(lambda: seen.sizes() == [4])
    finally:
        assert watcher.stop(timeout=5)


BASE = PoolConfig(spec=ContainerSpec(image="img:1"), size=1, name="w")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({}, ConfigChange(), id="nothing"),
        pytest.param({"size": 3}, ConfigChange(live=("size",)), id="size"),
        pytest.param(
            {"max_containers": 3, "max_age": 9.0, "refill_hold": 2.0},
            ConfigChange(live=("max_containers", "max_age", "refill_hold")),
            id="limits",
        ),
        pytest.param({"spec": ContainerSpec(image="img:2")}, ConfigChange(spec=True), id="spec"),
        pytest.param({"name": "other"}, ConfigChange(restart=("name",)), id="name"),
    ],
)
def test_diff_classifies_changes(changes: dict[str, Any], expected: ConfigChange) -> None:
    """diff() sorts differences into live keys, a spec change and restart-only keys."""
    assert diff(BASE, attrs.evolve(BASE, **changes)) == expected
