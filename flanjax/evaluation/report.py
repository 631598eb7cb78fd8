"""Markdown report over every evaluated checkpoint of a MODEL_DIR.

Columns are the baseline (the initial, not instruction-tuned, checkpoint named by
`EvalConfig.baseline_checkpoint_path`, when evaluated), then the checkpoints, then
the gain of the newest over the baseline (over the oldest checkpoint when there is
no baseline: step 0 of a run that saved its initial state). Rows: clusters (mean
over their tasks), tasks (mean over templates) and templates, zero-shot. The
newest checkpoint's zero-shot and few-shot scores are shown side by side, and
its spread across templates (std, min and max: the robustness figures T0-style
papers report).
"""

from __future__ import annotations

import glob
import json
import os
import re

from flanjax.evaluation import aggregate, plots
from flanjax.evaluation.evaluator import BASELINE, eval_dir, results_path


def load_results(model_dir: str, mixture: str) -> list[dict]:
    """Every MODEL_DIR/eval/<mixture>/step_<N>.json, by step."""
    paths = glob.glob(os.path.join(eval_dir(model_dir, mixture), "step_*.json"))
    results = []
    for p in paths:
        if re.fullmatch(r"step_\d+\.json", os.path.basename(p)):
            with open(p) as f:
                results.append(json.load(f))
    return sorted(results, key=lambda r: r["step"])


def load_baseline(model_dir: str, mixture: str) -> dict | None:
    """MODEL_DIR/eval/<mixture>/baseline.json, if the baseline was evaluated."""
    path = results_path(model_dir, mixture, BASELINE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _gain_cols(values: list[float | None]) -> list[str]:
    """The values, then newest minus first when there are two or more columns."""
    cells = [_fmt(v) for v in values]
    if len(values) > 1:
        first, last = values[0], values[-1]
        cells.append("-" if first is None or last is None else f"{last - first:+.1f}")
    return cells


def _score(result: dict, level: str, name: str, template: str | None = None) -> float | None:
    entry = result.get(level, {}).get(name)
    if entry is None or template is None:
        return None if entry is None else entry["mean"]
    t = entry["templates"].get(template)
    return None if t is None else t["score"]


def _columns(results: list[dict], baseline: dict | None) -> tuple[list[str], list[dict]]:
    cols = ([baseline] if baseline else []) + results
    head = (["baseline"] if baseline else []) + [f"step {r['step']}" for r in results]
    return head + (["gain"] if len(cols) > 1 else []), cols


def _header(last: dict, results: list[dict], baseline: dict | None) -> list[str]:
    parts = [f"# Held-out evaluation: {last['mixture']} ({last['split']})", ""]
    if baseline:
        parts.append(
            f"Baseline: {baseline.get('baseline', '?')} (step {baseline['step']}), the initial "
            "checkpoint; **gain** is the newest checkpoint's score minus the baseline's."
        )
    elif len(results) > 1:
        parts.append(
            f"No baseline evaluated (EvalConfig.baseline_checkpoint_path); **gain** is over "
            f"step {results[0]['step']}."
        )
    return parts + ["", "Scores are zero-shot unless marked k-shot.", ""]


def _side_by_side(last: dict) -> list[str]:
    """Zero-shot and few-shot columns of the newest checkpoint."""
    ks = sorted(last.get("few_shot", {}), key=int)
    if not ks:
        return []
    head = ["0-shot", *[f"{k}-shot" for k in ks]]
    parts = [f"## Zero-shot and few-shot, step {last['step']}", ""]
    for level in ("clusters", "tasks"):
        rows = []
        for name in last[level]:
            row = aggregate.side_by_side(last, level, name)
            rows.append([name, *[_fmt(row.get(k)) for k in ("0", *ks)]])
        parts += [_table([level[:-1], *head], rows), ""]
    return parts


def _spread(last: dict) -> list[str]:
    settings = [("0", last)] + sorted(last.get("few_shot", {}).items(), key=lambda kv: int(kv[0]))
    rows = [
        [t, v.get("split", "-"), f"{k}-shot", *[_fmt(v[s]) for s in ("mean", "std", "min", "max")]]
        for k, setting in settings
        for t, v in setting["tasks"].items()
    ]
    head = ["task", "split", "shots", "mean", "std", "min", "max"]
    return [f"## Spread across templates, step {last['step']}", "", _table(head, rows), ""]


def render(results: list[dict], plots: list[str] = (), baseline: dict | None = None) -> str:
    if not results:
        return "No evaluation results yet."
    last = results[-1]
    head, cols = _columns(results, baseline)
    parts = _header(last, results, baseline) + ["## Clusters", ""]
    rows = [[c, *_gain_cols([_score(r, "clusters", c) for r in cols])] for c in last["clusters"]]
    if len(last["clusters"]) > 1 and last.get("overall"):  # every task once
        rows.append(["all tasks", *_gain_cols([r.get("overall", {}).get("mean") for r in cols])])
    parts += [_table(["cluster", *head], rows), "", "## Tasks (mean over templates)", ""]
    rows = [[t, *_gain_cols([_score(r, "tasks", t) for r in cols])] for t in last["tasks"]]
    parts += [_table(["task", *head], rows), ""]
    parts += _side_by_side(last) + _spread(last) + ["## Templates", ""]
    rows = []
    for t, v in last["tasks"].items():
        for tid, tv in v["templates"].items():
            scores = [_score(r, "tasks", t, tid) for r in cols]
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
    baseline = load_baseline(model_dir, mixture)
    out = eval_dir(model_dir, mixture)
    text = render(results, plots.write_plots(results, out), baseline)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(text)
    return path, text
