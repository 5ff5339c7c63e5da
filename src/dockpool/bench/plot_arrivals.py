"""The PNG of `dockpool bench --arrivals` (matplotlib, the `dockpool[bench]` extra).

One row per engine, one group of bars per arrival pattern (each Poisson rate, the burst), fixed
size against self-sizing: the hit rate, the time to ready at p95 (log scale; the p50 as a
tick), and the cost: unclaimed containers held on average.
"""

from __future__ import annotations

import os
import platform
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockpool.bench.arrivals import Phase

COLORS = {"fixed": "#5b6c8f", "self-sizing": "#2a9d3a"}


def write(path: str, phases: list[Phase]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = list(dict.fromkeys(p.engine for p in phases))
    fig, axes = plt.subplots(len(engines), 3, figsize=(15, 4.2 * len(engines)), squeeze=False)
    for row, engine in zip(axes, engines, strict=True):
        mine = [p.summary() for p in phases if p.engine == engine]
        patterns = list(dict.fromkeys(s["arrivals"] for s in mine))
        _panel(row[0], mine, patterns, "hit_rate", "hit rate", scale=100.0, unit="%")
        _panel(row[1], mine, patterns, "p95", "time to ready p95 (s)", log=True)
        _panel(row[2], mine, patterns, "held_mean", "unclaimed containers held, mean")
        row[0].set_ylabel(engine, fontsize=9)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    fig.suptitle(
        "dockpool bench --arrivals: fixed size against self-sizing\n"
        f"{platform.node()}: {len(os.sched_getaffinity(0))} CPUs, load average {load}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel(ax: Any, rows: list[dict[str, Any]], patterns: list[str], key: str, title: str, *,
           scale: float = 1.0, unit: str = "", log: bool = False) -> None:  # fmt: skip
    width = 0.38
    for k, mode in enumerate(("fixed", "self-sizing")):
        xs, ys = [], []
        for i, pattern in enumerate(patterns):
            found = [r for r in rows if r["arrivals"] == pattern and r["mode"] == mode]
            if found:
                xs.append(i + (k - 0.5) * width)
                ys.append(scale * found[0][key])
        ax.bar(xs, ys, width, label=mode, color=COLORS[mode])
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:.3g}{unit}", (x, y), ha="center", va="bottom", fontsize=7)
        if key == "p95":
            p50 = [r["p50"] for p in patterns for r in rows
                   if r["arrivals"] == p and r["mode"] == mode]  # fmt: skip
            ax.scatter(xs, p50, marker="_", s=200, color="black", zorder=3)
    ax.set_xticks(range(len(patterns)), patterns, fontsize=8)
    ax.set_title(title + ("  (bar p95, tick p50)" if key == "p95" else ""), fontsize=9)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
