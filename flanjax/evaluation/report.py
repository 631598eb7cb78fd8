"""Markdown report over every evaluated checkpoint of a MODEL_DIR.

Columns are checkpoints (step 0 is the initial, not instruction-tuned, model:
the baseline), plus the gain of the newest over the oldest. Rows: clusters
(mean over their tasks), tasks (mean over templates, with std/min/max across
templates, the robustness figures T0-style papers report) and templates.
"""

from __future__ import annotations

import glob
import json
import os
import re

from flanjax.evaluation import plots
from flanjax.evaluation.evaluator import eval_dir


def load_results(model_dir: str, mixture: str) -> list[dict]:
    """Every MODEL_DIR/eval/<mixture>/step_<N>.json, by step."""
    paths = glob.glob(os.path.join(eval_dir(model_dir, mixture), "step_*.json"))
    results = []
    for p in paths:
        if re.fullmatch(r"step_\d+\.json", os.path.basename(p)):
            with open(p) as f:
                results.append(json.load(f))
    return sorted(results, key=lambda r: r["step"])


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _gain_cols(values: list[float]) -> list[str]:
    cells = [f"{v:.1f}" for v in values]
    if len(values) > 1:
        cells.append(f"{values[-1] - values[0]:+.1f}")
    return cells


def render(results: list[dict], plots: list[str] = ()) -> str:
    if not results:
        return "No evaluation results yet."
    steps = [r["step"] for r in results]
    head = [f"step {s}" for s in steps] + (["gain"] if len(steps) > 1 else [])
    last = results[-1]
    parts = [f"# Held-out evaluation: {last['mixture']} ({last['split']})", "", "## Clusters", ""]
    rows = [[c, *_gain_cols([r["clusters"][c]["mean"] for r in results])] for c in last["clusters"]]
    parts += [_table(["cluster", *head], rows), "", "## Tasks (mean over templates)", ""]
    rows = [[t, *_gain_cols([r["tasks"][t]["mean"] for r in results])] for t in last["tasks"]]
    parts += [
        _table(["task", *head], rows),
        "",
        f"## Spread across templates, step {steps[-1]}",
        "",
    ]
    rows = [
        [t, f"{v['mean']:.1f}", f"{v['std']:.1f}", f"{v['min']:.1f}", f"{v['max']:.1f}"]
        for t, v in last["tasks"].items()
    ]
    parts += [_table(["task", "mean", "std", "min", "max"], rows), "", "## Templates", ""]
    rows = []
    for t, v in last["tasks"].items():
        for tid, tv in v["templates"].items():
            scores = [r["tasks"][t]["templates"][tid]["score"] for r in results]
            rows.append([f"{t}/{tid}", tv["metric"], *_gain_cols(scores)])
    parts.append(_table(["template", "metric", *head], rows))
    if plots:
        parts += ["", "## Plots", ""] + [
            f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots
        ]
    return "\n".join(parts) + "\n"


def write_report(model_dir: str, mixture: str) -> tuple[str, str]:
    """Writes MODEL_DIR/eval/<mixture>/report.md and its PNG plots; returns (path, markdown)."""
    results = load_results(model_dir, mixture)
    text = render(results, plots.write_plots(results, eval_dir(model_dir, mixture)))
    os.makedirs(eval_dir(model_dir, mixture), exist_ok=True)
    path = os.path.join(eval_dir(model_dir, mixture), "report.md")
    with open(path, "w") as f:
        f.write(text)
    return path, text
