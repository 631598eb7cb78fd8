"""PNG plots of evaluation results: score against training step, spread across templates.

Each PNG also carries the plotted numbers as JSON in a PNG text chunk
(`flanjax-series`), so a reader (or a test) can check what a figure shows
without parsing pixels.
"""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt

SERIES_KEY = "flanjax-series"


def curves(results: list[dict], level: str) -> dict[str, list[list[float]]]:
    """{name: [[step, score], ...]} for every cluster or task across checkpoints."""
    out: dict[str, list[list[float]]] = {}
    for r in results:
        for name, v in r[level].items():
            out.setdefault(name, []).append([r["step"], round(v["mean"], 4)])
    return out


def spread(result: dict) -> dict[str, list[float]]:
    """{task: [template scores]} at one checkpoint."""
    return {
        t: [round(x["score"], 4) for x in v["templates"].values()]
        for t, v in result["tasks"].items()
    }


def _save(fig, path: str, series: dict) -> str:
    fig.tight_layout()
    fig.savefig(
        path, format="png", dpi=100, metadata={SERIES_KEY: json.dumps(series, sort_keys=True)}
    )
    plt.close(fig)
    return path


def plot_curves(results: list[dict], level: str, title: str, path: str) -> str:
    series = curves(results, level)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in sorted(series.items()):
        steps, scores = zip(*points, strict=True)
        ax.plot(steps, scores, marker="o", label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("score (mean over templates)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path, series)


def plot_spread(result: dict, path: str) -> str:
    series = spread(result)
    names = sorted(series)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    ax.boxplot([series[n] for n in names], vert=False, tick_labels=names)
    for i, n in enumerate(names, start=1):
        ax.scatter(series[n], [i] * len(series[n]), s=12, color="black", zorder=3)
    ax.set_xlabel("score per template")
    ax.set_title(f"Spread across templates at step {result['step']}")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path, series)


def write_plots(results: list[dict], out_dir: str) -> list[str]:
    """clusters.png, tasks.png (score against step) and spread.png (latest step)."""
    if not results:
        return []
    os.makedirs(out_dir, exist_ok=True)
    mixture = results[-1]["mixture"]
    return [
        plot_curves(
            results, "clusters", f"{mixture}: clusters", os.path.join(out_dir, "clusters.png")
        ),
        plot_curves(results, "tasks", f"{mixture}: tasks", os.path.join(out_dir, "tasks.png")),
        plot_spread(results[-1], os.path.join(out_dir, "spread.png")),
    ]
