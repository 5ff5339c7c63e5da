"""Typed, located access to parsed TOML: every problem becomes one `ConfigError` that names the
file, the table and key, the line where it can be found, and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockpool._core.errors import ConfigError


class TomlReader:
    """Reads values out of one parsed file, failing with located errors."""

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

    def checked(
        self,
        data: Mapping[str, Any],
        key: str,
        kind: str,
        default: Any,
        rule: Any,
        table: str = "dockpool",
    ) -> Any:
        """`get`, then `rule(value)`: a problem it returns fails the read."""
        value = self.get(table, data, key, kind, default)
        problem = rule(value)
        if problem:
            raise self.fail(table, key, problem)
        return value


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind
