"""Readiness by dockpool's own probe, for members whose spec has `readiness` (on every engine),
and the claim's check of a member it renamed.

The machine asks for it (`Probe`) when a member enters WARMING; a short-lived thread then reads
the member's published port once (inspect) and GETs the readiness path every `interval` until
it answers 2xx or the member leaves WARMING (died, retired, or Docker reported it healthy
first). Then it sends the spec's warm-up requests, if any, in order; the machine gets
`Answered` (READY) once they all answered, or `WarmUpFailed` (replaced, with back-off). At a
claim, the spec's on-claim request (`Readiness.on_claim`) goes through here too (`deliver`).
Nothing probes a ready member: after warm-up, Docker's slow health check watches liveness; a
claim asks the server once more (`alongside`, `check`) when the spec says `check_at_claim`, or
when the event stream cannot vouch for the member (handover.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger

from dockpool._adapters import http_probe
from dockpool._adapters.api import EngineApi
from dockpool._core import machine as m
from dockpool._core.errors import ContainerNotFoundError, DockerError
from dockpool._core.spec import ContainerSpec
from dockpool._runtime.state import PoolState

#: Seconds between attempts to read a member's published port when the engine fails to answer.
_INSPECT_RETRY = 0.5


def _host(spec: ContainerSpec) -> str:
    """Where the probe reaches the spec's published ports (see `Readiness.host`)."""
    assert spec.readiness is not None
    return spec.readiness.host or spec.port_host_ip


