"""The `dockpool` command line: the only place where dockpool configures logging.

dockpool run --config config.toml      run a pool until SIGINT/SIGTERM, logging every change
dockpool config --config config.toml   validate a config file and print it as JSON
dockpool status [--once|--json]     show a pool: its running process's view, else the engine's
dockpool bench [--agent-server|--smoke|--help ...]   benchmark pooled against cold
                                       (`dockpool.bench`, installed with dockpool; its plots
                                       need the `dockpool[bench]` extra)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from dockpool import signals
from dockpool._core.config import PoolConfig
from dockpool._core.errors import DockpoolError
from dockpool._runtime.pool import ContainerPool


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockpool", description="A pool of warm containers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pool of a config file until SIGINT/SIGTERM")
    run.add_argument("--config", default="config.toml", help="path of config.toml")
    run.add_argument("--docker-url", default=None, help="Docker engine URL (default: env/socket)")
    run.add_argument(
        "--no-watch", action="store_true", help="do not apply edits of the config file live"
    )
    show = sub.add_parser("config", help="validate a config file and print it as JSON")
    show.add_argument("--config", default="config.toml", help="path of config.toml")
    status = sub.add_parser(
        "status",
        help="show a pool: from its running process (--url, or the config's [dockpool.metrics] "
        "address), else from the engine alone",
    )
    status.add_argument("--config", default="config.toml", help="path of config.toml")
    status.add_argument("--url", default=None, help="a pool process's address (http://host:port)")
    status.add_argument("--engine", action="store_true", help="read the engine only")
    status.add_argument("--pool", default=None, help="with the engine: this pool only")
    status.add_argument("--docker-url", default=None, help="Docker engine URL (default: env)")
    status.add_argument("--once", action="store_true", help="print once and exit")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    bench = sub.add_parser(
        "bench",
        add_help=False,
        help="time to the first ready conversation, pooled against cold, and more "
        "(`dockpool bench --help`; plots need the `dockpool[bench]` extra)",
    )
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    return parser


def _bench_argv(argv: Sequence[str]) -> tuple[bool, list[str]] | None:
    """(verbose, the benchmark's arguments) for `dockpool [-v] bench ...`; else None."""
    verbose = False
    for i, arg in enumerate(argv):
        if arg in ("-v", "--verbose"):
            verbose = True
        elif arg == "bench":
            return verbose, list(argv[i + 1 :])
        else:
            return None
    return None


def _bench(args: list[str], verbose: bool) -> int:
    """Run `dockpool bench` (imported here: `dockpool run` and `config` do not load it)."""
    from dockpool.bench.main import main as bench_main

    if verbose:
        _setup_logging(True)
    return bench_main(args)


def _setup_logging(verbose: bool) -> None:
    logger.remove()
    fmt = "{time:HH:mm:ss.SSS} {level: <7} {message}"
    logger.add(sys.stderr, level="DEBUG" if verbose else "INFO", format=fmt)
    logger.enable("dockpool")


def _show_config(path: str) -> int:
    cfg = PoolConfig.from_toml(path)
    out = {
        "path": str(cfg.path),
        "size": cfg.size,
        "name": cfg.name,
        "max_containers": cfg.max_containers,
        "create_concurrency": cfg.create_concurrency,
        "max_age": cfg.max_age,
        "ready_timeout": cfg.ready_timeout,
        "resync_interval": cfg.resync_interval,
        "metrics": None if cfg.metrics is None else str(cfg.metrics),
        "spec": cfg.spec.canonical(),
    }
    print(json.dumps(out, indent=2))
    return 0


class _ChangeLog:
    """Receivers that log every member and pool change (kept alive by this object)."""

    def __init__(self) -> None:
        self.receivers: list[tuple[Any, Any]] = []

    def connect(self) -> None:
        for sig in signals.ALL:
            if sig.name == "docker_event":
                continue

            def receiver(sender: Any, _name: str = sig.name, **payload: Any) -> None:
                member = payload.get("member")
                detail = ", ".join(
                    f"{k}={_short(v)}"
                    for k, v in payload.items()
                    if k not in {"member", "lease"} and v not in (None, "")
                )
                lease = payload.get("lease")
                who = member.name if member is not None else ""
                if lease is not None:
                    who = f"{lease.name} ({lease.container_id[:12]}, ports {dict(lease.ports)})"
                logger.info("{:<16} {} {}", _name, who, detail)

            sig.connect(receiver, weak=False)
            self.receivers.append((sig, receiver))

    def disconnect(self) -> None:
        for sig, receiver in self.receivers:
            sig.disconnect(receiver)


def _short(value: Any) -> str:
    if isinstance(value, PoolConfig):
        return f"(size {value.size}, image {value.spec.image}, spec {value.spec.fingerprint()})"
    return str(value)


def _run(path: str, docker_url: str | None, watch: bool) -> int:
    config = PoolConfig.from_toml(path)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    changes = _ChangeLog()
    changes.connect()
    pool = ContainerPool.from_config(config, docker_url=docker_url)
    try:
        pool.start()
        if watch:
            pool.watch_config(path)
            logger.info("watching {} for changes (container_pool_size applies live)", path)
        logger.info(
            "pool {} running with {} members of {}; Ctrl-C stops it",
            pool.name,
            config.size,
            config.spec.image,
        )
        stop.wait()
        logger.info("stopping: removing unclaimed members")
    finally:
        pool.close()
        changes.disconnect()
    stats = pool.stats()
    logger.info(
        "stopped: {} claims from the pool, {} cold, {} replaced",
        stats.hits,
        stats.misses,
        stats.replaced,
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dockpool import status_view

    config_url, pool = None, args.pool
    if args.url is None and Path(args.config).is_file():
        try:
            config = PoolConfig.from_toml(args.config)
        except DockpoolError as exc:  # a broken file must not hide the pool: read the engine
            logger.warning("{}; reading the engine instead", exc)
        else:
            pool = pool or config.name
            config_url = config.metrics.url("/status") if config.metrics else None
    fetch, where = status_view.pick_source(args.url, config_url, args.engine, args.docker_url, pool)
    console = Console()
    if not args.json:
        console.print(f"dockpool status: {where}", style="dim")
    return status_view.show(
        fetch, console, once=args.once, as_json=args.json, interval=max(0.2, args.interval)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dockpool` command."""
    bench = _bench_argv(sys.argv[1:] if argv is None else argv)
    if bench is not None:
        return _bench(bench[1], verbose=bench[0])
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        if args.command == "config":
            return _show_config(args.config)
        if args.command == "status":
            return _status(args)
        if args.command == "run":
            return _run(args.config, args.docker_url, watch=not args.no_watch)
    except DockpoolError as exc:
        logger.error("{}", exc)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
