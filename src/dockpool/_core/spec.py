"""What a pool member is made of: the container spec, its health check and its fingerprint.

A spec is frozen: a pool never mutates the recipe of its members, it builds a new spec and
compares fingerprints. The fingerprint covers everything fixed when a container is created,
with the image tag replaced by the image ID it resolves to (the adapter resolves it), so a
retagged image makes a different spec and old members are not handed out as new ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from dockpool._core.names import (  # re-exported: the names and labels belong with the spec
    LOCK_SUFFIX,
    NAME_PREFIX,
    ORIGIN_LABEL,
    OWNER_LABEL,
    POOL_LABEL,
    ROLE_LABEL,
    ROLES,
    SPEC_LABEL,
    WANT_SUFFIX,
    hand_name,
    is_member_name,
    leader_name,
    leaving_name,
    lock_name,
    member_name,
    presence_name,
    role_of,
)

__all__ = [
    "LOCK_SUFFIX", "NAME_PREFIX", "ORIGIN_LABEL", "OWNER_LABEL", "POOL_LABEL", "ROLES",
    "ROLE_LABEL", "SPEC_LABEL", "START_INTERVAL_API", "WANT_SUFFIX", "ContainerSpec",
    "HealthCheck", "Readiness", "WarmUpRequest", "hand_name", "is_member_name", "leader_name",
    "leaving_name", "lock_name", "member_name", "presence_name", "readiness_mode", "role_of",
]  # fmt: skip


def _str_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def _str_tuple_required(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _str_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    """Freeze a mapping into a sorted, immutable-by-convention dict copy."""
    return _FrozenMap(sorted((str(k), str(v)) for k, v in (value or {}).items()))


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted({int(v) for v in value}))


class _FrozenMap(dict[str, str]):
    """A dict that refuses changes and hashes by content, so specs stay frozen and hashable."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("ContainerSpec mappings are immutable; use attrs.evolve")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))


@attrs.frozen
class HealthCheck:
    """A Docker health check; `test` as Docker has it: ["CMD", ...] or ["CMD-SHELL", "..."].

    `start_interval` (probe interval during `start_period`) needs Docker API >= 1.44; on older
    engines it is dropped and the first probe runs one full `interval` after start.
    """

    test: tuple[str, ...] = attrs.field(converter=_str_tuple_required)
    interval: float = 1.0
    timeout: float = 1.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float | None = None

    def __attrs_post_init__(self) -> None:
        if not self.test:
            raise ValueError("healthcheck test must not be empty")
        if self.test[0] not in {"CMD", "CMD-SHELL", "NONE"}:
            raise ValueError('healthcheck test must start with "CMD", "CMD-SHELL" or "NONE"')
        for name in ("interval", "timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"healthcheck {name} must be > 0 seconds")
        if self.retries < 1:
            raise ValueError("healthcheck retries must be >= 1")
        if self.start_period < 0:
            raise ValueError("healthcheck start_period must be >= 0 seconds")
        if self.start_interval is not None and self.start_interval <= 0:
            raise ValueError("healthcheck start_interval must be > 0 seconds")


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@attrs.frozen
class WarmUpRequest:
    """One request of a member's warm-up (or its claim's: `Readiness.on_claim`): <method> to
    its readiness port, at `path`.

    `body` is JSON text, sent as application/json. `env_headers` maps a header to the name of
    one of the member's environment variables, whose value the header carries (a per-member
    API key from `random_env`, say). A 2xx answer is success.
    """

    path: str
    method: str = "GET"
    body: str | None = None
    env_headers: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)

    def __attrs_post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"warm-up path {self.path!r} must start with /")
        if self.method not in _METHODS:
            raise ValueError(f"warm-up method {self.method!r} is not one of {sorted(_METHODS)}")
        if self.body is not None:
            try:
                json.loads(self.body)
            except ValueError as exc:
                raise ValueError(f"warm-up body of {self.path} is not JSON: {exc}") from exc


def _requests(value: Iterable[WarmUpRequest]) -> tuple[WarmUpRequest, ...]:
    return tuple(value)


