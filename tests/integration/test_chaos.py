"""The short chaos run (about 100 faults, a few minutes) as part of the suite; the long one
is `python -m tests.chaos --faults 1000` (see tests/chaos.py and the README)."""

from __future__ import annotations

import os

import pytest

from tests import chaos

pytestmark = pytest.mark.docker


def test_chaos_keeps_the_promise(capsys: pytest.CaptureFixture[str]) -> None:
    """Faults of every kind on a pool shared by three processes break no invariant."""
    faults = os.environ.get("DOCKPOOL_CHAOS_FAULTS", "100")
    seed = os.environ.get("DOCKPOOL_CHAOS_SEED")
    argv = ["--faults", faults] + (["--seed", seed] if seed else [])
    status = chaos.main(argv)
    out = capsys.readouterr().out
    print(out)  # the seed and the figures, in the test log
    assert status == 0, out
