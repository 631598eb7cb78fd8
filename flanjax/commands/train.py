"""`flanjax train --gin_file=runs/finetune.gin --gin.MODEL_DIR=... ...`.

SIGTERM (a preemption, a scheduler's time limit) and SIGINT (Ctrl-C) let the current
step finish, save a checkpoint at it and exit with one line: status 0 after SIGTERM
(the job is done for now; rerun to resume), 130 after SIGINT (128 + 2, the shell's
convention for an interrupted command). A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import os
import sys

from flanjax import gin_launch, quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a task or mixture (gin-configured)")
    gin_launch.add_gin_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    import jax

    import flanjax.tasks  # noqa: F401  (registers tasks and mixtures)
    from flanjax import distributed, run_setup, trainer

    cfg = gin_launch.build_train_config()
    cfg = run_setup.prepare(cfg)  # refuses mismatches before anything is written
    distributed.initialize(cfg.distributed)  # before anything touches a device
    quiet.announce_backend("train")
    main = jax.process_index() == 0
    print(
        f"flanjax train: MODEL_DIR={cfg.model_dir} task={cfg.data.mixture_or_task_name} "
        f"process {jax.process_index()}/{jax.process_count()}"
    )
    if main:  # the parsed config, and every configurable's values (T5X's record)
        gin_launch.save_config(cfg.model_dir)
        with open(os.path.join(cfg.model_dir, "operative_config.gin"), "w") as f:
            f.write(gin_launch.operative_config())
    from flanjax import checkpointing

    try:
        last = trainer.train(cfg)
    except (
        trainer.NonFiniteError,
        checkpointing.CheckpointWriteError,
        checkpointing.CorruptCheckpointError,
    ) as e:  # a failed run, not bad input: exit 1 with the reason
        print(f"flanjax train: error: {e}", file=sys.stderr)
        return 1
    loss = last.get("loss", float("nan"))
    if last["step"] < cfg.train_steps:  # SIGTERM or SIGINT: checkpoint saved
        signal = last.get("signal", "a signal on another process")
        print(
            f"flanjax train: stopped by a signal at step {last['step']} of {cfg.train_steps} "
            f"({signal}); checkpoint saved in {cfg.model_dir}; rerun the same command to resume"
        )
        return 130 if signal == "SIGINT" else 0
    print(f"flanjax train: done at step {cfg.train_steps}; loss {loss:.4f}")
    return 0
