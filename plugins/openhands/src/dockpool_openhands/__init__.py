"""dockpool for OpenHands: sandboxes handed over from a pool of pre-started, healthy containers.

The software-agent SDK (openhands-workspace >= 1.58), a drop-in for `DockerWorkspace`:

    from dockpool_openhands import PooledDockerWorkspace

OpenHands 1.x (the V1 app server), one environment variable:

    OH_SANDBOX_KIND=dockpool_openhands.PooledDockerSandboxServiceInjector
    OH_LIFESPAN_KIND=dockpool_openhands.PooledAppLifespanService  # pools live as the app does

OpenHands 0.62 (the V0 runtime), one line in OpenHands' config.toml:

    [core]
    runtime = "dockpool_openhands.PooledDockerRuntime"

The three cannot share one environment, so the names are resolved lazily: importing this
package imports none of them, and each name imports only its own entry point's code.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "PooledAppLifespanService": "dockpool_openhands.lifespan",
    "PooledDockerSandboxServiceInjector": "dockpool_openhands.sandbox_injector",
    "PooledDockerSandboxService": "dockpool_openhands.sandbox_service",
    "PooledDockerRuntime": "dockpool_openhands.runtime_v0",
    "PooledDockerWorkspace": "dockpool_openhands.workspace",
    "PoolRegistry": "dockpool_openhands.registry",
    "PoolSettings": "dockpool_openhands.pool",
    "REGISTRY": "dockpool_openhands.registry",
}

__all__ = [*sorted(_LAZY), "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dockpool_openhands' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
