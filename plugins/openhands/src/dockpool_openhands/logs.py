"""dockpool's loguru records, delivered to the host's stdlib `logging`.

dockpool logs through loguru and, as a library, stays disabled until a host enables it.
OpenHands reads stdlib `logging` only, so `install()` (called when the plugin starts its first
pool) enables dockpool and adds one loguru sink that turns each record of dockpool (or of this
plugin) into a stdlib `LogRecord` on the stdlib logger of the record's module: a record of
`dockpool._runtime.executor` goes to `logging.getLogger("dockpool._runtime.executor")`, so
`logging.getLogger("dockpool")` controls them all. Level, message, exception (with its
traceback) and the caller's file, line and function are kept; the record is made in the
logging thread, as the call runs, so its time and thread are the call's.

Which records go through is decided on the stdlib side: the sink's filter asks the target
logger's `isEnabledFor` before loguru formats anything for it (loguru runs handler filters
before it renders the record), so a record the host would drop costs little.

Loguru's default handler (id 0, stderr, everything from DEBUG up), if still installed when
`install()` runs, is replaced by an equivalent one that leaves dockpool's records out, so they
are not written twice; other loguru users' records reach stderr as before. Handlers the host
added itself are left alone (they receive dockpool's records, as they would any loguru
record). See the plugin's README ("Logs").
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message, Record

__all__ = ["LEVEL_ENV", "PACKAGES", "TRACE", "install", "level_from", "ours", "stdlib_level"]

#: The packages whose loguru records are forwarded (a module of one, or the package itself).
PACKAGES = ("dockpool", "dockpool_openhands")
#: Optional level of the stdlib loggers "dockpool" and "dockpool_openhands" (a name or number).
LEVEL_ENV = "DOCKPOOL_LOG_LEVEL"
#: The stdlib level of loguru's TRACE (stdlib has none: below DEBUG, as in loguru).
TRACE = 5

_STDLIB_LEVELS = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
_lock = threading.Lock()
_installed = False
_forwarding = threading.local()  # set while a record is handed to stdlib logging
_logger = logging.getLogger(__name__)


def install() -> bool:
    """Forward dockpool's loguru records to stdlib logging, once per process (thread-safe).

    True if this call installed it, False if it already was."""
    global _installed
    if _installed:
        return False
    with _lock:
        if _installed:
            return False
        logger.add(
            _forward,
            level=TRACE,
            format="{message}",
            filter=_wanted,
            colorize=False,
            backtrace=False,
            diagnose=False,  # no variable values in tracebacks: stdlib formats its own
        )
        _spare_default_sink()
        logger.enable("dockpool")
        _installed = True
    _apply_level_env()
    return True


def ours(name: str | None) -> bool:
    """True if a record of module `name` is dockpool's or this plugin's."""
    if not name:
        return False
    return any(name == package or name.startswith(f"{package}.") for package in PACKAGES)


def stdlib_level(levelno: int) -> tuple[int, str]:
    """The stdlib level (and its name) of a loguru level number: the standard level at or
    below it (SUCCESS, 25, is INFO; a custom 35 is WARNING), or TRACE below DEBUG."""
    for level in _STDLIB_LEVELS:
        if levelno >= level:
            return level, logging.getLevelName(level)
    return TRACE, "TRACE"


def level_from(value: str) -> int | None:
    """A level from `value`: a number, or a stdlib level name or TRACE (any case); None if
    it is neither."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.upper() == "TRACE":
        return TRACE
    return logging.getLevelNamesMapping().get(text.upper())


def _wanted(record: Record) -> bool:
    """The sink's filter: ours, not raised by our own forwarding, and enabled on the stdlib
    logger it would go to."""
    name = record["name"]
    if not ours(name) or getattr(_forwarding, "active", False):
        return False
    level, _ = stdlib_level(record["level"].no)
    return logging.getLogger(name).isEnabledFor(level)


def _forward(message: Message) -> None:
    """The sink: the loguru record as a stdlib record, handled by its module's logger."""
    record = message.record
    name = record["name"] or PACKAGES[0]
    target = logging.getLogger(name)
    level, level_name = stdlib_level(record["level"].no)
    exception = record["exception"]
    exc_info = None
    if exception is not None and exception.type is not None and exception.value is not None:
        exc_info = (exception.type, exception.value, exception.traceback)
    stdlib_record = target.makeRecord(
        name,
        level,
        record["file"].path,
        record["line"],
        record["message"],
        (),  # loguru has formatted the message: no %-args for stdlib to apply
        exc_info,
        func=record["function"],
    )
    stdlib_record.levelname = level_name
    _forwarding.active = True  # a stdlib handler that logs to loguru must not loop back here
    try:
        target.handle(stdlib_record)
    finally:
        _forwarding.active = False


def _not_ours(record: Record) -> bool:
    return not ours(record["name"])


def _spare_default_sink() -> None:
    """Replace loguru's default stderr handler (id 0), if it is still installed, with one
    made the same way (loguru's defaults, as its own start-up adds it) that skips dockpool's
    and this plugin's records. The new one is added first, so that no record is lost."""
    spare = logger.add(sys.stderr, filter=_not_ours) if sys.stderr else None
    try:
        logger.remove(0)
    except ValueError:  # gone already (the host configured loguru) or never added
        if spare is not None:
            logger.remove(spare)


def _apply_level_env() -> None:
    """Set the stdlib level of dockpool's and this plugin's loggers from $DOCKPOOL_LOG_LEVEL."""
    value = os.environ.get(LEVEL_ENV, "").strip()
    if not value:
        return
    level = level_from(value)
    if level is None:
        _logger.warning(
            "%s=%r is not a log level (e.g. DEBUG, INFO, 10); ignored", LEVEL_ENV, value
        )
        return
    for package in PACKAGES:
        logging.getLogger(package).setLevel(level)
