"""dockpool's loguru records reach the host's stdlib logging (`dockpool_openhands.logs`).

Pure (no Docker, no OpenHands needed), run in both environments. The in-process tests share
this process's forwarding (installed once, as in a host); the ones about a fresh host (loguru's
default stderr handler, installing from several threads, the entry point, the environment
variable) run a short Python process each.
"""

from __future__ import annotations

import inspect
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dockpool_openhands import logs
from loguru import logger

from dockpool import ConfigError, PoolConfig, signals
from dockpool._core.config_change import ConfigChange
from dockpool._runtime import reload

if TYPE_CHECKING:
    from loguru import Record

    from dockpool._adapters.config_watch import ConfigWatcher

pytestmark = [pytest.mark.oh1, pytest.mark.oh062]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def dockpool_log() -> Iterator[Collect]:
    """What reaches the stdlib logger "dockpool", which is at DEBUG during the test."""
    logs.install()
    handler = Collect()
    top = logging.getLogger("dockpool")
    levels = {name: logging.getLogger(name).level for name in ("dockpool", "dockpool._runtime")}
    top.addHandler(handler)
    top.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        top.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def rejected_config(tmp_path: Path) -> ConfigError:
    path = tmp_path / "config.toml"
    path.write_text("[sandbox\n")
    with pytest.raises(ConfigError) as caught:
        PoolConfig.from_toml(path)
    return caught.value


def reject_config(tmp_path: Path) -> ConfigError:
    """A real pool event without an engine: a pool rejects a broken config edit, as its
    config watcher reports one (the pool is never started)."""
    error = rejected_config(tmp_path)
    rejecting_watcher(tmp_path).on_error(error)
    return error


def rejecting_watcher(tmp_path: Path) -> ConfigWatcher:
    """The config watcher a pool starts (not started here): what it does with a rejected edit
    is what a pool does."""
    return reload.watcher(
        tmp_path / "config.toml", lambda config: ConfigChange(), object(), "tlogs"
    )


def as_module(name: str) -> Callable[[Record], None]:
    def patch(record: Record) -> None:
        record["name"] = name

    return patch


def test_a_pool_event_reaches_the_stdlib_logger_of_its_module(
    dockpool_log: Collect, tmp_path: Path
) -> None:
    error = reject_config(tmp_path)
    [record] = dockpool_log.records
    assert record.name == "dockpool._runtime.reload"
    assert (record.levelno, record.levelname) == (logging.ERROR, "ERROR")
    assert record.getMessage() == f"{error} (the pool keeps its last good config)"
    assert record.exc_info is None
    # where dockpool made the call, not where the sink runs
    lines, first = inspect.getsourcelines(reload.watcher)
    assert Path(record.pathname).parts[-3:] == ("dockpool", "_runtime", "reload.py")
    assert record.funcName == "rejected"
    assert first < record.lineno < first + len(lines)


def test_the_stdlib_levels_decide(dockpool_log: Collect, tmp_path: Path) -> None:
    logging.getLogger("dockpool").setLevel(logging.CRITICAL)
    reject_config(tmp_path)
    assert dockpool_log.records == []
    logging.getLogger("dockpool").setLevel(logging.DEBUG)
    logging.getLogger("dockpool._runtime").setLevel(logging.CRITICAL)  # a subtree only
    reject_config(tmp_path)
    logger.patch(as_module("dockpool.signals")).debug("debug of another module")
    assert [r.name for r in dockpool_log.records] == ["dockpool.signals"]


def test_an_exception_and_its_traceback_are_carried(dockpool_log: Collect, tmp_path: Path) -> None:
    def broken_receiver(sender: object, **payload: object) -> None:
        raise ValueError("receiver is broken")

    signals.config_rejected.connect(broken_receiver, weak=False)
    try:
        reject_config(tmp_path)
    finally:
        signals.config_rejected.disconnect(broken_receiver)
    rejected, failed = dockpool_log.records
    assert rejected.name == "dockpool._runtime.reload"
    assert failed.name == "dockpool.signals"
    assert failed.levelno == logging.ERROR
    assert failed.getMessage().startswith("receiver ")
    assert failed.exc_info is not None
    kind, value, traceback = failed.exc_info
    assert kind is ValueError and str(value) == "receiver is broken"
    assert traceback is not None
    text = logging.Formatter().format(failed)
    assert "Traceback (most recent call last)" in text
    assert "in broken_receiver" in text
    assert text.rstrip().endswith("ValueError: receiver is broken")


def test_installing_again_changes_nothing(dockpool_log: Collect) -> None:
    assert logs.install() is False
    assert logs.install() is False
    logger.patch(as_module("dockpool._runtime.executor")).info("once")
    assert [r.getMessage() for r in dockpool_log.records] == ["once"]


def test_other_loguru_records_are_not_forwarded(dockpool_log: Collect) -> None:
    everything = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(everything)
    root.setLevel(logging.DEBUG)
    try:
        logger.info("a record of the test module")
        logger.patch(as_module("dockpoolish.module")).warning("a look-alike package")
        logger.patch(as_module("dockpool_openhands.sandbox_service")).warning("the plugin's")
    finally:
        root.removeHandler(everything)
        root.setLevel(old_level)
    assert [r.getMessage() for r in everything.records] == ["the plugin's"]
    assert dockpool_log.records == []