@attrs.frozen
class Readiness:
    """dockpool's own readiness probe: GET http://<host>:<published port><path>.

    Run from the host, during a member's warm-up only, every `interval` seconds (a refused
    connection costs the member nothing: no exec, no process), until the server answers 2xx.
    With it, Docker's health check (if any) only has to notice a member that dies later, so its
    `interval` can be long (30 s): readiness no longer pays a fast probe for a member's whole
    life. Docker's "healthy" also makes a warming member ready, if it comes first.

    `check_at_claim`: GET the path once more during each claim (sent alongside the rename), so
    that a member whose server stopped answering while its container runs is never handed
    out. Off by default: a claim then hands over a member once the engine's own event for its
    rename has been applied, which proves that the engine had logged no death, OOM kill,
    unhealthy check or removal of it before the rename (renames.py); a hung server that still
    runs is caught by the liveness health check instead. The GET costs a connection and a
    request per claim, which under many concurrent claims on a small machine is most of what
    a claim costs beyond the rename (`dockpool bench --claims`).

    `warmup`: requests sent once, in order, after the probe answered and before the member
    counts as ready (a server's first use of something is often slow: its first command, its
    first session). They must all answer 2xx within `warmup_timeout` seconds in all, or the
    member is replaced (with back-off, as a member that dies while warming). With a warm-up,
    only the probe makes a member ready, never Docker's "healthy". A member adopted from an
    earlier process is warmed again, so the requests must be safe to repeat.

    `on_claim`: a request sent to the member at each claim, before its rename: it delivers
    what the session needs from its first moment (its identity: keys, secrets; an agent
    server started dormant takes them with `POST /api/init`), so that no waiting member holds
    anything of a session. The claim's `payload` is its body (without one, the request's own
    `body`). It must answer 2xx within `on_claim_timeout` seconds; otherwise the member is
    discarded (never handed out, never back in the pool: it may hold part of that identity)
    and the claim goes on to the next member, or to a cold start.
    """

    port: int
    path: str = "/"
    interval: float = 0.05
    timeout: float = 1.0
    warmup: tuple[WarmUpRequest, ...] = attrs.field(default=(), converter=_requests)
    warmup_timeout: float = 60.0
    host: str | None = None
    check_at_claim: bool = False
    on_claim: WarmUpRequest | None = None
    on_claim_timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        if self.host is not None and (not self.host or any(c in self.host for c in "/ ")):
            raise ValueError(f"readiness host {self.host!r} is not a host name or address")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"readiness port {self.port} is not in 1..65535")
        if not self.path.startswith("/"):
            raise ValueError(f"readiness path {self.path!r} must start with /")
        for name in ("interval", "timeout", "warmup_timeout", "on_claim_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"readiness {name} must be > 0 seconds")
        for step in self.warmup:
            if not isinstance(step, WarmUpRequest):
                raise ValueError(f"readiness warmup: {step!r} is not a WarmUpRequest")
        if self.on_claim is not None and not isinstance(self.on_claim, WarmUpRequest):
            raise ValueError(f"readiness on_claim: {self.on_claim!r} is not a WarmUpRequest")


#: Docker API version from which a health check's `start_interval` is honoured (Engine 25).
START_INTERVAL_API = (1, 44)


@attrs.frozen
class ContainerSpec:
    """Everything needed to create one pool member. Lists become tuples, dicts become frozen.

    `ports` are container ports (TCP); each is published on `port_host_ip` at a free host port
    chosen by Docker, read back into `Lease.ports`. `volumes` maps a host path or volume name to
    "<container path>" or "<container path>:ro". `random_env` names environment variables that
    get a fresh random secret per member (e.g. a per-sandbox API key); only their names enter
    the fingerprint.
    """

    image: str
    command: tuple[str, ...] | None = attrs.field(default=None, converter=_str_tuple)
    entrypoint: tuple[str, ...] | None = attrs.field(default=None, converter=_str_tuple)
    environment: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)
    ports: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    volumes: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)
    working_dir: str | None = None
    healthcheck: HealthCheck | None = None
    readiness: Readiness | None = None
    init: bool = False
    extra_hosts: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)
    mem_limit: str | None = None
    cpus: float | None = None
    user: str | None = None
    network: str | None = None
    port_host_ip: str = "127.0.0.1"
    random_env: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)

    def __attrs_post_init__(self) -> None:
        if not self.image.strip():
            raise ValueError("image must not be empty")
        for port in self.ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is not in 1..65535")
        for key in self.labels:
            if key in (POOL_LABEL, SPEC_LABEL):
                raise ValueError(f"label {key!r} is reserved: the pool sets it on its members")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("cpus must be > 0")
        if self.readiness is not None and self.readiness.port not in self.ports:
            raise ValueError(f"readiness port {self.readiness.port} is not one of ports")

    def canonical(self, image_id: str | None = None) -> dict[str, Any]:
        """The spec as plain JSON-able data, with the image replaced by `image_id` if given."""
        data = attrs.asdict(self, recurse=True)
        data = json.loads(json.dumps(data, sort_keys=True, default=_jsonable))
        if image_id is not None:
            data["image"] = image_id
        return data  # type: ignore[no-any-return]

    def fingerprint(self, image_id: str | None = None) -> str:
        """A stable 16-hex-digit digest of everything fixed at creation.

        Pass the resolved image ID: the pool does, so a retagged image is a different spec.
        """
        data = self.canonical(image_id)
        if data["readiness"] is not None:  # what a claim does, not what a member is made of
            for key in ("check_at_claim", "on_claim", "on_claim_timeout"):
                del data["readiness"][key]
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def readiness_mode(spec: ContainerSpec) -> str:
    """How a member of `spec` is known to be ready:

    "probe": dockpool's `readiness` probe answered, or Docker reported it healthy, whichever
    comes first (on every engine: measured, the probe notices a server within tens of ms of
    it answering, where Docker's fastest warm-up, `start_interval` on API >= 1.44, takes one
    exec per probe and 0.1-0.2 s; and engines before API 1.44 have no fast warm-up at all);
    "health": Docker reports it healthy (no `readiness`); "running": no check at all.
    """
    if spec.readiness is not None:
        return "probe"
    return "health" if spec.healthcheck is not None else "running"


def _jsonable(value: object) -> object:
    if isinstance(value, tuple | list):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")
