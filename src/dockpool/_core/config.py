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

from dockpool._core.errors import ConfigError
from dockpool._core.spec import ContainerSpec, HealthCheck, Readiness, WarmUpRequest

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}$")

_SANDBOX_KEYS = {"container_pool_size"}
_HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval"}
_READINESS_KEYS = {"port", "path", "interval", "timeout", "warmup", "warmup_timeout"}
_WARMUP_KEYS = {"path", "method", "body", "env_headers"}
_DOCKPOOL_KEYS = {
    "name", "image", "command", "entrypoint", "ports", "environment", "labels", "volumes",
    "working_dir", "init", "extra_hosts", "mem_limit", "cpus", "user", "network",
    "port_host_ip", "random_env", "healthcheck", "readiness", "max_containers",
    "create_concurrency", "max_pool_size",
    "max_age", "ready_timeout", "resync_interval",
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
    #: self-sizing: the target follows the claim rate up to this (None: the size is fixed)
    max_pool_size: int | None = None
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
    for key in ("max_age", "ready_timeout", "resync_interval"):
        if getattr(cfg, key) < 0:
            problems.append(f"{key} must be >= 0, got {getattr(cfg, key)}")
    if cfg.max_pool_size is not None and cfg.max_pool_size < cfg.size:
        problems.append(
            f"max_pool_size ({cfg.max_pool_size}) must be >= container_pool_size ({cfg.size})"
        )
    return problems


class _Reader:
    """Typed access to the parsed TOML, turning every problem into a located ConfigError."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def fail(self, table: str, key: str | None, problem: str) -> ConfigError:
        where = f"[{table}]" if key is None else f"[{table}] {key}"
        line = self.line_of(table, key)
        at = f" (line {line})" if line else ""
        return ConfigError(f"{self.path}: {where}{at}: {problem}")

    def line_of(self, table: str, key: str | None) -> int | None:
        """Best-effort line number of `key` in `[table]` (or of the table header)."""
        current = ""
        header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
        for number, line in enumerate(self.lines, start=1):
            match = header.match(line)
            if match:
                current = match.group(1).replace('"', "").replace(" ", "")
                if key is None and current == table:
                    return number
                continue
            if key is None:
                continue
            dotted = re.match(r"^\s*([A-Za-z0-9_.\"-]+)\s*=", line)
            if not dotted:
                continue
            full = ".".join(filter(None, [current, dotted.group(1).replace('"', "")]))
            if full == f"{table}.{key}":
                return number
        return None

    def table(
        self, data: Mapping[str, Any], name: str, parent: str | None = None
    ) -> dict[str, Any]:
        value = data.get(name, {})
        full = f"{parent}.{name}" if parent else name
        if not isinstance(value, dict):
            raise self.fail(parent or full, name if parent else None, "must be a table")
        return value

    def check_keys(self, table: str, value: Mapping[str, Any], allowed: set[str]) -> None:
        for key in value:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(table, key, f"unknown key (known keys: {known})")

    def get(self, table: str, data: Mapping[str, Any], key: str, kind: str, default: Any) -> Any:
        if key not in data:
            return default
        value = data[key]
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "str list": isinstance(value, list) and all(isinstance(v, str) for v in value),
            "int list": isinstance(value, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "table of strings": isinstance(value, dict)
            and all(isinstance(v, str) for v in value.values()),
        }[kind]
        if not ok:
            raise self.fail(table, key, f"expected {_article(kind)}, got {value!r}")
        return value

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
            max_pool_size=self.max_pool_size(pool, size),
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

    def checked(self, data: Mapping[str, Any], key: str, kind: str, default: Any, rule: Any) -> Any:
        value = self.get("dockpool", data, key, kind, default)
        problem = rule(value)
        if problem:
            raise self.fail("dockpool", key, problem)
        return value

    def spec(self, pool: Mapping[str, Any]) -> ContainerSpec:
        image = self.get("dockpool", pool, "image", "str", None)
        if image is None:
            raise self.fail("dockpool", "image", "missing: name the image pool members run")
        if not image.strip():
            raise self.fail("dockpool", "image", "must not be empty")
        fields: dict[str, Any] = {"image": image}
        kinds = {
            "command": "str list", "entrypoint": "str list", "ports": "int list",
            "environment": "table of strings", "labels": "table of strings",
            "volumes": "table of strings", "extra_hosts": "table of strings",
            "working_dir": "str", "init": "bool", "mem_limit": "str", "cpus": "number",
            "user": "str", "network": "str", "port_host_ip": "str", "random_env": "str list",
        }  # fmt: skip
        for key, kind in kinds.items():
            if key in pool:
                fields[key] = self.get("dockpool", pool, key, kind, None)
        if "healthcheck" in pool:
            fields["healthcheck"] = self.healthcheck(self.table(pool, "healthcheck", "dockpool"))
        if "readiness" in pool:
            fields["readiness"] = self.readiness(self.table(pool, "readiness", "dockpool"))
        try:
            return ContainerSpec(**fields)
        except ValueError as exc:
            raise self.fail("dockpool", _key_named_in(str(exc), fields), str(exc)) from None

    def healthcheck(self, raw: Mapping[str, Any]) -> HealthCheck:
        table = "dockpool.healthcheck"
        self.check_keys(table, raw, _HEALTH_KEYS)
        test = self.get(table, raw, "test", "str list", None)
        if not test:
            raise self.fail(table, "test", 'missing: e.g. ["CMD", "curl", "-f", "http://..."]')
        values = {
            key: self.get(table, raw, key, kind, None)
            for key, kind in [
                ("interval", "number"), ("timeout", "number"), ("retries", "int"),
                ("start_period", "number"), ("start_interval", "number"),
            ]
            if key in raw
        }  # fmt: skip
        try:
            return HealthCheck(test=test, **values)
        except ValueError as exc:
            key = _key_named_in(str(exc), values) or "test"
            raise self.fail(table, key, str(exc)) from None

    def readiness(self, raw: Mapping[str, Any]) -> Readiness:
        table = "dockpool.readiness"
        self.check_keys(table, raw, _READINESS_KEYS)
        port = self.get(table, raw, "port", "int", None)
        if port is None:
            raise self.fail(table, "port", "missing: the container port to probe, one of ports")
        values: dict[str, Any] = {
            key: self.get(table, raw, key, kind, None)
            for key, kind in [("path", "str"), ("interval", "number"), ("timeout", "number"),
                              ("warmup_timeout", "number")]
            if key in raw
        }  # fmt: skip
        if "warmup" in raw:
            steps = raw["warmup"]
            if not isinstance(steps, list) or not all(isinstance(x, dict) for x in steps):
                raise self.fail(table, "warmup", "must be an array of tables ([[...warmup]])")
            values["warmup"] = [self.warmup_request(step) for step in steps]
        try:
            return Readiness(port=port, **values)
        except ValueError as exc:
            raise self.fail(table, _key_named_in(str(exc), values) or "port", str(exc)) from None

    def warmup_request(self, raw: Mapping[str, Any]) -> WarmUpRequest:
        table = "dockpool.readiness.warmup"
        self.check_keys(table, raw, _WARMUP_KEYS)
        path = self.get(table, raw, "path", "str", None)
        if path is None:
            raise self.fail(table, "path", 'missing: e.g. "/api/warm"')
        kinds = [("method", "str"), ("body", "str"), ("env_headers", "table of strings")]
        values = {key: self.get(table, raw, key, kind, None) for key, kind in kinds if key in raw}
        try:
            return WarmUpRequest(path=path, **values)
        except ValueError as exc:
            raise self.fail(table, _key_named_in(str(exc), values) or "path", str(exc)) from None


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _key_named_in(message: str, fields: Mapping[str, Any]) -> str | None:
    for key in sorted(fields, key=len, reverse=True):
        if key in message:
            return key
    if "port" in message:
        return "ports"
    if "label" in message:
        return "labels"
    return None


def _valid_name(value: str) -> str | None:
    if _NAME_RE.match(value):
        return None
    return f"{value!r} is not a valid pool name (letters, digits, _ . -; at most 41 chars)"


def _at_least(low: float) -> Any:
    def rule(value: float) -> str | None:
        return None if value >= low else f"must be >= {low}, got {value}"

    return rule
