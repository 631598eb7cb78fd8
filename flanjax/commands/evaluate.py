"""`flanjax eval --gin_file=runs/eval.gin --gin.MODEL_DIR=...`: held-out evaluation.

One pass over the checkpoints selected by `EvalConfig.checkpoints`, or, with
`EvalConfig.continuous=True`, a watcher that evaluates each checkpoint as
training writes it (run it in its own process, e.g. on its own GPU). With
`BASELINE_CHECKPOINT_PATH` set, the initial checkpoint is evaluated first (once).
"""

from __future__ import annotations

import argparse

from flanjax import gin_launch, quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate checkpoints in MODEL_DIR on a held-out mixture")
    gin_launch.add_gin_flags(p)
    p.set_defaults(func=run)


def _print(result: dict, name: str | None = None) -> None:
    name = name or f"step {result['step']}"
    scores = ", ".join(f"{c} {v['mean']:.1f}" for c, v in result["clusters"].items())
    print(f"flanjax eval: {name}: {scores}", flush=True)
    for k, setting in result.get("few_shot", {}).items():
        scores = ", ".join(f"{c} {v['mean']:.1f}" for c, v in setting["clusters"].items())
        print(f"flanjax eval: {name} {k}-shot: {scores}", flush=True)


def run(args: argparse.Namespace) -> int:
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    import flanjax.tasks  # noqa: F401  (registers tasks and mixtures)
    from flanjax.evaluation import continuous, evaluator, report

    cfg = gin_launch.build(evaluator.EvalConfig)
    quiet.announce_backend("eval")
    baseline = evaluator.evaluate_baseline(cfg)  # once; the report's gain is over it
    if baseline is not None:
        _print(baseline, f"baseline {cfg.baseline_checkpoint_path}")
    if cfg.continuous:
        print(f"flanjax eval: watching {cfg.model_dir} for new checkpoints", flush=True)
        continuous.watch(cfg, on_result=_print)
    else:
        steps = evaluator.steps_to_evaluate(cfg)
        if not steps:
            print(f"flanjax eval: every checkpoint in {cfg.model_dir} is already evaluated")
        for step in steps:
            _print(continuous.record(cfg, step))
    path, text = report.write_report(cfg.model_dir, cfg.mixture_or_task_name)
    print(text)
    print(f"flanjax eval: report {path}")
    return 0
