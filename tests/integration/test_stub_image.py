"""The stand-in runtime image dockpool-stub:latest behaves as the pool's tests expect.

Timings are only bounded loosely (this runs on a loaded 2-core machine); lower bounds are
taken from the engine's own clock (State.StartedAt vs. event timeNano), which load can only
make larger.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.engine_help import http_status

pytestmark = pytest.mark.docker

STUB_PORT = 8000
# A fast health check, as the pool sets at create time (nanoseconds).
FAST_HEALTHCHECK = {
    "test": ["CMD", "stub-check"],
    "interval": int(0.2e9),
    "timeout": int(1e9),
    "retries": 1,
}
WAIT = 30.0  # generous deadline for anything that should take about a second


# --------------------------------------------------------------------------- helpers
def create_stub(
    client: Any,
    image: str,
    run_label: dict[str, str],
    *,
    env: dict[str, str] | None = None,
    healthcheck: dict[str, Any] | None = FAST_HEALTHCHECK,
    publish: bool = False,
) -> Any:
    kwargs: dict[str, Any] = {
        "labels": dict(run_label),
        "environment": env or {},
        "detach": True,
    }
    if healthcheck is not None:
        kwargs["healthcheck"] = healthcheck
    if publish:
        kwargs["ports"] = {f"{STUB_PORT}/tcp": ("127.0.0.1", None)}
    return client.containers.create(image, **kwargs)


def watch(docker_events: Any, container: Any, run_label: dict[str, str]) -> Any:
    """Events of this one container (the label filter keeps to this run's containers)."""
    [(key, value)] = run_label.items()
    return docker_events(
        {"type": "container", "label": f"{key}={value}", "container": container.id},
        since=int(time.time()) - 1,
    )


def host_port(container: Any) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"][f"{STUB_PORT}/tcp"]
    return int(bindings[0]["HostPort"])


def wait_http(port: int, path: str, want: int, timeout: float = WAIT) -> float:
    """Poll until GET path answers `want`; return the seconds it took."""
    t0 = time.monotonic()
    last: int | None = None
    while time.monotonic() - t0 < timeout:
        last = http_status(port, path)
        if last == want:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"GET {path} never answered {want} within {timeout}s (last: {last})")


def stub_ctl(container: Any, *args: str) -> tuple[int, str]:
    rc, out = container.exec_run(["stub-ctl", *args])
    return rc, out.decode("utf-8", "replace").strip()


def docker_time(ts: str) -> float:
    """Engine timestamp like 2026-11-28T17:48:34.536169835Z -> unix seconds (float)."""
    head, _, frac = ts.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def health_status(container: Any) -> str | None:
    container.reload()
    health = container.attrs["State"].get("Health")
    return health["Status"] if health else None


# --------------------------------------------------------------------------- image
def test_image_is_tiny_and_has_baked_healthcheck(docker_client: Any, stub_image: str) -> None:
    image = docker_client.images.get(stub_image)
    assert image.attrs["Size"] < 10 * 1024 * 1024, image.attrs["Size"]
    cfg = image.attrs["Config"]
    assert cfg["Healthcheck"]["Test"] == ["CMD", "stub-check"]
    assert cfg["Healthcheck"]["Interval"] == int(1e9)
    assert cfg["Healthcheck"]["Retries"] == 1
    assert "dockpool.stub.inputs" in (cfg.get("Labels") or {})
    assert "STUB_PORT=8000" in cfg["Env"]


