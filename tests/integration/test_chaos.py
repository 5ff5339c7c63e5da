"""The short chaos run (100 faults, a few minutes) as part of the suite, with two pool
processes; the long one is `python -m tests.chaos --faults 1000` (see tests/chaos and the
README). DOCKPOOL_CHAOS_FAULTS, DOCKPOOL_CHAOS_SEED and DOCKPOOL_CHAOS_PROCS override it."""

from __future__ import annotations

import os

import pytest

from tests import chaos

pytestmark = pytest.mark.docker


def test_chaos_keeps_the_promise(capsys: pytest.CaptureFixture[str]) -> None:
    """Faults of every kind on a pool shared by two processes break no invariant."""
    faults = os.environ.get("DOCKPOOL_CHAOS_FAULTS", "100")
    procs = os.environ.get("DOCKPOOL_CHAOS_PROCS", "2")
    seed = os.environ.get("DOCKPOOL_CHAOS_SEED")
    argv = ["--faults", faults, "--procs", procs] + (["--seed", seed] if seed else [])
    status = chaos.main(argv)
    out = capsys.readouterr().out
    print(out)  # the seed and the figures, in the test log
    assert status == 0, out
