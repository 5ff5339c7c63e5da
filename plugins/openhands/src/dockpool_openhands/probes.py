"""Readiness and liveness for pool members of the OpenHands images.

Readiness: dockpool's own HTTP probe of the server's readiness path (the agent server's
`/ready`, the V0 action-execution server's `/alive`), from the host during warm-up only, and
once more at claim time (`dockpool.Readiness`); Docker's "healthy" counts too if it comes
first (on API >= 1.44 its `start_interval` probes fast during warm-up).

Liveness: Docker's health check, the image's own HEALTHCHECK if it has one (the stock images
set none; ours probes every 1 s), else an HTTP check of the same path; either way stretched to
`LIVENESS_INTERVAL` once the member is up (`liveness`), so an idle warm member costs almost
nothing on any engine. An unhealthy member is still replaced: it just takes longer to notice,
and the claim's own readiness GET keeps a silent server from being handed out meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from dockpool import HealthCheck, Readiness

_NS = 1_000_000_000
# Docker's defaults for a HEALTHCHECK that leaves a field out (0 in the image's config).
_DEFAULT_INTERVAL = 30.0
_DEFAULT_TIMEOUT = 30.0
_DEFAULT_RETRIES = 3
#: Seconds between liveness probes of a warm member (the image's own interval if longer).
LIVENESS_INTERVAL = 120.0
#: Seconds between Docker's warm-up probes on engines that honour `start_interval`.
WARMUP_INTERVAL = 0.1


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


def liveness(check: HealthCheck) -> HealthCheck:
    """`check` probing fast during warm-up (where the engine can) and slowly afterwards."""
    return attrs.evolve(
        check,
        interval=max(check.interval, LIVENESS_INTERVAL),
        start_interval=min(check.start_interval or WARMUP_INTERVAL, WARMUP_INTERVAL),
    )


def readiness(port: int, path: str) -> Readiness:
    """dockpool's warm-up probe (every 50 ms from the host) and claim-time check of `path`."""
    return Readiness(port=port, path=path, interval=0.05, timeout=2.0)


def http_probe(port: int, path: str, *, interval: float = LIVENESS_INTERVAL) -> HealthCheck:
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
        start_interval=WARMUP_INTERVAL,
    )


def docker_image_config(docker_client: Any, image: str) -> Mapping[str, Any] | None:
    """`.Config` of `image` through a docker-py client; None if it cannot be read."""
    try:
        attrs = docker_client.images.get(image).attrs
    except Exception:  # a missing image or an unreachable engine: no pool for it now anyway
        return None
    config = attrs.get("Config") if isinstance(attrs, Mapping) else None
    return config if isinstance(config, Mapping) else None
