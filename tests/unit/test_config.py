"""Reading config.toml: the example file, and one clear ConfigError for each kind of bad input."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from dockpool._core.config import PoolConfig
from dockpool._core.errors import ConfigError
from dockpool._core.spec import ContainerSpec, HealthCheck, Readiness, WarmUpRequest

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
[sandbox]
container_pool_size = 3

[dockpool]
name = "t"
image = "img:1"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_example_config_parses() -> None:
    """The documented top-level config.toml is a valid, complete example."""
    cfg = PoolConfig.from_toml(ROOT / "config.toml")
    assert cfg.size == 2
    assert cfg.name == "demo"
    assert cfg.spec.image == "dockpool-stub:latest"
    assert cfg.spec.ports == (8000,)
    assert cfg.spec.healthcheck == HealthCheck(
        test=["CMD", "stub-check"],
        interval=120,
        timeout=1.0,
        retries=2,
        start_period=30,
        start_interval=0.1,
    )
    assert cfg.spec.readiness == Readiness(port=8000, path="/ready", interval=0.05, timeout=1.0)
    assert cfg.path == ROOT / "config.toml"


READINESS = MINIMAL + "ports = [8000]\n\n[dockpool.readiness]\n"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('path = "/ready"', r"\[dockpool.readiness\] port.*missing"),
        ("port = 9000", r"\[dockpool\] readiness.*readiness port 9000 is not one of ports"),
        ('port = "8000"', r"\[dockpool.readiness\] port.*expected an int"),
        ('port = 8000\npath = "ready"', r"\[dockpool.readiness\] path.*must start with /"),
        ("port = 8000\ninterval = 0", r"\[dockpool.readiness\] interval.*must be > 0"),
        ("port = 8000\nperiod = 1", r"\[dockpool.readiness\].*period"),
        ('port = 8000\nhost = "http://x"', r"\[dockpool.readiness\] host.*not a host name"),
        ("port = 8000\nhost = 1", r"\[dockpool.readiness\] host.*expected a str"),
        ('port = 8000\nwarmup = "/x"', r"\[dockpool.readiness\] warmup.*array of tables"),
        (
            'port = 8000\n[[dockpool.readiness.warmup]]\nmethod = "POST"',
            r"\[dockpool.readiness.warmup\] path.*missing",
        ),
        (
            'port = 8000\n[[dockpool.readiness.warmup]]\npath = "/w"\nmethod = "FETCH"',
            r"\[dockpool.readiness.warmup\] method.*not one of",
        ),
        (
            'port = 8000\n[[dockpool.readiness.warmup]]\npath = "/w"\nbody = "{no"',
            r"\[dockpool.readiness.warmup\] body.*not JSON",
        ),
        (
            'port = 8000\n[[dockpool.readiness.warmup]]\npath = "/w"\nheaders = 1',
            r"\[dockpool.readiness.warmup\].*headers",
        ),
    ],
)
def test_bad_readiness_is_one_clear_error(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PoolConfig.from_toml(_write(tmp_path, READINESS + table + "\n"))


def test_readiness_defaults(tmp_path: Path) -> None:
    cfg = PoolConfig.from_toml(_write(tmp_path, READINESS + "port = 8000\n"))
    assert cfg.spec.readiness == Readiness(port=8000, path="/", interval=0.05, timeout=1.0)


def test_readiness_check_at_claim(tmp_path: Path) -> None:
    """A claim-time choice: parsed, checked, and no part of what members are made of."""
    on = PoolConfig.from_toml(_write(tmp_path, READINESS + "port = 8000\ncheck_at_claim = true\n"))
    off = PoolConfig.from_toml(_write(tmp_path, READINESS + "port = 8000\n"))
    assert on.spec.readiness is not None and on.spec.readiness.check_at_claim
    assert off.spec.readiness is not None and not off.spec.readiness.check_at_claim
    assert on.spec.fingerprint() == off.spec.fingerprint()
    assert on.spec.canonical()["readiness"]["check_at_claim"] is True  # (shown by `status`)
    with pytest.raises(ConfigError, match=r"check_at_claim"):
        PoolConfig.from_toml(_write(tmp_path, READINESS + 'port = 8000\ncheck_at_claim = "y"\n'))


def test_readiness_host(tmp_path: Path) -> None:
    text = READINESS + 'port = 8000\nhost = "host.docker.internal"\n'
    readiness = PoolConfig.from_toml(_write(tmp_path, text)).spec.readiness
    assert readiness is not None and readiness.host == "host.docker.internal"


def test_readiness_warm_up(tmp_path: Path) -> None:
    text = READINESS + (
        'port = 8000\nwarmup_timeout = 20\n\n[[dockpool.readiness.warmup]]\npath = "/warm"\n'
        'method = "POST"\nbody = \'{"n": 1}\'\nenv_headers = { X-Key = "API_KEY" }\n\n'
        '[[dockpool.readiness.warmup]]\npath = "/second"\n'
    )
    readiness = PoolConfig.from_toml(_write(tmp_path, text)).spec.readiness
    assert readiness is not None and readiness.warmup_timeout == 20
    assert readiness.warmup == (
        WarmUpRequest("/warm", method="POST", body='{"n": 1}', env_headers={"X-Key": "API_KEY"}),
        WarmUpRequest("/second"),
    )


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    """Only the image is required; everything else has a documented default."""
    cfg = PoolConfig.from_toml(_write(tmp_path, MINIMAL))
    assert cfg == PoolConfig(spec=ContainerSpec(image="img:1"), size=3, name="t")
    assert cfg.max_containers == 16 and cfg.create_concurrency == 2 and cfg.max_age == 0


def test_refill_hold(tmp_path: Path) -> None:
    """`refill_hold` (seconds, default 0) reads as a float."""
    assert PoolConfig.from_toml(_write(tmp_path, MINIMAL)).refill_hold == 0
    assert PoolConfig.from_toml(_write(tmp_path, MINIMAL + "refill_hold = 3\n")).refill_hold == 3.0


def test_size_zero_is_allowed(tmp_path: Path) -> None:
    """Size 0 disables the pool (every claim is a cold start)."""
    text = MINIMAL.replace("= 3", "= 0")
    assert PoolConfig.from_toml(_write(tmp_path, text)).size == 0


BAD = [
    pytest.param("[sandbox\n", r"invalid TOML.*line 1", id="invalid-toml"),
    pytest.param(
        MINIMAL + "colour = 1\n", r"\[dockpool\] colour \(line 7\): unknown key", id="unknown-key"
    ),
    pytest.param(MINIMAL + "[other]\n", r"\[<top level>\] other: unknown key", id="unknown-table"),
    pytest.param(
        MINIMAL.replace("= 3", '= "3"'),
        r"\[sandbox\] container_pool_size \(line 2\): expected an int, got '3'",
        id="size-string",
    ),
    pytest.param(
        MINIMAL.replace("= 3", "= 2.5"),
        r"container_pool_size \(line 2\): expected an int, got 2.5",
        id="size-float",
    ),
    pytest.param(
        MINIMAL.replace("= 3", "= -1"),
        r"container_pool_size \(line 2\): must be >= 0, got -1",
        id="size-negative",
    ),
    pytest.param(
        MINIMAL.replace('image = "img:1"\n', ""), r"\[dockpool\] image: missing", id="no-image"
    ),
    pytest.param(
        MINIMAL.replace('"img:1"', '"  "'), r"image \(line 6\): must not be empty", id="blank-image"
    ),
    pytest.param(
        MINIMAL + "ports = [80, 0]\n", r"ports \(line 7\): port 0 is not in", id="bad-port"
    ),
    pytest.param(
        MINIMAL + 'ports = ["80"]\n', r"ports \(line 7\): expected an int list", id="port-str"
    ),
    pytest.param(
        MINIMAL + "max_containers = 0\n", r"max_containers \(line 7\): must be >= 1", id="cap"
    ),
    pytest.param(
        MINIMAL + "refill_hold = -1\n", r"refill_hold \(line 7\): must be >= 0", id="hold"
    ),
    pytest.param(MINIMAL + 'name = "a b"\n', r"duplicate|Cannot overwrite", id="dup-key"),
    pytest.param(
        MINIMAL.replace('"t"', '"a b"'), r"name \(line 5\): 'a b' is not a valid", id="bad-name"
    ),
    pytest.param(
        MINIMAL + "[dockpool.healthcheck]\ninterval = 1\n",
        r"\[dockpool.healthcheck\] test: missing",
        id="health-no-test",
    ),
    pytest.param(
        MINIMAL + '[dockpool.healthcheck]\ntest = ["CMD", "x"]\nretries = 0\n',
        r"\[dockpool.healthcheck\] retries \(line 9\): healthcheck retries must be >= 1",
        id="health-retries",
    ),
    pytest.param(
        MINIMAL + '[dockpool.healthcheck]\ntest = ["CMD", "x"]\ninteval = 1\n',
        r"\[dockpool.healthcheck\] inteval \(line 9\): unknown key",
        id="health-typo",
    ),
    pytest.param(
        MINIMAL + 'labels = { "dockpool.pool" = "x" }\n',
        r"labels \(line 7\): label 'dockpool.pool' is reserved",
        id="reserved-label",
    ),
    pytest.param("", r"the file is empty", id="empty"),
    pytest.param("[sandbox]\ncontainer_pool_", r"invalid TOML", id="half-written"),
]


@pytest.mark.parametrize(("text", "pattern"), BAD)
def test_bad_config_raises_one_clear_error(tmp_path: Path, text: str, pattern: str) -> None:
    """Each problem raises ConfigError naming the file, the key (and line) and what is wrong."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        PoolConfig.from_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert re.search(pattern, message), message
    assert info.value.__cause__ is None  # no parser traceback chained as the real message


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError, not a FileNotFoundError."""
    with pytest.raises(ConfigError, match=r"nope.toml: file not found"):
        PoolConfig.from_toml(tmp_path / "nope.toml")


def test_config_is_frozen_and_evolvable(tmp_path: Path) -> None:
    """A config is frozen; changed copies come from with_size/attrs.evolve."""
    cfg = PoolConfig.from_toml(_write(tmp_path, MINIMAL))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.size = 5  # type: ignore[misc]
    assert cfg.with_size(5).size == 5 and cfg.size == 3


def test_direct_construction_validates() -> None:
    """Building a PoolConfig in code checks the same limits."""
    with pytest.raises(ConfigError, match="container_pool_size must be >= 0"):
        PoolConfig(spec=ContainerSpec(image="x"), size=-1)
