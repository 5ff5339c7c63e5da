"""The waits and grace periods of the ownership protocol, named once, as one frozen value.

Each is a trade-off between how fast the pool recovers from a fault and how sure it is that
the fault is real; tests shrink them (`attrs.evolve`) instead of sleeping through them.
"""

from __future__ import annotations

import attrs


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"Timeouts.{attribute.name} must be >= 0 seconds, got {value!r}")


@attrs.frozen
class Timeouts:
    """Seconds the pool waits before it acts on what it cannot know for sure.

    - `peer_grace`: a process whose presence container ended may still be alive (someone
      killed only its presence, or its attach connection dropped) and in the middle of a
      claim; its locks (hands) are left alone this long after another process first saw it
      gone. It notices at once, stops using its locks and rejoins, well within this. (Should
      it not, a claim of it whose lock was freed meanwhile hands nothing out: handover.py.)
      A process that died holding a lock keeps it this long: claims pass the member by,
      creates wait for the capacity lock.
    - `rejoin_wait`: a claim made while its own process has no presence on the engine (it is
      rejoining) waits this long for the rejoin before it fails.
    - `resolve`: a call whose answer was lost (the connection broke after the engine acted)
      is resolved by asking the engine what became of it, for at most this long.
    """

    peer_grace: float = attrs.field(default=5.0, validator=_non_negative)
    rejoin_wait: float = attrs.field(default=5.0, validator=_non_negative)
    resolve: float = attrs.field(default=5.0, validator=_non_negative)
