"""`flanjax self-instruct --checkpoint DIR --out_dir OUT`: grow a task set (Self-Instruct).

Prompts the checkpoint with seed instructions (default: DATA_DIR/train/
self_instruct_seed_tasks.jsonl, the paper's 175) to propose new ones, filters them,
classifies them and makes instances, and appends the kept tasks to OUT/tasks.jsonl
(flanjax/self_instruct/pipeline.py: the files, the rounds, resuming). Rerunning the
same command resumes; it prints and writes (OUT/report.json) how many instructions
were proposed, kept and dropped per reason. Train on the result with
`FLANJAX_SELF_INSTRUCT=OUT/tasks.jsonl flanjax train --module_import=flanjax.self_instruct.tasks
--gin.MIXTURE_OR_TASK_NAME='"self_instruct.<OUT folder name>"' ...`.
"""

from __future__ import annotations

import argparse
import os

SEED_FILE = "train/self_instruct_seed_tasks.jsonl"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("self-instruct", help="propose, filter and write new tasks with a model")
    p.add_argument("--checkpoint", required=True, help="a MODEL_DIR (converted or trained)")
    p.add_argument("--out_dir", required=True, help="tasks.jsonl, proposals.jsonl, report.json")
    p.add_argument("--seed_tasks", default=None, help=f"default: DATA_DIR/{SEED_FILE}")
    p.add_argument("--num_proposals", type=int, default=50, help="the budget (all runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompts_per_round", type=int, default=4)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top_p", type=float, default=0.95)
    p.add_argument("--proposal_tokens", type=int, default=96)
    p.add_argument("--instance_tokens", type=int, default=128)
    p.add_argument("--max_rounds", type=int, default=None, help="stop after this many rounds")
    p.add_argument("--batch_size", type=int, default=4, help="prompts decoded together")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--vocabulary", default=None, help="default: DIR/vocab")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    p.set_defaults(func=run)


def _seed_path(arg: str | None) -> str:
    if arg:
        return arg
    from flanjax.data import catalog

    data_dir = catalog.default_data_dir()
    if data_dir is None:
        raise FileNotFoundError(f"no data directory: give --seed_tasks (the paper's {SEED_FILE})")
    return os.path.join(str(data_dir), SEED_FILE)


def run(args: argparse.Namespace) -> int:
    from flanjax.self_instruct import generator, pipeline
    from flanjax.self_instruct.config import SelfInstructConfig

    cfg = SelfInstructConfig(
        num_proposals=args.num_proposals,
        seed=args.seed,
        prompts_per_round=args.prompts_per_round,
        temperature=args.temperature,
        top_p=args.top_p,
        proposal_tokens=args.proposal_tokens,
        instance_tokens=args.instance_tokens,
    )
    seed_path = _seed_path(args.seed_tasks)
    gen = generator.ModelGenerator(args.checkpoint, args.step, args.vocabulary, args.batch_size)
    report = pipeline.run(
        gen,
        seed_path,
        args.out_dir,
        cfg,
        max_rounds=args.max_rounds,
        on_round=lambda line: print(f"flanjax self-instruct: {line}", flush=True),
    )
    print(f"flanjax self-instruct: {pipeline.format_report(report)}")
    print(f"flanjax self-instruct: tasks -> {os.path.join(args.out_dir, pipeline.TASKS)}")
    return 0
