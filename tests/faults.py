"""The faults tests inject between dockpool and an engine, named once for every injector.

A fake engine (in memory) and `tests.fault_proxy.FaultProxy` (a socket proxy in front of a
real engine) both take a `FaultPlan` and ask it, call by call, whether to misbehave; so one
test vocabulary ("lose the next rename's answer") drives both, and both report the same way
what they actually did; `classify` names the endpoint of a Docker API request, for an
injector that sees HTTP. Pure: no I/O, no Docker.

The three actions differ in what the engine did, which is the point of telling them apart:

- `delay`: the engine acts and answers; the answer arrives `seconds` late.
- `lose`: the engine acts and answers; the answer never arrives (the connection is cut after
  the engine answered), so the caller cannot know that the call took effect.
- `refuse`: the connection is cut before the request reaches the engine: nothing happened.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter

import attrs

__all__ = ["ACTIONS", "ENDPOINTS", "Fault", "FaultPlan", "classify"]

#: The calls a fault can target; "other" is every request no other name covers.
ENDPOINTS = ("create", "start", "rename", "remove", "inspect", "list", "attach", "events", "other")
#: What a fault does to one call (see the module docstring).
ACTIONS = ("delay", "lose", "refuse")

_VERSION_PREFIX = re.compile(r"^/v[0-9.]+(?=/)")
_NAMED = {("POST", "start"): "start", ("POST", "rename"): "rename", ("GET", "json"): "inspect",
          ("POST", "attach"): "attach"}  # fmt: skip


def classify(method: str, target: str) -> str:
    """The endpoint (one of `ENDPOINTS`) of a request to the engine; `target` may carry an
    API version prefix (/v1.41) and a query."""
    path = _VERSION_PREFIX.sub("", target.split("?", 1)[0])
    parts = [part for part in path.split("/") if part]
    if method == "GET" and parts == ["events"]:
        return "events"
    if not parts or parts[0] != "containers":
        return "other"
    if len(parts) == 2:
        if method == "GET" and parts[1] == "json":
            return "list"
        if method == "POST" and parts[1] == "create":
            return "create"
        return "remove" if method == "DELETE" else "other"
    return _NAMED.get((method, parts[2]), "other") if len(parts) == 3 else "other"


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")


def _check_fault(endpoint: str, action: str, seconds: float) -> None:
    _check_endpoint(endpoint)
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, not {seconds!r}")
    if action == "delay" and seconds <= 0:
        raise ValueError("a delay needs seconds > 0")
    if action != "delay" and seconds:
        raise ValueError(f"seconds apply to a delay only, not to {action!r}")


@attrs.frozen
class Fault:
    """One fault to apply to one call: `action` on `endpoint` (`seconds`: a delay's length)."""

    endpoint: str
    action: str
    seconds: float = 0.0

    def __attrs_post_init__(self) -> None:
        _check_fault(self.endpoint, self.action, self.seconds)


@attrs.define
class _Armed:
    fault: Fault
    remaining: int
    match: str | None


class FaultPlan:
    """Faults queued per endpoint, taken one per call by an injector; safe across threads.

    `arm` queues a fault for the next `count` calls of an endpoint (optionally only calls
    whose target contains `match`); faults armed for one endpoint apply in the order armed.
    `take` is the injector's side: it pops the fault for one call and records it as applied.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self._applied: list[tuple[str, str, str]] = []

    def arm(
        self,
        endpoint: str,
        action: str,
        *,
        count: int = 1,
        seconds: float = 0.0,
        match: str | None = None,
    ) -> None:
        """Apply `action` to the next `count` calls of `endpoint` (whose target contains
        `match`, if given); ValueError for an unknown endpoint or action, or a bad value."""
        fault = Fault(endpoint, action, float(seconds))
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be an int >= 1, not {count!r}")
        if match is not None and not match:
            raise ValueError("match must be a non-empty string (or None: every call)")
        with self._lock:
            self._armed.append(_Armed(fault, count, match))

    def take(self, endpoint: str, target: str = "") -> Fault | None:
        """The fault to apply to one call of `endpoint` on `target` (e.g. a request path with
        its query), recorded as applied; None: let the call through untouched."""
        _check_endpoint(endpoint)
        with self._lock:
            for armed in self._armed:
                if armed.fault.endpoint != endpoint:
                    continue
                if armed.match is not None and armed.match not in target:
                    continue
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._armed.remove(armed)
                self._applied.append((endpoint, armed.fault.action, target))
                return armed.fault
        return None

    @property
    def applied(self) -> list[tuple[str, str, str]]:
        """Every fault taken so far, in order, as (endpoint, action, target)."""
        with self._lock:
            return list(self._applied)

    def counts(self) -> dict[str, int]:
        """How many faults were applied, per "endpoint/action"."""
        with self._lock:
            return dict(Counter(f"{e}/{a}" for e, a, _ in self._applied))

    def pending(self) -> int:
        """How many armed calls have not been taken yet."""
        with self._lock:
            return sum(armed.remaining for armed in self._armed)

    def clear(self) -> None:
        """Disarm every fault not taken yet; what was applied stays on record."""
        with self._lock:
            self._armed.clear()
