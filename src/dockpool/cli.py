"""The `dockpool` command line: the only place where dockpool configures logging."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from loguru import logger

from dockpool._core.config import PoolConfig
from dockpool._core.errors import DockpoolError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockpool", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("config", help="validate a config file and print it as JSON")
    show.add_argument("--config", default="config.toml", help="path of config.toml")
    return parser


def _setup_logging(verbose: bool) -> None:
    logger.remove()
    logger.add(
        sys.stderr,
        level="DEBUG" if verbose else "INFO",
        format="{time:HH:mm:ss.SSS} {level: <7} {message}",
    )
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
        "spec": cfg.spec.canonical(),
        "fingerprint (before image resolution)": cfg.spec.fingerprint(),
    }
    print(json.dumps(out, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dockpool` command."""
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        if args.command == "config":
            return _show_config(args.config)
    except DockpoolError as exc:
        logger.error("{}", exc)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
