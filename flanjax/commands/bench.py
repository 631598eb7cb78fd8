"""`flanjax bench --gin_file=models/t5_1_1_base.gin --feature_lengths inputs:1024,targets:256`."""

from __future__ import annotations

import argparse
import json

from flanjax import gin_launch
from flanjax.commands.tasks import parse_lengths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the real train step of a model config")
    gin_launch.add_gin_flags(p)
    p.add_argument("--feature_lengths", default="inputs:512,targets:128")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup_steps", type=int, default=2)
    p.add_argument("--unpacked", action="store_true", help="one example per row, no segments")
    p.add_argument("--examples_per_row", type=int, default=4)
    p.add_argument("--json", default="", help="append the result row to this JSON-lines file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    from flanjax import optimizers, partitioning
    from flanjax.perf import benchmarking

    cfg = benchmarking.BenchConfig(
        model=gin_launch.build_model(),
        feature_lengths=parse_lengths(args.feature_lengths),
        batch_size=args.batch_size,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        pack=not args.unpacked,
        examples_per_row=args.examples_per_row,
        optimizer=gin_launch.build(optimizers.OptimizerConfig),
        mesh=gin_launch.build(partitioning.MeshConfig),
    )
    row = {"config": " ".join(args.gin_file), "feature_lengths": args.feature_lengths,
           "batch_size": args.batch_size, "packed": cfg.pack, **benchmarking.run(cfg)}  # fmt: skip
    for k, v in row.items():
        print(f"{k:22s} {v:.4g}" if isinstance(v, float) else f"{k:22s} {v}")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0
