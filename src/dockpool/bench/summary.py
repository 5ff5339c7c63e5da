"""What `dockpool bench` prints last and saves: the comparison table, the JSON document.

An `ImageRun` holds one image's results by mode (`pooled`, `cold`, `docker-run`, `burst`,
`member-memory`, `claim-1`, `claim-concurrent`, `replacement`, `idle-cpu`, `manager-rss`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dockpool.bench._harness import Result, percentile
from dockpool.bench.ready import READY
from dockpool.bench.report import result_doc, write_json
from dockpool.bench.targets import Target

QS = (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
ROWS = (  # (label, mode, series)
    ("pooled (claim from a full pool)", "pooled", READY),
    ("cold (dockpool, pool size 0)", "cold", READY),
    ("docker run + poll (no dockpool)", "docker-run", READY),
    ("burst: served from the pool", "burst", "hits: ask -> /ready 200"),
    ("burst: cold fallbacks", "burst", "cold fallbacks: ask -> /ready 200"),
)


@dataclass
class ImageRun:
    target: Target
    results: dict[str, Result] = field(default_factory=dict)
    elapsed: dict[str, float] = field(default_factory=dict)  # seconds per step
    failed: list[str] = field(default_factory=list)

    def series(self, mode: str, name: str) -> list[float]:
        res = self.results.get(mode)
        return [x for x in res.series.get(name, []) if not math.isnan(x)] if res else []


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{1e3 * seconds:.1f}" if seconds < 1 else f"{1e3 * seconds:.0f}"


def ratios(img: ImageRun) -> dict[str, float]:
    """pooled / cold at each quantile (time to /ready 200); empty without both."""
    pooled, cold = img.series("pooled", READY), img.series("cold", READY)
    if not pooled or not cold:
        return {}
    return {name: percentile(pooled, q) / percentile(cold, q) for name, q in QS}


def render_table(images: list[ImageRun], out: TextIO) -> None:
    out.write(
        "== Time to the first ready conversation: ask -> claim/start -> GET /ready 200 (ms)\n"
    )
    head = f"  {'image':<13}{'mode':<34}{'n':>4}" + "".join(f"{q:>10}" for q, _ in QS)
    out.write(head + f"{'hit rate':>17}{'took':>9}\n")
    for img in images:
        for label, mode, name in ROWS:
            samples = img.series(mode, name)
            if mode not in img.results:
                continue
            cells = "".join(f"{_ms(percentile(samples, q)):>10}" for _, q in QS)
            hit = str(img.results[mode].values.get("hit rate", "")) if name == READY else ""
            hit = "-" if mode == "docker-run" else hit
            took = f"{img.elapsed.get(mode, math.nan):.0f} s" if name == READY else ""
            key = img.target.key
            out.write(f"  {key:<13}{label:<34}{len(samples):>4}{cells}{hit:>17}{took:>9}\n")
        r = ratios(img)
        if r:
            parts = ", ".join(f"{q} {v:.3f}" for q, v in r.items())
            out.write(f"  {'':<13}ratio pooled/cold: {parts} (cold is {1 / r['p50']:.0f}x")
            out.write(" slower at p50)\n")
        out.write(_burst_line(img))
    out.write("\n")
    out.write("== Other figures\n")
    for img in images:
        for line in _others(img):
            out.write(f"  {img.target.key:<13}{line}\n")
    out.write("\n")
    out.flush()


def _burst_line(img: ImageRun) -> str:
    res = img.results.get("burst")
    if res is None:
        return ""
    full = res.series.get("pool full again after the burst began", [])
    when = f"{percentile(full, 50):.2f} s (p50 of {len(full)})" if full else "n/a"
    return (
        f"  {'':<13}burst: hit rate {res.values.get('hit rate')}; pool full again {when} "
        "after the burst began\n"
    )


def _others(img: ImageRun) -> list[str]:
    lines = []
    for mode, label, series in (
        ("claim-1", "claim latency, 1 claimer", "claim wall"),
        ("pooled", "claim latency, 1 claimer (claim part of 'pooled')", "claim returned"),
        ("claim-concurrent", "claim latency, concurrent claimers", "claim wall"),
        ("replacement", "replacement after a kill: die -> member_ready", "die -> member_ready"),
    ):
        got = img.series(mode, series)
        if got:
            title = img.results[mode].title.split("] ", 1)[-1]
            extra = f" [{title}]" if mode == "claim-concurrent" else ""
            lines.append(
                f"{label}{extra}: p50 {_ms(percentile(got, 50))} ms, p99 "
                f"{_ms(percentile(got, 99))} ms, max {_ms(max(got))} ms (n={len(got)})"
            )
    idle = img.results.get("idle-cpu")
    if idle is not None and idle.raw.get("seconds"):
        per60 = 60 * idle.raw["process_time"] / idle.raw["seconds"]
        lines.append(f"idle CPU of the pool manager: {per60:.4f} s per 60 s ({idle.title})")
    rss = img.results.get("manager-rss")
    if rss is not None and rss.raw.get("vmrss_kib"):
        lines.append(
            f"RSS of the pool manager (this process): {rss.raw['vmrss_kib'] / 1024:.1f} MiB"
        )
    mem = img.results.get("member-memory")
    if mem is not None and mem.raw.get("median_used_mib") is not None:
        lines.append(
            f"memory per warm member (docker stats): {mem.raw['median_used_mib']:.1f} MiB "
            f"median; {mem.values.get('a full pool holds', '')}"
        )
    took = ", ".join(f"{k} {v:.0f} s" for k, v in img.elapsed.items())
    lines.append(f"time per step: {took}")
    lines += [f"note: {n}" for n in img.target.notes]
    lines += [f"FAILED: {f}" for f in img.failed]
    return lines


def document(meta: dict[str, Any], images: list[ImageRun]) -> dict[str, Any]:
    """The JSON document: for each image and mode, every sample in seconds, and the rest."""
    return {
        "meta": meta,
        "images": {
            img.target.key: {
                "image": img.target.image,
                "health_check": img.target.health,
                "sizes": dataclasses.asdict(img.target.sizes),
                "elapsed_seconds": img.elapsed,
                "ratio_pooled_over_cold": ratios(img),
                "failed": img.failed,
                "notes": list(img.target.notes),
                "modes": {mode: result_doc(res) for mode, res in img.results.items()},
            }
            for img in images
        },
    }


def save(meta: dict[str, object], images: list[ImageRun], js: str, png: str | None) -> None:
    """Write every sample to `js` (JSON) and, with matplotlib, the plot to `png`."""
    Path(js).parent.mkdir(parents=True, exist_ok=True)
    write_json(document(meta, images), js)
    print(f"every sample (seconds): {_show(js)}")
    if png is None:
        return
    from dockpool.bench import plot  # it imports this module

    why = plot.matplotlib_missing()
    if why:
        print(f"plot skipped: {why}")
        return
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    sub = f"{platform.node()}: {len(os.sched_getaffinity(0))} CPUs, load average {load}; {time.strftime('%Y-%m-%d %H:%M')}"  # fmt: skip
    plot.write(png, images, sub)
    print(f"plot: {_show(png)}")


def _show(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)
