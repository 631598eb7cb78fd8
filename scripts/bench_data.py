#!/usr/bin/env python
"""Input-pipeline benchmark: throughput and packing efficiency on a real FLAN mixture.

For each feature-length pair, feature converter and packed/unpacked setting,
builds the real `BatchIterator` (seqio: rendering, SentencePiece tokenization,
mixture sampling, packing) and reads `--batches` batches of `--batch_size`
rows after `--warmup_examples` examples of warm-up (graph tracing, every
task's shuffle buffer). Reports, per setting: the non-padding fraction
of all model positions (inputs and targets; for decoder-only converters the one
concatenated sequence), examples per row, examples/s and non-padding tokens/s
on this machine, and the time to build and warm the pipeline. Prints a markdown table
and, with --json, writes one JSON object per setting.

    .venv/bin/python scripts/bench_data.py --mixture flan.all \\
        --lengths 512:128,1024:256,2048:512 --converters enc_dec,prefix_lm

Needs the real data (../shared/data or FLANJAX_DATA_DIR). Throughput depends on
the machine and its load; say which when quoting it.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import flanjax.tasks  # noqa: F401  (registers the flan.* tasks)
from flanjax.data.pipeline import BatchIterator, DataConfig

TOKEN_KEYS = ("encoder_input_tokens", "decoder_target_tokens")
SEGMENT_KEYS = ("encoder_segment_ids", "decoder_segment_ids")


def batch_counts(batch: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """(examples, non-padding tokens, positions) of one converted batch."""
    real = sum(int((batch[k] != 0).sum()) for k in TOKEN_KEYS if k in batch)
    total = sum(batch[k].size for k in TOKEN_KEYS if k in batch)
    segs = [batch[k].max(axis=1) for k in SEGMENT_KEYS if k in batch]
    rows = batch["decoder_target_tokens"].shape[0]
    examples = int(np.maximum.reduce(segs).sum()) if segs else rows
    return examples, real, total


def run_one(mixture: str, lengths: tuple[int, int], converter: str, pack: bool, args) -> dict:
    cfg = DataConfig(
        mixture,
        {"inputs": lengths[0], "targets": lengths[1]},
        batch_size=args.batch_size,
        pack=pack,
        seed=args.seed,
        feature_converter=converter,
    )
    t0 = time.perf_counter()
    it = BatchIterator(cfg)
    warm = 0
    while warm < args.warmup_examples:  # graph tracing, every task's first shuffle buffer
        warm += batch_counts(next(it))[0]
    build_s = time.perf_counter() - t0
    examples = real = total = 0
    t1 = time.perf_counter()
    for _ in range(args.batches):
        e, r, n = batch_counts(next(it))
        examples, real, total = examples + e, real + r, total + n
    read_s = time.perf_counter() - t1
    return {
        "mixture": mixture,
        "lengths": f"{lengths[0]}/{lengths[1]}",
        "converter": converter,
        "packed": pack,
        "rows": args.batches * args.batch_size,
        "examples": examples,
        "nonpadding": real / total,
        "examples_per_row": examples / (args.batches * args.batch_size),
        "examples_per_s": examples / read_s,
        "tokens_per_s": real / read_s,
        "build_s": build_s,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mixture", default="flan.all")
    p.add_argument("--lengths", default="512:128,1024:256,2048:512")
    p.add_argument("--converters", default="enc_dec,prefix_lm")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup_examples", type=int, default=2000,
                   help="examples read before timing (fills the shuffle buffers)")  # fmt: skip
    p.add_argument("--unpacked", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure unpacked rows")  # fmt: skip
    p.add_argument("--json", help="write one JSON object per setting to this file")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    lengths = [tuple(int(x) for x in pair.split(":")) for pair in args.lengths.split(",")]
    packs = (True, False) if args.unpacked else (True,)
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
    print("| lengths | converter | packed | non-padding | examples/row | examples/s | "
          "tokens/s | build s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for converter in args.converters.split(","):
        for pair in lengths:
            for pack in packs:
                r = run_one(args.mixture, pair, converter, pack, args)
                results.append(r)
                print(
                    f"| {r['lengths']} | {converter} | {'yes' if pack else 'no'} | "
                    f"{r['nonpadding']:.1%} | {r['examples_per_row']:.2f} | "
                    f"{r['examples_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | "
                    f"{r['build_s']:.1f} |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
