"""The seam between dockpool and the Docker engine (with `event_stream`, the only docker import).

Every call goes through docker-py's low-level `APIClient` (one HTTP request each, no N+1
inspection), and every Docker SDK or transport error leaves this module as a dockpool error
(`raise ... from exc`), so nothing above this layer ever catches `docker.errors`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import docker
import docker.errors
import requests

from dockpool._adapters.api import Closeable, ContainerView
from dockpool._core.errors import (
    AlreadyNamedError,
    ContainerNotFoundError,
    DaemonUnavailableError,
    DockerError,
    ImageNotFoundError,
    NameConflictError,
)
from dockpool._core.machine import ContainerId
from dockpool._core.spec import START_INTERVAL_API, ContainerSpec

__all__ = ["ContainerView", "DockerAdapter", "make_client", "translated"]

T = TypeVar("T")

_NS = 1_000_000_000


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn any Docker SDK or transport error raised inside into a dockpool error."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFoundError(f"{what}: {_explain(exc)}") from exc
    except docker.errors.NotFound as exc:
        message = _explain(exc)
        if "image" in message.lower():
            raise ImageNotFoundError(f"{what}: {message}") from exc
        raise ContainerNotFoundError(f"{what}: {message}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 409 and "already in use" in _explain(exc):
            raise NameConflictError(f"{what}: {_explain(exc)}") from exc
        if exc.status_code == 400 and "same name" in _explain(exc):
            raise AlreadyNamedError(f"{what}: {_explain(exc)}") from exc
        raise DockerError(f"{what}: {_explain(exc)}") from exc
    except (requests.exceptions.ConnectionError, ConnectionError) as exc:
        raise DaemonUnavailableError(f"{what}: cannot reach the Docker engine: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise DockerError(f"{what}: request to the Docker engine failed: {exc}") from exc
    except docker.errors.DockerException as exc:
        raise DaemonUnavailableError(f"{what}: {exc}") from exc


def _explain(exc: docker.errors.DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


#: Connections kept open to the engine: enough for a burst of concurrent claims, each of which
#: would otherwise open (and then drop) a connection of its own beyond docker-py's default 10.
_CONNECTIONS = 32


def make_client(base_url: str | None = None, timeout: float = 30.0) -> Any:
    """A low-level API client for the engine at `base_url` (default: DOCKER_HOST or the socket)."""
    with translated("connecting to Docker"):
        if base_url is None:
            api = docker.from_env(timeout=int(timeout), max_pool_size=_CONNECTIONS).api
        else:
            api = docker.APIClient(base_url=base_url, version="auto", timeout=int(timeout),
                                   max_pool_size=_CONNECTIONS)  # fmt: skip
    if str(api.base_url).startswith("http+docker://local"):  # a unix socket: no proxy applies
        # requests would read the proxy variables of the environment on every call (about a
        # millisecond per call here, on a claim's path); a local socket never goes through one
        api.trust_env = False
    return api


class DockerAdapter:
    """Create, start, rename, remove, inspect and list containers; resolve images."""

    def __init__(self, base_url: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self._api = make_client(base_url, timeout)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with translated(what):
            return fn(*args, **kwargs)

    @property
    def api_version(self) -> tuple[int, int]:
        major, minor = str(self._api.api_version).split(".")[:2]
        return int(major), int(minor)

    def ping(self) -> None:
        """Raise DaemonUnavailableError unless the engine answers."""
        self._call("pinging the Docker engine", self._api.ping)

    def resolve_image(self, ref: str) -> str:
        """The image ID `ref` names on the engine; ImageNotFoundError if there is none."""
        info = self._call(f"resolving image {ref!r}", self._api.inspect_image, ref)
        return str(info["Id"])

    def create(
        self, spec: ContainerSpec, name: str, labels: Mapping[str, str], image: str | None = None
    ) -> ContainerId:
        """Create (not start) a container from `spec`, named `name`, with extra `labels`."""
        config = self._create_config(spec, name, labels, image or spec.image)
        result = self._call(
            f"creating container {name!r}", self._api.create_container_from_config, config, name
        )
        return ContainerId(str(result["Id"]))

    def _create_config(
        self, spec: ContainerSpec, name: str, labels: Mapping[str, str], image: str
    ) -> dict[str, Any]:
        env = dict(spec.environment)
        for key in spec.random_env:
            env[key] = secrets.token_urlsafe(24)
        host_config = self._api.create_host_config(
            port_bindings={port: (spec.port_host_ip,) for port in spec.ports},
            binds=_binds(spec.volumes),
            init=spec.init or None,
            extra_hosts=dict(spec.extra_hosts) or None,
            mem_limit=spec.mem_limit,
            nano_cpus=int(spec.cpus * _NS) if spec.cpus else None,
            network_mode=spec.network,
            restart_policy={"Name": "no"},
        )
        config: dict[str, Any] = self._api.create_container_config(
            image=image,
            command=list(spec.command) if spec.command is not None else None,
            entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
            environment=env,
            labels={**spec.labels, **labels},
            ports=list(spec.ports) or None,
            working_dir=spec.working_dir,
            user=spec.user,
            host_config=host_config,
        )
        if spec.healthcheck is not None:
            hc = spec.healthcheck
            health: dict[str, Any] = {
                "Test": list(hc.test),
                "Interval": int(hc.interval * _NS),
                "Timeout": int(hc.timeout * _NS),
                "Retries": hc.retries,
                "StartPeriod": int(hc.start_period * _NS),
            }
            if hc.start_interval is not None and self.api_version >= START_INTERVAL_API:
                health["StartInterval"] = int(hc.start_interval * _NS)
            config["Healthcheck"] = health
        return config

    def create_marker(
        self, name: str, labels: Mapping[str, str], image: str, *, stdin: bool
    ) -> ContainerId:
        """A presence (`stdin`: runs `cat` until its attached stdin closes) or a hand (never
        started); no network, no restart, no health check of the image."""
        config: dict[str, Any] = self._api.create_container_config(
            image=image,
            command=None,
            entrypoint=["cat"] if stdin else ["true"],
            labels=dict(labels),
            stdin_open=stdin,
            host_config=self._api.create_host_config(
                network_mode="none", restart_policy={"Name": "no"}
            ),
        )
        config["StdinOnce"] = stdin  # the engine closes cat's stdin when our attach ends
        config["Healthcheck"] = {"Test": ["NONE"]}
        result = self._call(
            f"creating container {name!r}", self._api.create_container_from_config, config, name
        )
        return ContainerId(str(result["Id"]))

    def attach_stdin(self, container_id: ContainerId) -> Closeable:
        sock = self._call(
            f"attaching to container {container_id[:12]}",
            self._api.attach_socket,
            container_id,
            params={"stdin": 1, "stream": 1},
        )
        return _Attached(sock)

    def start(self, container_id: ContainerId) -> None:
        self._call(f"starting container {container_id[:12]}", self._api.start, container_id)

    def rename(self, container: str, new_name: str) -> None:
        """Rename atomically; NameConflictError if `new_name` is taken (nothing changes then).

        `container` is an id or a current name. Renaming by the current name is what makes a
        claim safe against stale views: once the member has left its name, nothing answers.
        """
        self._call(
            f"renaming container {container[:40]} to {new_name!r}",
            self._api.rename,
            container,
            new_name,
        )

    def remove(self, container: str) -> bool:
        """Force-remove `container` (an id or a current name); idempotent: True if removed
        now, False if it was already gone (or no container answers to that name)."""
        try:
            self._call(
                f"removing container {container[:40]}",
                self._api.remove_container,
                container,
                force=True,
                v=True,
            )
        except ContainerNotFoundError:
            return False
        except DockerError as exc:
            if "already in progress" in str(exc):  # 409: someone else is removing it
                return False
            raise
        return True

    def inspect(self, container: str) -> ContainerView:
        info = self._call(
            f"inspecting container {container[:40]}", self._api.inspect_container, container
        )
        state = info.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        return ContainerView(
            id=ContainerId(info["Id"]),
            name=str(info.get("Name", "")).lstrip("/"),
            status=str(state.get("Status", "")),
            health=health or None,
            labels=(info.get("Config") or {}).get("Labels") or {},
            ports=_ports((info.get("NetworkSettings") or {}).get("Ports") or {}),
            env=_env((info.get("Config") or {}).get("Env") or []),
        )

    def list(self, labels: Mapping[str, str]) -> list[ContainerView]:
        """Every container (running or not) carrying all of `labels` (a value of "": any
        value), in one request."""
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
        rows = self._call("listing containers", self._api.containers, all=True, filters=filters)
        return [_from_row(row) for row in rows]

    def close(self) -> None:
        self._api.close()


class _Attached:
    """The hijacked attach connection: closing it (or this process ending) ends the container."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def close(self) -> None:
        with suppress(OSError):
            self._sock.close()


