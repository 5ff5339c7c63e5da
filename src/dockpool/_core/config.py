"""The pool's configuration, read from config.toml into a frozen `PoolConfig`.

The file layout is a contract shared with operators: `container_pool_size` lives under
`[sandbox]` (the knob an OpenHands operator already knows), everything else under `[dockpool]`.
Every problem becomes one `ConfigError` naming the file, the key, the line where it can be
found, and what is wrong; a reload that fails leaves the running pool on its last good config.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dockpool._core.config_spec import SpecReader
from dockpool._core.endpoint import DEFAULT_ADDRESS, Endpoint
from dockpool._core.errors import ConfigError
from dockpool._core.spec import ContainerSpec

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}$")

_SANDBOX_KEYS = {"container_pool_size"}
_DOCKPOOL_KEYS = {
    "name", "image", "command", "entrypoint", "ports", "environment", "labels", "volumes",
    "working_dir", "init", "extra_hosts", "mem_limit", "cpus", "user", "network",
    "port_host_ip", "random_env", "healthcheck", "readiness", "max_containers",
    "create_concurrency", "max_pool_size",
    "max_age", "ready_timeout", "resync_interval", "refill_hold", "metrics",
}  # fmt: skip


@attrs.frozen
class PoolConfig:
    """A validated pool configuration. Build changed copies with `attrs.evolve`."""

    spec: ContainerSpec
    size: int = 0
    name: str = "default"
    max_containers: int = 16
    create_concurrency: int = 2
    max_age: float = 0.0
    ready_timeout: float = 120.0
    resync_interval: float = 60.0
    #: seconds refill creates keep waiting after a claim, so that the session's own start
    #: (its first requests to the container) gets the machine first; 0: refill at once
    refill_hold: float = 0.0
    #: self-sizing: the target follows the claim rate up to this (None: the size is fixed)
    max_pool_size: int | None = None
    #: where this process serves Prometheus metrics and its status (None: nowhere)
    metrics: Endpoint | None = None
    path: Path | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        problems = _check_limits(self)
        if problems:
            raise ConfigError("; ".join(problems))

    @classmethod
    def from_toml(cls, path: str | Path) -> PoolConfig:
        """Read and validate a config file; raise one `ConfigError` naming what is wrong."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        return cls.from_toml_text(text, path)

    @classmethod
    def from_toml_text(cls, text: str, path: str | Path = "<config>") -> PoolConfig:
        """Parse config text; `path` is only used in error messages and kept on the result."""
        path = Path(path)
        if not text.strip():
            raise ConfigError(f"{path}: the file is empty")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        return _Reader(path, text).build(data)

    def with_size(self, size: int) -> PoolConfig:
        """A copy with another target size."""
        return attrs.evolve(self, size=size)


def _check_limits(cfg: PoolConfig) -> list[str]:
    problems = []
    if cfg.size < 0:
        problems.append(f"container_pool_size must be >= 0, got {cfg.size}")
    if not _NAME_RE.match(cfg.name):
        problems.append(f"name {cfg.name!r} must match {_NAME_RE.pattern}")
    if cfg.max_containers < 1:
        problems.append(f"max_containers must be >= 1, got {cfg.max_containers}")
    if cfg.create_concurrency < 1:
        problems.append(f"create_concurrency must be >= 1, got {cfg.create_concurrency}")
    for key in ("max_age", "ready_timeout", "resync_interval", "refill_hold"):
        if getattr(cfg, key) < 0:
            problems.append(f"{key} must be >= 0, got {getattr(cfg, key)}")
    if cfg.max_pool_size is not None and cfg.max_pool_size < cfg.size:
        problems.append(
            f"max_pool_size ({cfg.max_pool_size}) must be >= container_pool_size ({cfg.size})"
        )
    return problems


class _Reader(SpecReader):
    """Builds a `PoolConfig` out of one parsed file."""

    def build(self, data: Mapping[str, Any]) -> PoolConfig:
        self.check_keys("<top level>", data, {"sandbox", "dockpool"})
        sandbox = self.table(data, "sandbox")
        self.check_keys("sandbox", sandbox, _SANDBOX_KEYS)
        pool = self.table(data, "dockpool")
        self.check_keys("dockpool", pool, _DOCKPOOL_KEYS)
        size = self.get("sandbox", sandbox, "container_pool_size", "int", 0)
        if size < 0:
            raise self.fail("sandbox", "container_pool_size", f"must be >= 0, got {size}")
        return PoolConfig(
            spec=self.spec(pool),
            size=size,
            name=self.checked(pool, "name", "str", "default", _valid_name),
            max_containers=self.checked(pool, "max_containers", "int", 16, _at_least(1)),
            create_concurrency=self.checked(pool, "create_concurrency", "int", 2, _at_least(1)),
            max_age=float(self.checked(pool, "max_age", "number", 0, _at_least(0))),
            ready_timeout=float(self.checked(pool, "ready_timeout", "number", 120, _at_least(0))),
            resync_interval=float(
                self.checked(pool, "resync_interval", "number", 60, _at_least(0))
            ),
            refill_hold=float(self.checked(pool, "refill_hold", "number", 0, _at_least(0))),
            max_pool_size=self.max_pool_size(pool, size),
            metrics=self.metrics(self.table(pool, "metrics", "dockpool")),
            path=self.path,
        )

    def max_pool_size(self, pool: Mapping[str, Any], size: int) -> int | None:
        if "max_pool_size" not in pool:
            return None
        value: int = self.checked(pool, "max_pool_size", "int", None, _at_least(1))
        if value < size:
            raise self.fail(
                "dockpool", "max_pool_size", f"must be >= container_pool_size ({size}), got {value}"
            )
        return value

    def metrics(self, raw: Mapping[str, Any]) -> Endpoint | None:
        table = "dockpool.metrics"
        self.check_keys(table, raw, {"address"})
        if not raw:
            return None
        address = self.get(table, raw, "address", "str", None)
        if address is None:
            raise self.fail(table, "address", f"missing: e.g. {DEFAULT_ADDRESS!r}")
        try:
            return Endpoint.parse(address)
        except ValueError as exc:
            raise self.fail(table, "address", str(exc)) from None


def _valid_name(value: str) -> str | None:
    if _NAME_RE.match(value):
        return None
    return f"{value!r} is not a valid pool name (letters, digits, _ . -; at most 41 chars)"


def _at_least(low: float) -> Any:
    def rule(value: float) -> str | None:
        return None if value >= low else f"must be >= {low}, got {value}"

    return rule
