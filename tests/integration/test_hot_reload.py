"""Hot reload on the real engine: the pool follows config.toml edits, and survives bad ones."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import pytest

from dockpool import PoolConfig
from tests.engine_help import RUN_LABEL_KEY, wait_until

pytestmark = pytest.mark.docker


def write_config(path: Path, factory: Any, size: int, retries: int = 1, **extra: str) -> None:
    """A config file whose spec equals `factory.spec()` (so only what a test edits changes;
    `retries` other than 1 makes it differ)."""
    body = "\n".join(f"{k} = {v}" for k, v in extra.items())
    path.write_text(
        f"""\
[sandbox]
container_pool_size = {size}

[dockpool]
name = "{factory.name}"
image = "{factory.image}"
ports = [8000]
labels = {{ "{RUN_LABEL_KEY}" = "{factory.run_id}" }}
{body}

[dockpool.healthcheck]
test = ["CMD", "stub-check"]
interval = 0.2
timeout = 1.0
retries = {retries}
"""
    )


def ready_members(factory: Any) -> int:
    return len(factory.members(healthy=True))


@pytest.fixture
def watched(pool_factory: Any, tmp_path: Path) -> tuple[Any, Path]:
    """A running pool of size 2 built from a config file that it watches."""
    path = tmp_path / "config.toml"
    write_config(path, pool_factory, 2)
    config = PoolConfig.from_toml(path)
    assert config.spec == pool_factory.spec()
    pool = pool_factory(2, spec=config.spec)
    watcher = pool.watch_config(path)
    assert watcher.wait_ready(5)
    pool.wait_until_full(timeout=60)
    return pool, path


def test_sizes_apply_live(watched: tuple[Any, Path], pool_factory: Any) -> None:
    """Sizes 2 -> 4 -> 1 -> 0 -> 3 are applied live, counted by label on the engine."""
    pool, path = watched
    for size in (4, 1, 0, 3):
        write_config(path, pool_factory, size)
        wait_until(
            functools.partial(_has_members, pool_factory, size),
            timeout=60,
            what=f"{size} healthy members on the engine",
        )
        assert pool.stats().size == size


def test_invalid_edit_keeps_the_pool_and_the_fix_applies(
    watched: tuple[Any, Path], pool_factory: Any, signal_recorder: Any
) -> None:
    """A negative size is rejected with a clear error; the pool stays; fixing the file applies."""
    pool, path = watched
    signal_recorder.listen("config_rejected", sender=pool)
    before = set(pool_factory.members())
    write_config(path, pool_factory, -1)
    error = signal_recorder.wait_for(
        "config_rejected", lambda p: "container_pool_size" in str(p["error"]), timeout=10
    )["error"]
    assert "container_pool_size (line 2): must be >= 0, got -1" in str(error)
    time.sleep(0.5)
    assert set(pool_factory.members()) == before and pool.stats().size == 2
    path.write_text("[sandbox]\ncontainer_pool_size = 3\n[dockpool\n")  # broken TOML
    wait_until(lambda: len(signal_recorder.of("config_rejected")) >= 2, 10, "second rejection")
    write_config(path, pool_factory, 3)
    wait_until(lambda: ready_members(pool_factory) == 3, 60, "3 healthy members")


def test_atomic_rename_save(watched: tuple[Any, Path], pool_factory: Any) -> None:
    """A save through a temporary file and a rename is applied."""
    _pool, path = watched
    tmp = path.with_name("config.toml.tmp~")
    write_config(tmp, pool_factory, 3)
    os.replace(tmp, path)
    wait_until(lambda: ready_members(pool_factory) == 3, 60, "3 healthy members")


def test_delete_and_recreate(watched: tuple[Any, Path], pool_factory: Any) -> None:
    """Deleting the file keeps the pool; recreating it with a new size applies it."""
    _pool, path = watched
    path.unlink()
    time.sleep(1.0)
    assert len(pool_factory.members()) == 2
    write_config(path, pool_factory, 1)
    wait_until(lambda: len(pool_factory.members()) == 1, 60, "1 member")


def test_burst_of_edits_ends_at_the_last_value(
    watched: tuple[Any, Path], pool_factory: Any
) -> None:
    """20 edits in one second end with the pool at the last value."""
    pool, path = watched
    sizes = [1, 3, 0, 4, 2, 5, 1, 2, 3, 0, 4, 1, 2, 5, 3, 1, 4, 0, 2, 3]
    for size in sizes:
        write_config(path, pool_factory, size)
        time.sleep(0.05)
    wait_until(lambda: pool.stats().size == 3, 10, "target size 3")
    wait_until(
        lambda: len(pool_factory.members()) == 3 and ready_members(pool_factory) == 3,
        60,
        "3 healthy members",
    )


def test_spec_change_replaces_unclaimed_members_and_spares_claimed(
    watched: tuple[Any, Path], pool_factory: Any
) -> None:
    """A spec edit: new members use the new spec, old unclaimed ones go, a claimed one stays."""
    pool, path = watched
    lease = pool.claim(f"{pool_factory.name}-session")
    old = set(pool_factory.members())
    write_config(path, pool_factory, 2, environment='{ STUB_READY_DELAY = "0.1" }')
    wait_until(
        lambda: not (set(pool_factory.members()) & old) and ready_members(pool_factory) == 2,
        60,
        "2 new healthy members of the new spec",
    )
    fingerprints = {c.labels["dockpool.spec"] for c in pool_factory.members().values()}
    assert fingerprints == {pool.fingerprint} and lease.spec_fingerprint != pool.fingerprint
    assert pool_factory.client.containers.get(lease.container_id).status == "running"


def _has_members(factory: Any, size: int) -> bool:
    return len(factory.members()) == size and ready_members(factory) == size
