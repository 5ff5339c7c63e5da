"""Printing the figures (a plain table on stdout) and saving the raw samples (JSON)."""

from __future__ import annotations

import json
import math
from typing import Any, TextIO

from dockpool.bench._harness import Result, summary

_COLS = ("n", "p50", "p95", "p99", "max")


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{1e3 * value:9.1f}"


def render_header(meta: dict[str, Any], out: TextIO, title: str = "dockpool pool metrics") -> None:
    out.write(f"{title}\n")
    for key, value in meta.items():
        out.write(f"  {key:<22} {value}\n")
    out.write("\n")
    out.flush()


def render(result: Result, out: TextIO) -> None:
    out.write(f"== {result.title}\n")
    if result.series:
        width = max(len(k) for k in result.series) + 2
        out.write(f"  {'':<{width}}{'n':>5}" + "".join(f"{c + ' ms':>10}" for c in _COLS[1:]))
        out.write("\n")
        for label, samples in result.series.items():
            s = summary(samples)
            cells = "".join(f" {_ms(s[c])}" for c in _COLS[1:])
            out.write(f"  {label:<{width}}{len(samples):>5}{cells}\n")
    for key, value in result.values.items():
        out.write(f"  {key}: {value}\n")
    for note in result.notes:
        out.write(f"  ! {note}\n")
    out.write("\n")
    out.flush()


def result_doc(r: Result) -> dict[str, Any]:
    """One result as JSON-able data: every series' samples (seconds) and their summaries."""
    return {
        "title": r.title,
        "summaries_seconds": {k: summary(v) for k, v in r.series.items()},
        "samples_seconds": r.series,
        "values": r.values,
        "notes": r.notes,
        "raw": r.raw,
    }


def to_json(meta: dict[str, Any], results: list[Result], path: str) -> None:
    write_json({"meta": meta, "results": [result_doc(r) for r in results]}, path)


def write_json(doc: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(_finite(doc), f, indent=1, default=str)
        f.write("\n")


def _finite(value: Any) -> Any:
    """JSON has no NaN: missing figures become null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
