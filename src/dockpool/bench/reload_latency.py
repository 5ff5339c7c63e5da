"""Hot-reload latency: from saving config.toml to the pool's first create of the new member.

    python -m dockpool.bench.reload_latency [--edits N] [--json PATH]

Each round raises `container_pool_size` from 0 to 1 in the watched file and times, from the
moment the write returned, to the `member_creating` signal (sent as the create is handed to a
create worker); then it sets the size back to 0 and waits for the member to be retired.
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dockpool import ContainerPool, PoolConfig, signals
from dockpool.bench._harness import BenchRun, Result, machine_info
from dockpool.bench.report import render, render_header, to_json

TEMPLATE = """\
[sandbox]
container_pool_size = {size}

[dockpool]
name = "{name}"
image = "dockpool-stub:latest"
ports = [8000]
labels = {{ "dockpool.bench.run" = "{run}" }}

[dockpool.healthcheck]
test = ["CMD", "stub-check"]
interval = 0.5
timeout = 1.0
retries = 1
"""


def measure(run: BenchRun, edits: int) -> Result:
    result = Result(f"hot reload: file saved -> first create of the new member ({edits} edits)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        name = run.pool_name("reload")
        path.write_text(TEMPLATE.format(size=0, name=name, run=run.hex))
        pool = ContainerPool.from_config(PoolConfig.from_toml(path))
        run.pools.append(pool)
        pool.start()
        created = threading.Event()
        stamp: list[float] = []

        def on_create(sender: Any, **payload: Any) -> None:
            stamp.append(time.perf_counter())
            created.set()

        signals.member_creating.connect(on_create, sender=pool, weak=False)
        try:
            watcher = pool.watch_config(path)
            watcher.wait_ready(10)
            samples = []
            for _ in range(edits):
                created.clear()
                stamp.clear()
                path.write_text(TEMPLATE.format(size=1, name=name, run=run.hex))
                saved = time.perf_counter()
                if not created.wait(10):
                    result.notes.append("an edit was not followed by a create within 10 s")
                    continue
                samples.append(stamp[0] - saved)
                path.write_text(TEMPLATE.format(size=0, name=name, run=run.hex))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (pool.stats().size or pool.stats().warming):
                    time.sleep(0.05)
                time.sleep(0.3)
            result.series["save -> member_creating"] = samples
        finally:
            signals.member_creating.disconnect(on_create)
            run.close_pool(pool)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dockpool.bench.reload_latency")
    parser.add_argument("--edits", type=int, default=20, help="timed edits (default 20)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw samples to PATH")
    args = parser.parse_args(argv)
    with BenchRun() as run:
        meta = {**machine_info(), **run.engine_info()}
        render_header(meta, sys.stdout)
        result = measure(run, args.edits)
        render(result, sys.stdout)
        if args.json:
            to_json(meta, [result], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
