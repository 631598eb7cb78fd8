"""`flanjax train --gin_file=runs/finetune.gin --gin.MODEL_DIR=... ...`."""

from __future__ import annotations

import argparse

from flanjax import gin_launch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a task or mixture (gin-configured)")
    gin_launch.add_gin_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    import flanjax.tasks  # noqa: F401  (registers tasks and mixtures)
    from flanjax import trainer

    cfg = gin_launch.build(trainer.TrainConfig)
    print(f"flanjax train: MODEL_DIR={cfg.model_dir} task={cfg.data.mixture_or_task_name}")
    gin_launch.save_config(cfg.model_dir)
    last = trainer.train(cfg)
    print(
        f"flanjax train: done at step {cfg.train_steps}; loss {last.get('loss', float('nan')):.4f}"
    )
    return 0
