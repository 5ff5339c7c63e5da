"""A seeded chaos run against the real engine: two or three pool processes share one pool while
faults rain on it, several claims are in flight at every step, and at the end the one promise
is checked on the engine.

    .venv/bin/python -m tests.chaos --faults 1000 [--seed N] [--procs 2] [--no-dockerd]

The seed is printed first; the same seed replays the same choices. The pool processes reach
the engine through a fault-injecting proxy (tests/fault_proxy.py), so answers can be lost after
the engine acted. Fault kinds (`kinds.py`): damage to unclaimed members (kill, rm -f, pause,
stop, restart, unhealthy, a rename by someone else), to the bookkeeping (a presence killed,
stopped or removed while its process lives, a hand removed, `docker container prune`, an attach
connection cut), lost and refused answers and slow ones, a cut event stream, SIGKILL of a pool
process (a new one replaces it, and the host recovers its interrupted claims with `lease_for`),
garbage and invalid config files, decoys that are not the pool's (one named like its leader),
and dockerd restarts.

Invariants (`checks.py`): no container in two leases; every session of the run has exactly one
delivered lease whose container carries its name, or no container at all and a recorded
failure (or, if its process died mid-claim, a container the host recovers); at most one upkeep
leader after settling, and it is the presence holding the leader name; member creates stay in
proportion to claims and faults (no storm); unclaimed members never above max_containers;
containers without the pool's label untouched; the last valid config applied; after close, no
unclaimed member and no bookkeeping container left, every claimed one kept. Exit status 0 iff
all hold. CI runs a short seeded run on each engine (tests/integration/test_chaos.py).
"""

from tests.chaos.run import main

__all__ = ["main"]
