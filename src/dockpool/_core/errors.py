"""dockpool's exception tree: callers catch these, never an exception of the Docker SDK.

DockpoolError
├── ConfigError              a config file or value is wrong (names file, key, line)
├── DockerError              the Docker engine refused or failed (translated by the adapter)
│   ├── DaemonUnavailableError   the engine cannot be reached
│   ├── ImageNotFoundError       the spec's image is not on the engine
│   ├── ContainerNotFoundError   the container is gone
│   ├── NameConflictError        the name is taken by another container
│   └── AlreadyNamedError        a rename to the name the container already has
└── PoolError                the pool itself cannot do what was asked
    ├── PoolClosedError          the pool is not running
    ├── PoolTimeoutError         a wait ran out of time
    └── ClaimError               a claim could not be served
        └── NameInUseError       the session name is already a container's name
"""

from __future__ import annotations


class DockpoolError(Exception):
    """Base class of every error dockpool raises on purpose."""


class ConfigError(DockpoolError):
    """A configuration file or value is invalid; the message names file, key and line."""


class DockerError(DockpoolError):
    """The Docker engine refused or failed an operation."""


class DaemonUnavailableError(DockerError):
    """The Docker engine cannot be reached (not running, wrong socket, no permission)."""


class ImageNotFoundError(DockerError):
    """The image named by the spec does not exist on the engine (and none can be pulled)."""


class ContainerNotFoundError(DockerError):
    """The container does not exist (any more)."""


class NameConflictError(DockerError):
    """Another container already has the requested name."""


class AlreadyNamedError(DockerError):
    """The container already has the requested name (the engine refuses such a rename).

    Two renames of one container to one name: exactly one succeeds, the other gets this (or a
    NameConflictError). A retry of a rename whose answer was lost gets it too: it went through.
    """


class PoolError(DockpoolError):
    """The pool cannot do what was asked."""


class PoolClosedError(PoolError):
    """The pool was not started, or has been closed."""


class PoolTimeoutError(PoolError):
    """A wait on the pool (readiness, fill) ran out of time."""


class ClaimError(PoolError):
    """A claim could not be served, neither from the pool nor by a cold start."""


class NameInUseError(ClaimError):
    """The requested session name already belongs to a container; nothing was touched."""
