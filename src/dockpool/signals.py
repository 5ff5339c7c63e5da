"""dockpool's signals: one blinker signal per fact worth announcing, in dockpool's own namespace.

Connect a receiver with `signals.member_ready.connect(fn)` (optionally `sender=pool` to hear one
pool only). Every signal is sent with the pool as sender and keyword payload as documented
below. Receivers are called in the sending thread (the pool's reconciler thread for member and
stream facts, the claimer's thread for claims): keep them short and never block in them. A
receiver that raises is logged and skipped; it never breaks the pool or other receivers.

dockpool connects receivers strongly when it connects them itself; note that blinker's own
`connect` is weak by default, so a closure connected inside a function disappears with it
unless you pass `weak=False`.

Member signals (payload: `member`, a `dockpool.MemberInfo`: a snapshot of the member when the
signal was sent; `reason`, a str, may be empty):

- `member_creating`  a new member is being created (refill, growth or replacement).
- `member_started`   its container runs; it waits for Docker to report it healthy.
- `member_ready`     it is healthy (or running, without a health check) and claimable.
- `member_claimed`   it was renamed to a session's name; also `lease` (a `Lease`).
- `member_lost`      it died, turned unhealthy, was OOM-killed, paused, renamed or removed by
                     someone else, or a claim found it gone; `reason` says which. A
                     replacement follows.
- `member_failed`    its create or start failed (`reason`: the error).
- `member_retiring`  the pool is removing it (`reason`: shrink, max age, spec change, close).
- `member_retired`   it is gone from the engine.

Pool signals:

- `cold_start`       a claim found no ready member and started a container itself; `lease`.
- `claim_failed`     a claim raised (neither the pool nor a cold start could serve it, or the
                     name was taken); `session` (str), `reason` (the error's message).
- `pool_degraded`    members keep failing before ready; `failures` (consecutive count),
                     `retry_in` (seconds of back-off before the next create), `reason`.
- `pool_recovered`   a member became ready after the pool was degraded.
- `pool_resized`     the target size changed; `old`, `new` (ints), `reason` ("resize": the
                     config or `resize`; self-sizing: "cold fallback", "claim rate", "idle",
                     "bounds").
- `config_changed`   a new valid config was applied; `config`, `old` (`PoolConfig`s).
- `config_rejected`  a config reload failed; `error` (a `ConfigError`); the old config stays.
- `docker_event`     every container event of the pool's label, as received; `event`
                     (a `ContainerEvent`). Sent before the state machine sees it.
- `stream_lost`      the Docker event stream ended or failed; `error` (str), `retry_in`.
- `stream_restored`  the stream is back; a resync against the engine's list follows.
- `resynced`         a resync compared the table with the engine; `seen` (int), `changed` (int).
- `upkeep_changed`   this process took over the pool's upkeep, or lost it; `leading` (bool).
                     Of the processes sharing a pool on one engine, one does the upkeep.
"""

from __future__ import annotations

from typing import Any

import blinker
from loguru import logger

namespace = blinker.Namespace()

member_creating = namespace.signal("member_creating", doc="A new member is being created.")
member_started = namespace.signal("member_started", doc="A member's container runs.")
member_ready = namespace.signal("member_ready", doc="A member is healthy and claimable.")
member_claimed = namespace.signal("member_claimed", doc="A member was claimed by a session.")
member_lost = namespace.signal("member_lost", doc="A member broke or vanished; replaced.")
member_failed = namespace.signal("member_failed", doc="A member's create or start failed.")
member_retiring = namespace.signal("member_retiring", doc="The pool is removing a member.")
member_retired = namespace.signal("member_retired", doc="A retired member is gone.")
cold_start = namespace.signal("cold_start", doc="A claim was served by a cold start.")
claim_failed = namespace.signal("claim_failed", doc="A claim raised: nothing was handed over.")
pool_degraded = namespace.signal("pool_degraded", doc="Members keep failing; backing off.")
pool_recovered = namespace.signal("pool_recovered", doc="Members become ready again.")
pool_resized = namespace.signal("pool_resized", doc="The target size changed.")
config_changed = namespace.signal("config_changed", doc="A new config was applied.")
config_rejected = namespace.signal("config_rejected", doc="A config reload was rejected.")
docker_event = namespace.signal("docker_event", doc="A container event was received.")
stream_lost = namespace.signal("stream_lost", doc="The event stream ended or failed.")
stream_restored = namespace.signal("stream_restored", doc="The event stream is back.")
resynced = namespace.signal("resynced", doc="A resync against the engine's list ran.")
upkeep_changed = namespace.signal("upkeep_changed", doc="This process took or lost the upkeep.")

ALL = (
    member_creating, member_started, member_ready, member_claimed, member_lost, member_failed,
    member_retiring, member_retired, cold_start, claim_failed, pool_degraded, pool_recovered,
    pool_resized, config_changed, config_rejected, docker_event, stream_lost, stream_restored,
    resynced, upkeep_changed,
)  # fmt: skip


def send(name: str, sender: Any, **payload: Any) -> None:
    """Send signal `name` to each receiver in turn; a receiver that raises is logged and skipped."""
    signal = namespace[name]
    if not signal.receivers:
        return
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **payload)
        except Exception:
            logger.opt(exception=True).error("receiver {!r} of signal {} failed", receiver, name)
