"""Aggregation of template scores as the papers report them.

* per template: the template's score on the task's examples;
* per task (dataset): mean over its templates, with the population standard
  deviation, minimum and maximum across templates (the prompt-robustness figures
  of T0-style papers);
* per cluster: mean over its tasks' means (FLAN's held-out cluster score), with
  the std, minimum and maximum across those tasks;
* overall: the same over every task (SuperNI reports it beside its categories).

Zero-shot is the headline (`tasks`, `clusters` at the top of a result); each
few-shot setting k sits beside it under `few_shot[str(k)]` with the same shape.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence


def spread(values: Sequence[float]) -> dict[str, float]:
    """mean, std (population), min and max of a non-empty list of scores."""
    if not values:
        raise ValueError("spread: no scores to aggregate")
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def aggregate(
    per_template: Mapping[str, Mapping[str, dict]],
    clusters: Mapping[str, str],
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, dict]:
    """{"tasks": ..., "clusters": ...} from {task: {template id: {"score": ..., ...}}}.

    `clusters` maps each task to its cluster; `extra` adds fields to a task's
    entry (e.g. the split it was evaluated on).
    """
    tasks: dict[str, dict] = {}
    members: dict[str, list[float]] = {}
    for name, templates in per_template.items():
        stats = spread([t["score"] for t in templates.values()])
        tasks[name] = {
            "cluster": clusters[name],
            **dict((extra or {}).get(name, {})),
            **stats,
            "templates": dict(templates),
        }
        members.setdefault(clusters[name], []).append(stats["mean"])
    means = [t["mean"] for t in tasks.values()]
    return {
        "tasks": tasks,
        "clusters": {c: {**spread(v), "num_tasks": len(v)} for c, v in members.items()},
        # over every task, each weighted once (SuperNI's "overall", FLAN's all-task mean)
        "overall": {**spread(means), "num_tasks": len(means)} if means else {},
    }


def side_by_side(result: Mapping, level: str, name: str) -> dict[str, float]:
    """{"0": zero-shot mean, "k": k-shot mean, ...} of one cluster or task in a result."""
    row = {"0": result[level][name]["mean"]} if name in result[level] else {}
    for k, setting in result.get("few_shot", {}).items():
        if name in setting[level]:
            row[k] = setting[level][name]["mean"]
    return row
