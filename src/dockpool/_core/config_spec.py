"""Reading the container spec out of `[dockpool]`: the image and what runs it, the health check,
and dockpool's readiness probe with its warm-up steps and its request at each claim."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockpool._core.spec import ContainerSpec, HealthCheck, Readiness, WarmUpRequest
from dockpool._core.toml_reader import TomlReader

_HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval"}
_READINESS_KEYS = {
    "port", "path", "interval", "timeout", "warmup", "warmup_timeout", "host", "check_at_claim",
    "on_claim", "on_claim_timeout",
}  # fmt: skip
_WARMUP_KEYS = {"path", "method", "body", "env_headers"}


class SpecReader(TomlReader):
    """A `TomlReader` that also reads the container spec."""

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
                              ("warmup_timeout", "number"), ("host", "str"),
                              ("check_at_claim", "bool"), ("on_claim_timeout", "number")]
            if key in raw
        }  # fmt: skip
        if "warmup" in raw:
            steps = raw["warmup"]
            if not isinstance(steps, list) or not all(isinstance(x, dict) for x in steps):
                raise self.fail(table, "warmup", "must be an array of tables ([[...warmup]])")
            values["warmup"] = [self.warmup_request(step) for step in steps]
        if "on_claim" in raw:
            request = raw["on_claim"]
            if not isinstance(request, dict):
                raise self.fail(table, "on_claim", "must be a table ([...readiness.on_claim])")
            values["on_claim"] = self.warmup_request(request, f"{table}.on_claim")
        try:
            return Readiness(port=port, **values)
        except ValueError as exc:
            raise self.fail(table, _key_named_in(str(exc), values) or "port", str(exc)) from None

    def warmup_request(
        self, raw: Mapping[str, Any], table: str = "dockpool.readiness.warmup"
    ) -> WarmUpRequest:
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


def _key_named_in(message: str, fields: Mapping[str, Any]) -> str | None:
    for key in sorted(fields, key=len, reverse=True):
        if key in message:
            return key
    if "port" in message:
        return "ports"
    if "label" in message:
        return "labels"
    return None
