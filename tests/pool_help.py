"""What the pool tests share: a factory of pools of the stand-in image, a recorder of
dockpool's signals, and the threads a pool must not leave behind."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.engine_help import RUN_LABEL_KEY, container_health

#: The health check the pool tests give their members (fast, one failed probe = unhealthy).
POOL_PROBE = {"interval": 0.2, "timeout": 1.0, "retries": 1}
POOL_PORT = 8000
_DEFAULT = object()


class PoolFactory:
    """Builds `ContainerPool`s of the stand-in image for one test (see ``pool_factory``).

    Every pool of a test shares the pool name ``self.name`` unless a test passes another one;
    the spec carries the run label, so ``cleanup_containers`` removes every container a pool
    made, claimed ones included, even when the test fails.
    """

    def __init__(self, client: Any, image: str, run_id: str) -> None:
        self.client = client
        self.image = image
        self.run_id = run_id
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.pools: list[Any] = []

    def healthcheck(self, **changes: Any) -> Any:
        from dockpool import HealthCheck

        return HealthCheck(test=["CMD", "stub-check"], **{**POOL_PROBE, **changes})

    def spec(
        self, *, env: dict[str, str] | None = None, healthcheck: Any = _DEFAULT, **fields: Any
    ) -> Any:
        """The stub image on port 8000 with the fast health check and the run label."""
        from dockpool import ContainerSpec

        return ContainerSpec(
            image=fields.pop("image", self.image),
            ports=fields.pop("ports", [POOL_PORT]),
            environment=env or {},
            labels={RUN_LABEL_KEY: self.run_id, **fields.pop("labels", {})},
            healthcheck=self.healthcheck() if healthcheck is _DEFAULT else healthcheck,
            **fields,
        )

    def __call__(
        self,
        size: int = 0,
        *,
        spec: Any = None,
        name: str | None = None,
        backoff: Any = None,
        start: bool = True,
        **options: Any,
    ) -> Any:
        """A new pool (started unless ``start=False``), closed at teardown."""
        from dockpool import Backoff, ContainerPool

        pool = ContainerPool(
            spec if spec is not None else self.spec(),
            size=size,
            name=name or self.name,
            backoff=backoff if backoff is not None else Backoff(base=0.05, cap=0.5),
            **options,
        )
        self.pools.append(pool)
        return pool.start() if start else pool

    # -- the engine's view, by label -------------------------------------------------------
    def containers(self, name: str | None = None) -> list[Any]:
        """Every sandbox container (any state, unclaimed or claimed) carrying
        ``dockpool.pool=<name>``; not the pool's own bookkeeping (presence and hands)."""
        return [
            c for c in self.labelled(name) if c.labels.get("dockpool.role", "member") == "member"
        ]

    def labelled(self, name: str | None = None) -> list[Any]:
        """Every container carrying ``dockpool.pool=<name>``, bookkeeping included."""
        label = f"dockpool.pool={name or self.name}"
        return list(
            self.client.containers.list(all=True, filters={"label": label}, ignore_removed=True)
        )

    def members(self, name: str | None = None, *, healthy: bool = False) -> dict[str, Any]:
        """Unclaimed members on the engine (member name prefix, member role), by id; optionally
        healthy only. The pool's presence and hand containers are not members."""
        prefix = f"dockpool-{name or self.name}-"
        found = {
            c.id: c
            for c in self.containers(name)
            if c.name.startswith(prefix) and c.labels.get("dockpool.role", "member") == "member"
        }
        if healthy:
            found = {cid: c for cid, c in found.items() if container_health(c) == "healthy"}
        return found

    def close_all(self) -> list[str]:
        problems = []
        for pool in self.pools:
            try:
                pool.close(timeout=30)
            except Exception as exc:  # report, but close the others too
                problems.append(f"closing pool {pool.name}: {exc!r}")
        return problems


def dockpool_threads() -> list[str]:
    return [
        t.name for t in threading.enumerate() if t.name.startswith("dockpool-") and t.is_alive()
    ]


class SignalRecorder:
    """Records dockpool signals (payloads as dicts) until teardown disconnects every receiver."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any], float]] = []  # (signal, payload, when)
        self._cond = threading.Condition()
        self._connected: list[tuple[Any, Any]] = []

    def listen(self, *names: str, sender: Any = None) -> SignalRecorder:
        from blinker import ANY

        from dockpool import signals

        for name in names:
            signal = getattr(signals, name)

            def receive(_sender: Any, _name: str = name, **payload: Any) -> None:
                with self._cond:
                    self.records.append((_name, payload, time.monotonic()))
                    self._cond.notify_all()

            signal.connect(receive, sender=ANY if sender is None else sender, weak=False)
            self._connected.append((signal, receive))
        return self

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [payload for n, payload, _ in self.records if n == name]

    def timed(self, *names: str) -> list[tuple[str, dict[str, Any], float]]:
        """The records of the named signals, in order, with their `time.monotonic()`."""
        with self._cond:
            return [r for r in self.records if r[0] in names]

    def wait_for(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for n, payload, _ in self.records:
                    if n == name and predicate(payload):
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (n, {k: repr(v)[:80] for k, v in p.items()}) for n, p, _ in self.records
                    ]
                    raise AssertionError(
                        f"no matching {name} within {timeout} s; seen: {seen[-30:]}"
                    )
                self._cond.wait(left)

    def disconnect(self) -> None:
        for signal, receiver in self._connected:
            signal.disconnect(receiver)
        self._connected.clear()
