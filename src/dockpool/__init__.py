"""dockpool: a pool of pre-started, healthy Docker containers, handed over by an atomic rename.

The public API is what this module exports; everything under a leading underscore is private.
The library logs through loguru but stays silent until the host enables it with
`loguru.logger.enable("dockpool")` (the `dockpool` CLI does).
"""

from loguru import logger

from dockpool import signals
from dockpool._core.config import PoolConfig
from dockpool._core.config_change import ConfigChange
from dockpool._core.endpoint import Endpoint
from dockpool._core.errors import (
    AlreadyNamedError,
    ClaimError,
    ConfigError,
    ContainerNotFoundError,
    DaemonUnavailableError,
    DockerError,
    DockpoolError,
    ImageNotFoundError,
    NameConflictError,
    NameInUseError,
    PoolClosedError,
    PoolError,
    PoolTimeoutError,
)
from dockpool._core.events import ContainerEvent
from dockpool._core.machine import MemberInfo, State
from dockpool._core.spec import (
    POOL_LABEL,
    SPEC_LABEL,
    ContainerSpec,
    HealthCheck,
    Readiness,
    WarmUpRequest,
)
from dockpool._core.timeouts import Timeouts
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.lease import Lease, PoolStats
from dockpool._runtime.pool import ContainerPool

logger.disable("dockpool")

__version__ = "0.1.0"

__all__ = [
    "POOL_LABEL",
    "SPEC_LABEL",
    "AlreadyNamedError",
    "Backoff",
    "ClaimError",
    "ConfigChange",
    "ConfigError",
    "ContainerEvent",
    "ContainerNotFoundError",
    "ContainerPool",
    "ContainerSpec",
    "DaemonUnavailableError",
    "DockerError",
    "DockpoolError",
    "Endpoint",
    "HealthCheck",
    "ImageNotFoundError",
    "Lease",
    "MemberInfo",
    "NameConflictError",
    "NameInUseError",
    "PoolClosedError",
    "PoolConfig",
    "PoolError",
    "PoolStats",
    "PoolTimeoutError",
    "Readiness",
    "State",
    "Timeouts",
    "WarmUpRequest",
    "__version__",
    "signals",
]
