"""The PNG of `dockpool bench`: pooled against cold, per image (matplotlib: `dockpool[bench]`).

One row per image. Left: every conversation's time from the ask to GET /ready 200 by mode
(dots, box and median; log scale). Right: the first burst: one bar per conversation from its
ask to /ready 200 (claim part darker; green from the pool, red cold), and the pool's ready
members over time, with the moment it was full again.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from dockpool.bench._harness import percentile
from dockpool.bench.summary import ROWS, ImageRun

if TYPE_CHECKING:
    from matplotlib.axes import Axes

HIT, COLD, OTHER = "#2a9d3a", "#d1423f", "#5b6c8f"


def matplotlib_missing() -> str:
    """Why the plot cannot be drawn ("" if it can)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            "matplotlib is not installed (it comes with the `dockpool[bench]` extra: "
            "pip install 'dockpool[bench]', or '.[bench]' in a checkout)"
        )
    return ""


def write(path: str, images: list[ImageRun], subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(images)
    fig, axes = plt.subplots(
        rows, 2, figsize=(15, 5.2 * rows), squeeze=False, gridspec_kw={"width_ratios": [1.1, 1]}
    )
    for (left, right), img in zip(axes, images, strict=True):
        _modes(left, img)
        _burst(right, img)
    fig.suptitle(
        "dockpool: time to the first ready conversation, pooled vs cold\n" + subtitle, fontsize=12
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _modes(ax: Axes, img: ImageRun) -> None:
    from matplotlib.ticker import FuncFormatter

    rng = random.Random(1)
    labels, data = [], []
    for label, mode, name in ROWS:
        samples = img.series(mode, name)
        if samples:
            labels.append(label.replace(" (", "\n("))
            data.append([1e3 * s for s in samples])
    if not data:
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
        return
    ax.boxplot(data, vert=False, widths=0.5, showfliers=False, medianprops={"color": "black"})
    for i, values in enumerate(data, start=1):
        color = HIT if i == 1 or "served" in labels[i - 1] else COLD
        color = OTHER if "docker run" in labels[i - 1] else color
        ys = [i + rng.uniform(-0.18, 0.18) for _ in values]
        ax.scatter(values, ys, s=12, alpha=0.6, color=color, zorder=3)
        p50 = percentile(values, 50)
        ax.annotate(
            f"p50 {_fmt(p50)}", (max(values), i), xytext=(6, 0), textcoords="offset points",
            va="center", fontsize=9,
        )  # fmt: skip
    ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("ask -> GET /ready 200 (ms, log scale)")
    ax.set_title(f"{img.target.key}: {img.target.image}, each dot one conversation", fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    left, right = ax.get_xlim()
    ax.set_xlim(left, right * 4)  # room for the p50 labels


def _fmt(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1e3:.1f} s"


def _burst(ax: Axes, img: ImageRun) -> None:
    res = img.results.get("burst")
    rounds = res.raw.get("rounds", []) if res else []
    if not rounds:
        ax.text(0.5, 0.5, "no burst measured", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    rnd = rounds[0]
    convs = sorted(rnd["conversations"], key=lambda c: (not c["from_pool"], c["total"] or 0))
    for row, c in enumerate(convs, start=1):
        if c["error"]:
            ax.text(c["start"], row, " failed", va="center", color=COLD, fontsize=8)
            continue
        color = HIT if c["from_pool"] else COLD
        ax.plot(c["start"], row, marker="o", markersize=4, color=color)  # short bars stay visible
        ax.barh(row, c["claim"], left=c["start"], height=0.6, color=color)
        ax.barh(row, c["total"] - c["claim"], left=c["start"] + c["claim"], height=0.6,
                color=color, alpha=0.35)  # fmt: skip
        ax.text(c["start"] + c["total"], row, f" {_fmt(1e3 * c['total'])}", va="center", fontsize=8)
    ax.set_yticks(range(1, len(convs) + 1), [f"#{c['index']}" for c in convs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the burst began")
    ax.set_ylabel("conversation (bar: ask -> claim returned -> /ready 200)")
    size = img.target.sizes.burst_pool
    ax.set_title(
        f"burst: {len(convs)} at once, full pool of {size} (green: from the pool, red: cold; "
        "blue: ready members)",
        fontsize=10,
    )
    twin = ax.twinx()
    points = rnd["timeline"]
    end = max([p[0] for p in points] + [c["start"] + c["total"] for c in convs if not c["error"]])
    xs = [p[0] for p in points] + [end]
    ys = [p[1] for p in points] + [points[-1][1] if points else 0]
    twin.step(xs, ys, where="post", color="#1f4e99", linewidth=1.5, alpha=0.8)
    twin.set_ylim(-0.2, max([*ys, size]) + 0.5)
    twin.set_ylabel("ready members in the pool")
    if rnd.get("full_again") is not None:
        twin.axvline(rnd["full_again"], color="black", linestyle=":", linewidth=1)
        twin.annotate(
            f"pool full again at {rnd['full_again']:.2f} s", (rnd["full_again"], size + 0.25),
            xytext=(-4, 0), textcoords="offset points", fontsize=8, ha="right",
        )  # fmt: skip
    ax.set_xlim(0, end * 1.15)