def test_loguru_levels_map_to_stdlib_levels(dockpool_log: Collect) -> None:
    assert logs.stdlib_level(5) == (5, "TRACE")
    assert logs.stdlib_level(10) == (logging.DEBUG, "DEBUG")
    assert logs.stdlib_level(25) == (logging.INFO, "INFO")  # SUCCESS
    assert logs.stdlib_level(35) == (logging.WARNING, "WARNING")  # a custom level
    assert logs.stdlib_level(50) == (logging.CRITICAL, "CRITICAL")
    as_dockpool = logger.patch(as_module("dockpool._runtime.pool"))
    as_dockpool.trace("not at DEBUG")
    as_dockpool.success("a success")
    logging.getLogger("dockpool").setLevel(logs.TRACE)
    as_dockpool.trace("at TRACE")
    got = [(r.levelno, r.levelname, r.getMessage()) for r in dockpool_log.records]
    assert got == [(logging.INFO, "INFO", "a success"), (logs.TRACE, "TRACE", "at TRACE")]


def test_a_handler_that_logs_to_loguru_does_not_loop(
    dockpool_log: Collect, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host may also send stdlib records to loguru (e.g. an intercepting handler): what it
    logs while a record is being forwarded is not forwarded again (nor does loguru report a
    re-entered handler)."""

    class Echo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logger.patch(as_module("dockpool.echo")).info(f"echo of {record.getMessage()}")

    echo = Echo()
    logging.getLogger("dockpool").addHandler(echo)
    try:
        logger.patch(as_module("dockpool.signals")).info("first")
    finally:
        logging.getLogger("dockpool").removeHandler(echo)
    assert [r.getMessage() for r in dockpool_log.records] == ["first"]
    assert "Logging error" not in capsys.readouterr().err


def test_level_names() -> None:
    assert logs.level_from("debug") == logging.DEBUG
    assert logs.level_from(" WARNING ") == logging.WARNING
    assert logs.level_from("trace") == logs.TRACE
    assert logs.level_from("15") == 15
    assert logs.level_from("loud") is None


# -- a fresh host ----------------------------------------------------------------------------

HOST = """
import logging, sys, threading
from loguru import logger
from dockpool import ConfigError
from dockpool._runtime import reload
from dockpool_openhands import logs

handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("stdlib %(name)s %(levelname)s %(message)s"))
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.{root_level})
watcher = reload.watcher("config.toml", lambda config: None, object(), "tlogs")
"""


def run_host(script: str, root_level: str = "INFO", **env: str) -> tuple[str, str]:
    """Run a host process (this interpreter, this PYTHONPATH); its stdout (stdlib logging)
    and stderr (loguru's default handler)."""
    code = textwrap.dedent(HOST.format(root_level=root_level)) + textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def test_a_host_with_loguru_s_default_handler_sees_each_record_once() -> None:
    out, err = run_host("""
        logger.info("a record of another loguru user")
        installs = []
        def install(): installs.append(logs.install())
        threads = [threading.Thread(target=install) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print("installed", sorted(installs))
        watcher.on_error(ConfigError("the config is broken"))
        logger.info("another record of another loguru user")
    """)
    assert "installed [False, False, False, False, False, False, False, True]" in out
    line = "stdlib dockpool._runtime.reload ERROR the config is broken (the pool keeps"
    assert out.count(line) == 1
    assert "the config is broken" not in err  # not also through loguru's stderr handler
    assert err.count("a record of another loguru user") == 1
    assert err.count("another record of another loguru user") == 1  # still reaches stderr


def test_a_host_that_configured_loguru_keeps_its_handlers() -> None:
    out, err = run_host("""
        logger.remove()
        logger.add(sys.stderr, format="host-sink {name} {message}")
        logs.install()
        watcher.on_error(ConfigError("the config is broken"))
        logger.info("its own record")
    """)
    assert out.count("stdlib dockpool._runtime.reload ERROR the config is broken") == 1
    assert "host-sink __main__ its own record" in err
    # the host's own handler hears dockpool's records too, as any loguru record of the process
    assert "host-sink dockpool._runtime.reload the config is broken" in err


def test_the_first_pool_installs_it_and_the_plugin_logs_to_stdlib() -> None:
    out, _ = run_host(
        """
        from dockpool_openhands.registry import PoolRegistry, PoolSettings
        print("before", logs._installed)
        from dockpool import ContainerSpec
        spec = ContainerSpec(image="dockpool-test:none")
        assert PoolRegistry().pool_for(spec, PoolSettings()) is None
        print("after", logs._installed)
        """,
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )
    assert "before False" in out and "after True" in out
    assert "stdlib dockpool_openhands.registry WARNING no pool for dockpool-test:none" in out


def test_the_environment_variable_sets_dockpool_s_level() -> None:
    script = """
        logs.install()
        logger.patch(lambda r: r.update(name="dockpool._runtime.peers")).info("an info record")
        print("level", logging.getLevelName(logging.getLogger("dockpool_openhands").level))
    """
    # the root at ERROR, as OpenHands 0.62 leaves it when no app server runs
    out, _ = run_host(script, root_level="ERROR")
    assert "an info record" not in out
    out, _ = run_host(script, root_level="ERROR", DOCKPOOL_LOG_LEVEL="info")
    assert "stdlib dockpool._runtime.peers INFO an info record" in out
    assert "level INFO" in out
    out, _ = run_host(script, root_level="WARNING", DOCKPOOL_LOG_LEVEL="loud")
    assert "stdlib dockpool_openhands.logs WARNING DOCKPOOL_LOG_LEVEL='loud' is not" in out
    assert "an info record" not in out and "level NOTSET" in out
