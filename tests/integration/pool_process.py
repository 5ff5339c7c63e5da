"""A pool in a process of its own, driven over stdin/stdout, for the tests (and the chaos run)
that need several processes sharing one pool on one engine.

    python -m tests.integration.pool_process CONFIG.toml [--watch]

It starts `ContainerPool.from_config`, prints one JSON line per fact, and reads commands:

    claim N PREFIX     N concurrent claims named PREFIX-<i>; one {"lease"} or {"error"} each,
                       then {"claimed": N} (the next command is read after they end)
    spawn N PREFIX     the same, in the background (the next command is read at once)
    drain              wait for every spawned claim: {"drained": how many ran}
    recover NAME       `lease_for(NAME)`: {"recovered": lease or null, "name": NAME}
    release NAME       `release(NAME)`: {"released": bool, "name": NAME}
    stats              {"stats": {...}, "leader": bool, "size": the size in force}
    close              close the pool, print {"closed": true} and exit

Facts: {"started": token, "leader": bool} once; {"leader": bool, "t": time} on every change
of the upkeep. Every line carries "pid".
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import attrs
from loguru import logger

from dockpool import ContainerPool, PoolConfig, signals

_out = threading.Lock()


def say(**fact: Any) -> None:
    with _out:
        sys.stdout.write(json.dumps({"pid": os.getpid(), **fact}) + "\n")
        sys.stdout.flush()


def _claim(pool: ContainerPool, name: str) -> None:
    try:
        lease = pool.claim(name, timeout=60)
    except Exception as exc:
        say(error=f"{type(exc).__name__}: {exc}", name=name)
        return
    say(lease={**attrs.asdict(lease), "ports": dict(lease.ports)})


def main(path: str, watch: bool = False) -> int:
    if os.environ.get("DOCKPOOL_PROCESS_LOG") == "1":  # (the chaos run keeps it for a failure)
        logger.enable("dockpool")
        logger.add(sys.stderr, level="INFO", format="{time:HH:mm:ss.SSS} {level} {message}")
    pool = ContainerPool.from_config(PoolConfig.from_toml(path))

    def on_upkeep(sender: Any, leading: bool) -> None:
        say(leader=leading, t=time.time())

    signals.upkeep_changed.connect(on_upkeep, weak=False)
    pool.start()
    if watch:  # hot reload, as `dockpool run` does
        pool.watch_config(path).wait_ready(5)
    say(started=pool.token, leader=pool.leader)
    spawned: list[threading.Thread] = []
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] in ("claim", "spawn"):
            count, prefix = int(words[1]), words[2]
            threads = [
                threading.Thread(target=_claim, args=(pool, f"{prefix}-{i}")) for i in range(count)
            ]
            for t in threads:
                t.start()
            if words[0] == "spawn":
                spawned += threads
                continue
            for t in threads:
                t.join()
            say(claimed=count)
        elif words[0] == "drain":
            for t in spawned:
                t.join()
            say(drained=len(spawned))
        elif words[0] == "recover":
            try:
                found = pool.lease_for(words[1])
            except Exception as exc:
                say(recovered=None, name=words[1], failed=f"{type(exc).__name__}: {exc}")
            else:
                lease = (
                    None if found is None else {**attrs.asdict(found), "ports": dict(found.ports)}
                )
                say(recovered=lease, name=words[1])
        elif words[0] == "release":
            try:
                say(released=pool.release(words[1]), name=words[1])
            except Exception as exc:
                say(released=False, name=words[1], failed=f"{type(exc).__name__}: {exc}")
        elif words[0] == "stats":
            say(stats=attrs.asdict(pool.stats()), leader=pool.leader, size=pool.config.size)
        elif words[0] == "close":
            break
    pool.close(timeout=30)  # (it lets the claims in flight end first)
    for t in spawned:
        t.join(60)
    say(closed=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], watch="--watch" in sys.argv[2:]))
