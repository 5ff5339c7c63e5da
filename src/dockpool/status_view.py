"""`dockpool status`: a pool as a terminal table (rich), refreshed in place, or as JSON.

Two sources (see `dockpool._runtime.status`): a running pool process's `/status` (its
`[dockpool.metrics] address`), or, with no process to ask, the engine alone.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dockpool._adapters.docker_api import DockerAdapter
from dockpool._core.errors import DockpoolError
from dockpool._runtime.status import engine_status

Fetch = Callable[[], dict[str, Any]]


class StatusUnavailable(DockpoolError):
    """Neither the pool process nor the engine could be read."""


def from_process(url: str, timeout: float = 2.0) -> Fetch:
    """Read `url` (a pool process's /status) at each call."""

    def fetch() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                data: dict[str, Any] = json.loads(answer.read())
                return data
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise StatusUnavailable(f"{url}: {exc}") from None

    return fetch


def from_engine(docker_url: str | None, pool: str | None) -> Fetch:
    """Read the engine's labelled containers at each call (one list request)."""
    api = DockerAdapter(docker_url, timeout=10.0)
    return lambda: engine_status(api, pool)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _process_view(s: dict[str, Any]) -> RenderableType:
    size = s["size"]
    claims = s["claims"]
    rate = "-" if s["hit_rate"] is None else f"{s['hit_rate']:.0%}"
    role = "upkeep leader" if s["leader"] else "follower"
    head = Text.assemble(
        (f"pool {s['pool']}", "bold"),
        f"  {s['image']}  pid {s['pid']} ({role})  ",
        ("DEGRADED " if s["degraded"] else "", "bold red"),
        f"\ntarget {size['target']} (floor {size['floor']}, max_pool_size "
        f"{size['max_pool_size'] or '-'}, max_containers {size['max_containers']})  "
        + "  ".join(f"{k} {v}" for k, v in s["counts"].items() if v),
        f"\nclaims: {claims['hit']} hit, {claims['cold']} cold, {claims['failed']} failed; "
        f"hit rate {rate}",
    )
    members = Table(title="members", title_justify="left", expand=False)
    members.add_column("name", no_wrap=True)
    for column in ("id", "state", "health", "age", "spec"):
        members.add_column(column)
    for m in s["members"]:
        spec = m["spec"][:12] + ("" if m["current_spec"] else " (old)")
        members.add_row(m["name"], m["id"], m["state"], m["health"], _age(m["age"]), spec)
    latency = Table(title="claim latency", title_justify="left")
    latency.add_column("<=")
    for outcome in ("hit", "cold"):
        latency.add_column(outcome, justify="right")
    lat = s["latency"]
    for i, bound in enumerate([*lat["buckets"], None]):
        row = [lat[o]["counts"][i] for o in ("hit", "cold")]
        if any(row):
            latency.add_row("+Inf" if bound is None else _ms(bound), *map(str, row))
    latency.add_row("p50 / p99", *(f"{_ms(lat[o]['p50'])} / {_ms(lat[o]['p99'])}"
                                   for o in ("hit", "cold")))  # fmt: skip
    events = Table(title="recent events", title_justify="left")
    for column in ("time", "signal", "who", "detail"):
        events.add_column(column)
    for e in s["events"][-10:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(e["at"]))
        events.add_row(stamp, e["signal"], e["who"], e["detail"])
    parts: list[RenderableType] = [head, members, latency, events]
    if s["failures"]:
        last = s["failures"][-1]
        parts.append(Text(f"last failure: {last['signal']} {last['who']} {last['detail']}",
                          style="red"))  # fmt: skip
    return Group(*parts)


def _engine_view(s: dict[str, Any]) -> RenderableType:
    if not s["pools"]:
        return Text("no dockpool containers on this engine")
    parts: list[RenderableType] = [Text("from the engine alone (no pool process answered)")]
    for p in s["pools"]:
        table = Table(
            title=f"pool {p['pool']}: {len(p['members'])} unclaimed, {len(p['claimed'])} "
            f"claimed, {p['processes']} process(es){', a leader' if p['leader'] else ''}",
            title_justify="left",
        )
        table.add_column("name", no_wrap=True)
        for column in ("id", "kind", "status", "health", "age"):
            table.add_column(column)
        for kind in ("members", "claimed"):
            for row in p[kind]:
                label = "member" if kind == "members" else "claimed"
                table.add_row(row["name"], row["id"], label, row["status"], row["health"],
                              _age(row["age"]))  # fmt: skip
        parts.append(table)
    return Group(*parts)


def pick_source(
    url: str | None, config_url: str | None, engine: bool, docker_url: str | None, pool: str | None
) -> tuple[Fetch, str]:
    """The source to read, and a line saying which: `url`, else the config's metrics address
    if a process answers there, else (or with `engine`) the engine alone."""
    if url is not None:
        url = url if url.rstrip("/").endswith("/status") else url.rstrip("/") + "/status"
        return from_process(url), f"pool process at {url}"
    if config_url is not None and not engine:
        fetch = from_process(config_url)
        try:
            fetch()
            return fetch, f"pool process at {config_url}"
        except StatusUnavailable:
            pass
    where = docker_url or "the default engine"
    return from_engine(docker_url, pool), f"{where} (labels, names and health only)"


def render(status: dict[str, Any]) -> RenderableType:
    """The view of one status document (of either source)."""
    return _engine_view(status) if status.get("source") == "engine" else _process_view(status)


def show(fetch: Fetch, console: Console, *, once: bool, as_json: bool, interval: float) -> int:
    """Print one frame (`once`), or refresh in place until Ctrl-C; JSON lines with `as_json`."""
    if as_json:
        while True:
            print(json.dumps(fetch()), flush=True)
            if once:
                return 0
            time.sleep(interval)
    if once:
        console.print(render(fetch()))
        return 0
    try:
        with Live(render(fetch()), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(interval)
                try:
                    live.update(render(fetch()))
                except StatusUnavailable as exc:
                    live.update(Text(f"unavailable: {exc}", style="red"))
    except KeyboardInterrupt:
        return 0
