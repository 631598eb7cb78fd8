"""Evaluation while training runs: watch MODEL_DIR, evaluate each checkpoint once.

A checkpoint counts as evaluated when its results file exists (written
atomically), so an evaluator that is killed and restarted picks up where it
stopped and never evaluates a checkpoint twice. Orbax lists a step only once
its save has committed, so a checkpoint still being written is never read; one
deleted by the trainer's keep-N policy before its turn is skipped with a note.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from flanjax.evaluation import evaluator, report
from flanjax.metric_writers import MetricWriter

log = logging.getLogger(__name__)


def record(cfg: evaluator.EvalConfig, step: int) -> dict:
    """Evaluates one checkpoint; writes its JSON, TensorBoard scalars and the report."""
    result = evaluator.evaluate_checkpoint(cfg, step)
    scalars = {f"cluster/{c}": v["mean"] for c, v in result["clusters"].items()}
    scalars |= {f"task/{t}": v["mean"] for t, v in result["tasks"].items()}
    for k, setting in result.get("few_shot", {}).items():
        scalars |= {f"cluster_{k}shot/{c}": v["mean"] for c, v in setting["clusters"].items()}
    writer = MetricWriter(cfg.model_dir, f"eval_{cfg.mixture_or_task_name}")
    writer.write(step, scalars)
    writer.close()
    report.write_report(cfg.model_dir, cfg.mixture_or_task_name)
    return result


def _done(cfg: evaluator.EvalConfig, steps: list[int]) -> bool:
    return cfg.stop_after_step >= 0 and any(
        s >= cfg.stop_after_step
        and os.path.exists(evaluator.results_path(cfg.model_dir, cfg.mixture_or_task_name, s))
        for s in steps
    )


def watch(
    cfg: evaluator.EvalConfig, on_result: Callable[[dict], None] = lambda r: None
) -> list[int]:
    """Evaluates new checkpoints until `stop_after_step` is evaluated or the idle
    limit passes; returns the steps evaluated by this call."""
    evaluated: list[int] = []
    idle_since = time.monotonic()
    while True:
        try:
            pending = evaluator.steps_to_evaluate(cfg)
        except FileNotFoundError:
            pending = []  # no checkpoint yet: training has not saved one
        for step in pending:
            try:
                on_result(record(cfg, step))
            except (FileNotFoundError, ValueError) as e:
                if os.path.isdir(os.path.join(cfg.model_dir, "checkpoints", str(step))):
                    raise
                log.warning("checkpoint %d was deleted before evaluation; skipped (%s)", step, e)
                continue
            evaluated.append(step)
            idle_since = time.monotonic()
        steps = evaluator.all_steps(cfg.model_dir)
        if _done(cfg, steps):
            return evaluated
        if cfg.max_idle_seconds and time.monotonic() - idle_since > cfg.max_idle_seconds:
            log.warning("no new checkpoint for %.0f s; stopping", cfg.max_idle_seconds)
            return evaluated
        time.sleep(cfg.poll_seconds)
