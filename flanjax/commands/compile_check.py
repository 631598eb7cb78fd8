"""`flanjax compile-check --gin_file=models/t5_1_1_xl.gin --gin_file=runs/finetune.gin
--gin_file=partitioning/tpu_v5e_256.gin --topology=v5e:16x16`.

Compiles the run's train and score steps ahead of time for a TPU topology
(no TPU needed; `pip install 'flanjax[tpu]'`) or for this machine's devices
(`--topology=local`), and reports memory per device (FITS / DOES NOT FIT),
FLOPs, collectives and a roofline step time with the collectives' ICI time (projected MFU
without and with full overlap). Exits 1 when it does not fit.
Macros a run file leaves required and a compile does not need (MODEL_DIR,
MIXTURE_OR_TASK_NAME, TRAIN_STEPS) get placeholders.
"""

from __future__ import annotations

import argparse
import json

from flanjax import gin_launch

PLACEHOLDERS = {
    "MODEL_DIR": "'/tmp/flanjax_compile_check'",
    "MIXTURE_OR_TASK_NAME": "'compile_check'",
    "TRAIN_STEPS": "1",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile-check",
        help="compile a run for a TPU topology (or local devices): memory fit, FLOPs, roofline",
    )
    gin_launch.add_gin_flags(p)
    p.add_argument("--topology", required=True, help="v5e:16x16, v5p-128, v4:2x2x4, or local")
    p.add_argument("--num_slices", type=int, default=1, help="slices joined over DCN")
    p.add_argument("--num_choices", type=int, default=4, help="answer choices per score example")
    p.add_argument("--score_batch_size", type=int, default=0, help="0: the train batch size")
    p.add_argument("--no_score_step", action="store_true", help="compile the train step only")
    p.add_argument(
        "--no_oom_breakdown",
        action="store_true",
        help="when the TPU compiler refuses a program past HBM, do not recompile for sizes",
    )
    p.add_argument("--json", default="", help="also write the report to this JSON file")
    p.set_defaults(func=run)


def _parse_with_placeholders(args: argparse.Namespace) -> None:
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    missing = [m for m in PLACEHOLDERS if gin_launch.macro_is_required(m)]
    if missing:
        defaults = [f"{m}={PLACEHOLDERS[m]}" for m in missing]
        gin_launch.parse(args.gin_file, defaults + args.gin_bindings, args.gin_search_paths)


def run(args: argparse.Namespace) -> int:
    _parse_with_placeholders(args)
    from flanjax import trainer
    from flanjax.perf import compile_check

    cfg = compile_check.CheckConfig(
        train=gin_launch.build(trainer.TrainConfig),
        topology=args.topology,
        num_slices=args.num_slices,
        num_choices=args.num_choices,
        score_batch_size=args.score_batch_size,
        score_step=not args.no_score_step,
        oom_breakdown=not args.no_oom_breakdown,
    )
    report = compile_check.run(cfg)
    report["gin_files"] = list(args.gin_file)
    report["gin_bindings"] = list(args.gin_bindings)
    print(compile_check.format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if report["verdict"] == "DOES NOT FIT" else 0