def test_build_script_is_a_noop_when_up_to_date(stub_image: str) -> None:
    proc = subprocess.run(
        ["bash", "scripts/build-stub-image.sh"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert "up to date" in proc.stdout, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- HTTP
def test_alive_ready_and_http_control(
    docker_client: Any, stub_image: str, run_label: dict[str, str]
) -> None:
    c = create_stub(docker_client, stub_image, run_label, publish=True)
    c.start()
    port = host_port(c)
    wait_http(port, "/alive", 200)
    wait_http(port, "/ready", 200)

    assert http_status(port, "/cgi-bin/ctl/unhealthy") == 200
    assert http_status(port, "/ready") == 404
    assert http_status(port, "/alive") == 200  # alive is unaffected
    assert stub_ctl(c, "status") == (0, "unhealthy")

    assert http_status(port, "/cgi-bin/ctl?healthy") == 200
    assert http_status(port, "/ready") == 200
    assert stub_ctl(c, "status") == (0, "ready")

    assert http_status(port, "/cgi-bin/ctl/bogus") == 404
    assert http_status(port, "/cgi-bin/ctl/crash/6") == 200
    assert c.wait(timeout=WAIT)["StatusCode"] == 6


def test_custom_port(docker_client: Any, stub_image: str, run_label: dict[str, str]) -> None:
    c = docker_client.containers.create(
        stub_image,
        labels=dict(run_label),
        environment={"STUB_PORT": "9001"},
        ports={"9001/tcp": ("127.0.0.1", None)},
        healthcheck=FAST_HEALTHCHECK,
    )
    c.start()
    c.reload()
    port = int(c.attrs["NetworkSettings"]["Ports"]["9001/tcp"][0]["HostPort"])
    wait_http(port, "/ready", 200)
    deadline = time.monotonic() + WAIT
    while health_status(c) != "healthy":
        assert time.monotonic() < deadline, "never healthy with STUB_PORT=9001"
        time.sleep(0.1)


# --------------------------------------------------------------------------- health + events
def test_health_events_then_crash_exit_code(
    docker_client: Any, stub_image: str, run_label: dict[str, str], docker_events: Any
) -> None:
    c = create_stub(docker_client, stub_image, run_label)
    events = watch(docker_events, c, run_label)
    t0 = time.monotonic()
    c.start()
    events.wait_action("start", WAIT)
    healthy = events.wait_action("health_status: healthy", WAIT)
    print(f"time to healthy with interval 0.2s: {time.monotonic() - t0:.2f}s (wall, incl. start)")
    assert healthy["Actor"]["Attributes"][next(iter(run_label))] == next(iter(run_label.values()))

    assert stub_ctl(c, "unhealthy") == (0, "marked unhealthy")
    events.wait_action("health_status: unhealthy", WAIT)
    assert health_status(c) == "unhealthy"

    rc, out = stub_ctl(c, "healthy")
    assert rc == 0, out
    events.wait_action("health_status: healthy", WAIT)

    t1 = time.monotonic()
    stub_ctl(c, "crash", "3")  # the exec may race the container's exit; judge by the event
    die = events.wait_action("die", WAIT)
    print(f"crash -> die event: {time.monotonic() - t1:.2f}s")
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    c.reload()
    assert c.attrs["State"]["ExitCode"] == 3


def test_crash_default_code_is_1(
    docker_client: Any, stub_image: str, run_label: dict[str, str], docker_events: Any
) -> None:
    c = create_stub(docker_client, stub_image, run_label, healthcheck=None)
    events = watch(docker_events, c, run_label)
    c.start()
    events.wait_action("start", WAIT)
    stub_ctl(c, "crash")
    die = events.wait_action("die", WAIT)
    assert die["Actor"]["Attributes"]["exitCode"] == "1"


def test_ready_delay(
    docker_client: Any, stub_image: str, run_label: dict[str, str], docker_events: Any
) -> None:
    delay = 1.5
    c = create_stub(docker_client, stub_image, run_label, env={"STUB_READY_DELAY": str(delay)})
    events = watch(docker_events, c, run_label)
    c.start()
    healthy = events.wait_action("health_status: healthy", WAIT)
    c.reload()
    started = docker_time(c.attrs["State"]["StartedAt"])
    after = healthy["timeNano"] / 1e9 - started
    print(f"STUB_READY_DELAY={delay}: healthy {after:.2f}s after StartedAt")
    # Not healthy before the delay (small slack for clock rounding), healthy some time after.
    assert after >= delay - 0.1, after
    # Every check before that must have failed: the health log has no success before `delay`.
    for entry in c.attrs["State"]["Health"]["Log"]:
        if entry["ExitCode"] == 0:
            assert docker_time(entry["End"]) - started >= delay - 0.1, entry


def test_cmd_shell_healthcheck(
    docker_client: Any, stub_image: str, run_label: dict[str, str], docker_events: Any
) -> None:
    hc = dict(FAST_HEALTHCHECK, test=["CMD-SHELL", "stub-check"])
    c = create_stub(docker_client, stub_image, run_label, healthcheck=hc)
    events = watch(docker_events, c, run_label)
    c.start()
    events.wait_action("health_status: healthy", WAIT)
    stub_ctl(c, "unhealthy")
    events.wait_action("health_status: unhealthy", WAIT)


def test_baked_in_healthcheck(
    docker_client: Any, stub_image: str, run_label: dict[str, str], docker_events: Any
) -> None:
    c = create_stub(docker_client, stub_image, run_label, healthcheck=None)
    events = watch(docker_events, c, run_label)
    c.start()
    events.wait_action("health_status: healthy", WAIT)


def test_exit_after(
    docker_client: Any, stub_image: str, run_label: dict[str, str], docker_events: Any
) -> None:
    c = create_stub(
        docker_client,
        stub_image,
        run_label,
        env={"STUB_EXIT_AFTER": "1", "STUB_EXIT_CODE": "4", "STUB_READY_DELAY": "60"},
    )
    events = watch(docker_events, c, run_label)
    c.start()
    die = events.wait_action("die", WAIT)
    assert die["Actor"]["Attributes"]["exitCode"] == "4"
    c.reload()
    state = c.attrs["State"]
    ran = docker_time(state["FinishedAt"]) - docker_time(state["StartedAt"])
    assert ran >= 0.9, ran
    # It died before ever being ready.
    assert not any(e.get("Action") == "health_status: healthy" for e in events.events), (
        events.events
    )


def test_docker_stop_is_fast(
    docker_client: Any, stub_image: str, run_label: dict[str, str], docker_events: Any
) -> None:
    c = create_stub(docker_client, stub_image, run_label)
    events = watch(docker_events, c, run_label)
    c.start()
    events.wait_action("health_status: healthy", WAIT)
    t0 = time.monotonic()
    c.stop(timeout=10)
    took = time.monotonic() - t0
    print(f"docker stop took {took:.2f}s")
    assert took < 3.0, took
    die = events.wait_action("die", WAIT)
    assert die["Actor"]["Attributes"]["exitCode"] == "0"  # SIGTERM -> exit 0, not a SIGKILL


def test_force_remove_is_fast(
    docker_client: Any, stub_image: str, run_label: dict[str, str]
) -> None:
    c = create_stub(docker_client, stub_image, run_label)
    c.start()
    t0 = time.monotonic()
    c.remove(force=True, v=True)
    assert time.monotonic() - t0 < 3.0


def test_stub_ctl_usage_errors(
    docker_client: Any, stub_image: str, run_label: dict[str, str]
) -> None:
    c = create_stub(docker_client, stub_image, run_label)
    c.start()
    assert stub_ctl(c, "bogus")[0] == 2
    assert stub_ctl(c, "crash", "x")[0] == 2
    c.reload()
    assert c.status == "running"