def _binds(volumes: Mapping[str, str]) -> list[str] | None:
    return [f"{source}:{target}" for source, target in volumes.items()] or None


def _ports(raw: Mapping[str, Any]) -> dict[int, int]:
    ports: dict[int, int] = {}
    for key, bindings in raw.items():
        port, _, proto = key.partition("/")
        if proto != "tcp" or not bindings:
            continue
        ports[int(port)] = int(bindings[0]["HostPort"])
    return ports


def _from_row(row: Mapping[str, Any]) -> ContainerView:
    status_text = str(row.get("Status", ""))
    health = None
    if "(healthy)" in status_text:
        health = "healthy"
    elif "(unhealthy)" in status_text:
        health = "unhealthy"
    elif "(health: starting)" in status_text:
        health = "starting"
    ports = {
        int(p["PrivatePort"]): int(p["PublicPort"])
        for p in row.get("Ports") or []
        if p.get("Type") == "tcp" and p.get("PublicPort")
    }
    names = row.get("Names") or [""]
    return ContainerView(
        id=ContainerId(str(row["Id"])),
        name=str(names[0]).lstrip("/"),
        status=str(row.get("State", "")),
        health=health,
        labels=row.get("Labels") or {},
        ports=ports,
        created=float(row.get("Created") or 0),
    )


def _env(items: list[str]) -> dict[str, str]:
    """Config.Env ("KEY=value" strings) as a mapping."""
    return dict(item.split("=", 1) for item in items if "=" in item)
