"""Readiness probes for pool members: the image's own HEALTHCHECK, or an HTTP probe.

dockpool hands out only members Docker reports healthy, so a member's spec needs a health
check. The stock OpenHands services set none: the image's own HEALTHCHECK (if any) applies to
their containers. A pool member copies that health check verbatim, so it is the same container;
only an image without one gets the HTTP probe below (the agent server's `/ready`, or the V0
action-execution server's `/alive`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockpool import HealthCheck

_NS = 1_000_000_000
# Docker's defaults for a HEALTHCHECK that leaves a field out (0 in the image's config).
_DEFAULT_INTERVAL = 30.0
_DEFAULT_TIMEOUT = 30.0
_DEFAULT_RETRIES = 3


def image_healthcheck(image_config: Mapping[str, Any] | None) -> HealthCheck | None:
    """The HEALTHCHECK in an image's config (`docker image inspect` .Config), or None."""
    if not isinstance(image_config, Mapping):
        return None
    raw = image_config.get("Healthcheck")
    if not isinstance(raw, Mapping):
        return None
    test = raw.get("Test")
    if not isinstance(test, list) or not test or test[0] not in ("CMD", "CMD-SHELL"):
        return None  # none, or ["NONE"] (disabled)

    def seconds(key: str, default: float) -> float:
        value = raw.get(key)
        return value / _NS if isinstance(value, int) and value > 0 else default

    start_interval = raw.get("StartInterval")
    return HealthCheck(
        test=[str(part) for part in test],
        interval=seconds("Interval", _DEFAULT_INTERVAL),
        timeout=seconds("Timeout", _DEFAULT_TIMEOUT),
        retries=int(raw.get("Retries") or _DEFAULT_RETRIES),
        start_period=seconds("StartPeriod", 0.0),
        start_interval=start_interval / _NS
        if isinstance(start_interval, int) and start_interval > 0
        else None,
    )


def http_probe(port: int, path: str, *, interval: float = 1.0) -> HealthCheck:
    """Healthy once GET http://127.0.0.1:<port><path> answers 2xx, probed with whichever of
    curl, wget or python3 the image has (Docker's timeout bounds each probe: busybox's wget
    crashes with -T). Failures in the first 120 s do not count."""
    url = f"http://127.0.0.1:{port}{path}"
    shell = (
        f"curl -fsS -o /dev/null --max-time 2 {url} 2>/dev/null"
        f" || wget -q -O /dev/null {url} 2>/dev/null"
        f" || python3 -c 'import urllib.request as u; u.urlopen(\"{url}\", timeout=2)'"
        " 2>/dev/null"
    )
    return HealthCheck(
        test=["CMD-SHELL", shell],
        interval=interval,
        timeout=3.0,
        retries=3,
        start_period=120.0,
        start_interval=0.25,
    )


def docker_image_config(docker_client: Any, image: str) -> Mapping[str, Any] | None:
    """`.Config` of `image` through a docker-py client; None if it cannot be read."""
    try:
        attrs = docker_client.images.get(image).attrs
    except Exception:  # a missing image or an unreachable engine: no pool for it now anyway
        return None
    config = attrs.get("Config") if isinstance(attrs, Mapping) else None
    return config if isinstance(config, Mapping) else None