class Prober:
    """Runs the warm-up probes and the claim-time readiness check."""

    def __init__(
        self,
        state: PoolState,
        api: EngineApi,
        apply: Callable[[m.MemberKey, m.Event], Any],
        answers: Callable[[str, int, str, float], bool] = http_probe.answers,
        send: Callable[..., str | None] = http_probe.send,
        begin: Callable[[str, int, str, float], http_probe.Pending] = http_probe.begin,
    ) -> None:
        self.state = state
        self.api = api
        self.apply = apply
        self.answers = answers
        self.send = send
        self.begin = begin
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._guard = threading.Lock()
        #: published ports the warm-up probe read, by member and container (they are fixed
        #: for a container's life): the claim's check needs no inspect for these members;
        #: and their environment (the values an on-claim request's headers carry)
        self._ports: dict[tuple[m.MemberKey, m.ContainerId], Mapping[int, int]] = {}
        self._envs: dict[tuple[m.MemberKey, m.ContainerId], Mapping[str, str]] = {}

    def _spec(self, member: m.Member) -> ContainerSpec | None:
        recipe = self.state.recipes.get(member.fingerprint)
        return recipe.spec if recipe is not None else None

    def start(self, member: m.Member) -> None:
        """Probe `member` (just entered WARMING) until it answers or leaves WARMING."""
        spec = self._spec(member)
        if spec is None or spec.readiness is None or member.container_id is None:
            return
        self._prune()
        name = f"dockpool-{self.state.name}-probe-{member.key[:12]}"
        thread = threading.Thread(target=self._run, args=(member, spec), name=name, daemon=True)
        with self._guard:  # started under the guard: `stop` never sees an unstarted thread
            if self._stop.is_set():
                return
            self._threads.add(thread)
            thread.start()

    def _warming(self, member: m.Member) -> bool:
        now = self.state.table.get(member.key)
        return (
            now is not None
            and now.state is m.State.WARMING
            and now.container_id == member.container_id
            and not self._stop.is_set()
        )

    def _run(self, member: m.Member, spec: ContainerSpec) -> None:
        readiness = spec.readiness
        assert readiness is not None and member.container_id is not None
        port: int | None = None
        try:
            while self._warming(member):
                if port is None:
                    try:
                        view = self.api.inspect(member.container_id)
                        ports = view.ports
                    except ContainerNotFoundError:
                        return  # its destroy event tells the machine
                    except DockerError as exc:
                        logger.debug("probing {}: {}", member.name, exc)
                        self._stop.wait(_INSPECT_RETRY)
                        continue
                    port = ports.get(readiness.port)
                    if port is None:
                        logger.warning("probing {}: port {} is not published; Docker's health "
                                       "check decides", member.name, readiness.port)  # fmt: skip
                        return
                if self.answers(_host(spec), port, readiness.path, readiness.timeout):
                    failure = self._warm_up(member, spec, port, view.env)
                    if failure is not None:
                        logger.warning("warming {}: {}", member.name, failure)
                        self.apply(member.key, m.WarmUpFailed(failure))
                        return
                    with self._guard:
                        self._ports[(member.key, member.container_id)] = dict(ports)
                        self._envs[(member.key, member.container_id)] = dict(view.env)
                    self.apply(member.key, m.Answered())
                    return
                self._stop.wait(readiness.interval)
        finally:
            with self._guard:
                self._threads.discard(threading.current_thread())

    def _warm_up(
        self, member: m.Member, spec: ContainerSpec, port: int, env: Mapping[str, str]
    ) -> str | None:
        """Send the spec's warm-up requests in order; None if all answered 2xx in time."""
        readiness = spec.readiness
        assert readiness is not None
        deadline = time.monotonic() + readiness.warmup_timeout
        for step in readiness.warmup:
            missing = [v for v in step.env_headers.values() if v not in env]
            if missing:
                return f"{step.path}: the member has no variable {missing[0]}"
            headers = {header: env[var] for header, var in step.env_headers.items()}
            left = deadline - time.monotonic()
            if not self._warming(member):
                return None  # it left WARMING: the machine knows why
            if left <= 0:
                return f"not done within warmup_timeout ({readiness.warmup_timeout} s)"
            failure = self.send(_host(spec), port, step.method, step.path, step.body, headers, left)
            if failure is not None:
                return failure
        return None

    def ports_of(self, member: m.Member) -> Mapping[int, int] | None:
        """The published ports the warm-up probe read for `member` (None: not probed here)."""
        if member.container_id is None:
            return None
        with self._guard:  # (forgotten by _prune once the member left the table)
            return self._ports.get((member.key, member.container_id))

    def _prune(self) -> None:
        """Forget the ports of members that left the table without a claim."""
        with self._guard:
            for key, cid in list(self._ports):
                now = self.state.table.get(key)
                if now is None or now.container_id != cid:
                    del self._ports[(key, cid)]
                    self._envs.pop((key, cid), None)

    def delivers(self, member: m.Member) -> bool:
        """Does `member`'s spec send a request at each claim (`Readiness.on_claim`)?"""
        spec = self._spec(member)
        return (
            spec is not None and spec.readiness is not None and spec.readiness.on_claim is not None
        )

    def deliver(self, member: m.Member, payload: str | None) -> str | None:
        """Send the spec's on-claim request to `member` with `payload` as its body (else the
        request's own); None if it answered 2xx within `on_claim_timeout`, else why not."""
        spec = self._spec(member)
        assert spec is not None and spec.readiness is not None and member.container_id is not None
        readiness, request = spec.readiness, spec.readiness.on_claim
        assert request is not None
        with self._guard:
            ports = self._ports.get((member.key, member.container_id))
            env = self._envs.get((member.key, member.container_id))
        if ports is None or env is None:  # not warmed up by this process: ask the engine once
            try:
                view = self.api.inspect(member.container_id)
            except DockerError as exc:
                return str(exc)
            ports, env = view.ports, view.env
        port = ports.get(readiness.port)
        if port is None:
            return f"port {readiness.port} is not published"
        missing = [v for v in request.env_headers.values() if v not in env]
        if missing:
            return f"{request.path}: the member has no variable {missing[0]}"
        headers = {header: env[var] for header, var in request.env_headers.items()}
        body = request.body if payload is None else payload
        return self.send(_host(spec), port, request.method, request.path, body, headers,
                         readiness.on_claim_timeout)  # fmt: skip

    def checks_at_claim(self, member: m.Member) -> bool:
        """Does `member`'s spec ask for a GET to its server during each claim?"""
        spec = self._spec(member)
        return spec is not None and spec.readiness is not None and spec.readiness.check_at_claim

    def alongside(self, member: m.Member) -> Callable[[], tuple[m.Event, Mapping[int, int]]]:
        """Begin the claim's check of `member` before its rename; call the result after it.

        For a member whose ports the warm-up probe read, the GET to its server is *sent* now
        and its answer read by the result, so the server answers while the claimer renames: a
        claim waits for the slower of the two, not for their sum, with no thread or hand-off
        on its path. The server answered during the claim, which is what the check asks.
        Otherwise the result runs `check` (inspect first) after the rename.
        """
        known, spec = self.ports_of(member), self._spec(member)
        if known is None or spec is None or spec.readiness is None:
            return lambda: self.check(member)
        readiness = spec.readiness
        port = known.get(readiness.port)
        if port is None:
            return lambda: (m.ClaimSucceeded(alive=False), known)
        sent = self.begin(_host(spec), port, readiness.path, readiness.timeout)
        return lambda: (m.ClaimSucceeded(alive=sent.answered()), known)

    def check(self, member: m.Member) -> tuple[m.Event, Mapping[int, int]]:
        """The claim's check of a member it just renamed: alive and serving?

        A member whose ports the warm-up probe read: one GET to its server (it answers, so it
        runs). Otherwise one inspect (running, not unhealthy, its ports), then that GET if the
        spec has `readiness`: a probed member's health check is slow (it may still say
        "starting", and may not have noticed a stuck server yet).
        """
        assert member.container_id is not None
        known = self.ports_of(member)
        if known is not None:
            return m.ClaimSucceeded(alive=self.serves(member, known)), known
        try:
            view = self.api.inspect(member.container_id)
        except ContainerNotFoundError:
            return m.ClaimSucceeded(alive=False), {}
        except DockerError:  # renamed: it is the session's; the read-back is best effort
            return m.ClaimSucceeded(alive=True), {}
        healthy = view.health == "healthy" or not member.needs_health or member.probed
        alive = view.running and healthy and view.health != "unhealthy"
        return m.ClaimSucceeded(alive=alive and self.serves(member, view.ports)), view.ports

    def serves(self, member: m.Member, ports: Mapping[int, int]) -> bool:
        """The claim's check: True unless the member's spec has a readiness probe and its
        server does not answer it now (through `ports`, the member's published ports)."""
        spec = self._spec(member)
        if spec is None or spec.readiness is None:
            return True
        readiness = spec.readiness
        port = ports.get(readiness.port)
        if port is None:
            return False
        return self.answers(_host(spec), port, readiness.path, readiness.timeout)

    def stop(self, timeout: float) -> None:
        """End every probe (the pool is closing)."""
        self._stop.set()
        with self._guard:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
