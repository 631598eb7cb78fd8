"""`flanjax eval --gin_file=runs/eval.gin --gin.MODEL_DIR=...`: held-out evaluation."""

from __future__ import annotations

import argparse

from flanjax import gin_launch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate checkpoints in MODEL_DIR on a held-out mixture")
    gin_launch.add_gin_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    import flanjax.tasks  # noqa: F401  (registers tasks and mixtures)
    from flanjax.evaluation import evaluator, report

    cfg = gin_launch.build(evaluator.EvalConfig)
    steps = evaluator.steps_to_evaluate(cfg)
    if not steps:
        print(f"flanjax eval: every checkpoint in {cfg.model_dir} is already evaluated")
    for step in steps:
        result = evaluator.evaluate_checkpoint(cfg, step)
        scores = ", ".join(f"{c} {v['mean']:.1f}" for c, v in result["clusters"].items())
        print(f"flanjax eval: step {step}: {scores}")
    path, text = report.write_report(cfg.model_dir, cfg.mixture_or_task_name)
    print(text)
    print(f"flanjax eval: report {path}")
    return 0
