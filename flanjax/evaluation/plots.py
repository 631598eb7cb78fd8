"""PNG plots of evaluation results: score against training step, spread across templates.

The score curves also draw, per cluster or task, the baseline as a dashed line (the
BASELINE_CHECKPOINT_PATH's scores when it was evaluated, else the first checkpoint
evaluated: the initial one of a run that saved it) and, for tasks scored by rank
classification only, chance (100 / number of answer options, averaged over the
evaluation records) as a dotted line.

Each PNG also carries the plotted numbers as JSON in PNG text chunks
(`flanjax-series`, and `flanjax-baseline`, `flanjax-chance` on the curves), so a
reader (or a test) can check what a figure shows without parsing pixels.
"""

from __future__ import annotations

import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt

SERIES_KEY = "flanjax-series"
BASELINE_KEY = "flanjax-baseline"
CHANCE_KEY = "flanjax-chance"


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


def _save(fig, path: str, series: dict, **more: dict) -> str:
    fig.tight_layout()
    text = {SERIES_KEY: json.dumps(series, sort_keys=True)}
    text |= {key: json.dumps(value, sort_keys=True) for key, value in more.items()}
    fig.savefig(path, format="png", dpi=100, metadata=text)
    plt.close(fig)
    return path


def _template_chance(info, template_id: str, split: str) -> float | None:
    """100 / options, averaged over the split's records; None without options."""
    template = next((t for t in info.templates if t.id == template_id), None)
    if template is None or not template.has_choices:
        return None
    if template.choices:
        return 100.0 / len(template.choices)
    records = info.records(split)
    sizes = [len(r[template.choices_field]) for r in records if r.get(template.choices_field)]
    return statistics.fmean(100.0 / n for n in sizes) if sizes else None


def chance(result: dict, level: str) -> dict[str, float]:
    """{name: chance score} for the tasks (or clusters) of `result` whose every
    template is rank-classified; tasks not in the registry (not imported) have none."""
    from flanjax.data import registry

    tasks: dict[str, float] = {}
    for name, task in result["tasks"].items():
        try:
            info = registry.get_task_info(name)
            levels = [
                _template_chance(info, tid, task.get("split", "validation"))
                for tid in task["templates"]
            ]
        except (ValueError, KeyError, OSError):  # not registered here, or no such split
            continue
        if levels and all(x is not None for x in levels):
            tasks[name] = round(statistics.fmean(levels), 4)
    if level == "tasks":
        return tasks
    out = {}
    for cluster in result["clusters"]:
        members = [t for t, v in result["tasks"].items() if v["cluster"] == cluster]
        if members and all(t in tasks for t in members):
            out[cluster] = round(statistics.fmean(tasks[t] for t in members), 4)
    return out


def baseline_scores(results: list[dict], baseline: dict | None, level: str) -> dict:
    """{"label": ..., "scores": {name: score}}: the baseline checkpoint's scores, else
    the first checkpoint's (the initial one of a run that saved it)."""
    if baseline is None:
        first = results[0]
        source, label = first, f"initial checkpoint (step {first['step']})"
    else:
        source, label = baseline, f"baseline {baseline.get('baseline', 'checkpoint')}"
    return {"label": label, "scores": {n: round(v["mean"], 4) for n, v in source[level].items()}}


def plot_curves(
    results: list[dict], level: str, title: str, path: str, baseline: dict | None = None
) -> str:
    series = curves(results, level)
    base, levels = baseline_scores(results, baseline, level), chance(results[-1], level)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in sorted(series.items()):
        steps, scores = zip(*points, strict=True)
        (line,) = ax.plot(steps, scores, marker="o", label=name)
        if name in base["scores"]:
            ax.axhline(base["scores"][name], color=line.get_color(), ls="--", lw=1, alpha=0.7)
        if name in levels:
            ax.axhline(levels[name], color=line.get_color(), ls=":", lw=1, alpha=0.7)
    ax.plot([], [], color="gray", ls="--", label=base["label"])
    if levels:
        ax.plot([], [], color="gray", ls=":", label="chance")
    ax.set_xlabel("training step")
    ax.set_ylabel("score (mean over templates)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path, series, **{BASELINE_KEY: base, CHANCE_KEY: levels})


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


def _read_baseline(out_dir: str) -> dict | None:
    """out_dir/baseline.json (evaluator.BASELINE), when the baseline was evaluated."""
    path = os.path.join(out_dir, "baseline.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_plots(results: list[dict], out_dir: str, baseline: dict | None = None) -> list[str]:
    """clusters.png, tasks.png (score against step, with the baseline and chance) and
    spread.png (latest step). `baseline` defaults to out_dir/baseline.json."""
    if not results:
        return []
    os.makedirs(out_dir, exist_ok=True)
    baseline = baseline if baseline is not None else _read_baseline(out_dir)
    mixture = results[-1]["mixture"]
    return [
        plot_curves(
            results,
            "clusters",
            f"{mixture}: clusters",
            os.path.join(out_dir, "clusters.png"),
            baseline,
        ),
        plot_curves(
            results, "tasks", f"{mixture}: tasks", os.path.join(out_dir, "tasks.png"), baseline
        ),
        plot_spread(results[-1], os.path.join(out_dir, "spread.png")),
    ]
