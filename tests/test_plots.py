"""Held-out plots draw the baseline (BASELINE_CHECKPOINT_PATH's scores, else the first
checkpoint's) and, for tasks scored only by rank classification, chance."""

import json

from PIL import Image

import flanjax.tasks  # noqa: F401  (builtin.parity: 2 answer options per record)
from flanjax.evaluation import plots


def _result(step, parity: float, addition: float) -> dict:
    def task(cluster, score, metric):
        templates = {t: {"score": score, "metric": metric} for t in ("t0", "t1")}
        return {"cluster": cluster, "mean": score, "split": "validation", "templates": templates}

    return {
        "mixture": "builtin.eval_mixed",
        "step": step,
        "tasks": {
            "builtin.parity": task("comparison", parity, "accuracy"),
            "builtin.addition": task("arithmetic", addition, "exact_match"),
        },
        "clusters": {"comparison": {"mean": parity}, "arithmetic": {"mean": addition}},
    }


def _text(path) -> dict:
    with Image.open(path) as img:
        img.load()
        return {k: json.loads(v) for k, v in img.text.items() if k.startswith("flanjax-")}


def test_curves_draw_the_initial_checkpoint_and_chance(tmp_path):
    results = [_result(0, 48.0, 1.0), _result(100, 61.0, 20.0)]
    clusters, tasks, _ = plots.write_plots(results, str(tmp_path))
    assert _text(clusters) == {
        plots.SERIES_KEY: {"comparison": [[0, 48.0], [100, 61.0]],
                           "arithmetic": [[0, 1.0], [100, 20.0]]},
        plots.BASELINE_KEY: {"label": "initial checkpoint (step 0)",
                             "scores": {"comparison": 48.0, "arithmetic": 1.0}},
        plots.CHANCE_KEY: {"comparison": 50.0},  # two options: even, odd
    }  # fmt: skip
    assert _text(tasks)[plots.CHANCE_KEY] == {"builtin.parity": 50.0}


def test_curves_draw_the_baseline_checkpoint_when_it_was_evaluated(tmp_path):
    baseline = _result(0, 52.0, 3.0) | {"baseline": "/ckpt/flan_t5_small"}
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    results = [_result(1000, 58.0, 9.0), _result(2000, 66.0, 30.0)]
    clusters, tasks, _ = plots.write_plots(results, str(tmp_path))
    assert _text(tasks)[plots.BASELINE_KEY] == {
        "label": "baseline /ckpt/flan_t5_small",
        "scores": {"builtin.parity": 52.0, "builtin.addition": 3.0},
    }
    assert _text(clusters)[plots.SERIES_KEY]["comparison"] == [[1000, 58.0], [2000, 66.0]]
