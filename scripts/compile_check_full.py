"""Compile the full-size model / TPU-slice pairs ahead of time and tabulate them.

Runs `flanjax compile-check` once per pair (a process each), keeps each report
(NAME.txt, NAME.json) in --out, and prints a Markdown table for BENCHMARKS.md.
Needs libtpu (`pip install 'flanjax[tpu]'`), no TPU. Not part of the unit
tests: each pair compiles a full-size model for a full slice (minutes on a
laptop-class CPU).

  .venv/bin/python scripts/compile_check_full.py --out /tmp/compile_check_full
  .venv/bin/python scripts/compile_check_full.py --only llama_8b_v5p_128 \
      --gin.DecoderConfig.remat_policy="'full'"
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
T5_LENGTHS = "TASK_FEATURE_LENGTHS={'inputs': 1024, 'targets': 256}"
BF16_T5 = "T5Config.dtype='bfloat16'"  # T5X's activation dtype; parameters stay float32
BF16_DEC = "DecoderConfig.dtype='bfloat16'"

# name: (model gin, partitioning gin, topology, gin bindings)
PAIRS = {
    "flan_t5_xl_v5e_256": (
        "t5_1_1_xl", "tpu_v5e_256", "v5e:16x16", [T5_LENGTHS, "BATCH_SIZE=256", BF16_T5]
    ),
    "flan_t5_xxl_v5p_128": (
        "t5_1_1_xxl", "tpu_v5p_128", "v5p:4x4x4", [T5_LENGTHS, "BATCH_SIZE=128", BF16_T5]
    ),
    "llama_8b_v5p_128": (
        "llama_8b", "tpu_v5p_128", "v5p:4x4x4", [T5_LENGTHS, "BATCH_SIZE=128", BF16_DEC]
    ),
    "t5_large_v4_32": (
        "t5_1_1_large", "tpu_v4_32", "v4:2x2x4", [T5_LENGTHS, "BATCH_SIZE=128", BF16_T5]
    ),
}  # fmt: skip


def command(name: str, out: pathlib.Path, extra: list[str]) -> list[str]:
    model, partitioning, topology, bindings = PAIRS[name]
    return [
        str(REPO / ".venv" / "bin" / "flanjax"),
        "compile-check",
        f"--gin_file=models/{model}.gin",
        "--gin_file=runs/finetune.gin",
        f"--gin_file=partitioning/{partitioning}.gin",
        *(f"--gin.{b}" for b in bindings),
        *extra,
        f"--topology={topology}",
        f"--json={out / (name + '.json')}",
    ]


def gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def row(name: str, report: dict, wall_s: float) -> str:
    train = report["train_step"]
    mem, roof = train["memory"], train.get("roofline", {})
    score = report.get("score_step", {})
    margin = (
        f"{mem['verdict']} ({gib(mem['margin'])} GiB, {100 * mem['margin'] / mem['hbm']:+.0f}%)"
        if "margin" in mem
        else mem["verdict"]
    )
    flops = train.get("flops", {})
    mesh = "x".join(f"{k[0]}{v}" for k, v in report["mesh"].items() if v > 1)
    score_mem = score.get("memory", {})
    return (
        f"| {name} | {report['topology']} ({report['devices']} chips) | {mesh} "
        f"| {report['params'] / 1e9:.2f}B | {gib(mem.get('total', 0))} / {gib(mem['hbm'])} "
        f"| {margin} | {gib(score_mem.get('total', 0))} "
        f"| {100 * flops.get('compiler_vs_analytic', 0):+.1f}% "
        f"| {1e3 * roof.get('step_s', 0):.0f} ms ({roof.get('bound', '-')}) "
        f"| {1e3 * (roof.get('collective_s') or 0):.0f} ms "
        f"| {100 * roof.get('mfu', 0):.1f}% / {100 * roof.get('mfu_overlap', 0):.1f}% "
        f"| {train.get('compile_s', 0):.0f} s / {score.get('compile_s', 0):.0f} s "
        f"| {wall_s:.0f} s |"
    )


HEADER = (
    "| pair | slice | mesh | params | train step GiB/chip (of HBM) | verdict (margin) "
    "| score step GiB/chip | compiler vs analytic FLOPs | roofline step (no overlap) "
    "| collectives | projected MFU (no overlap / full overlap) | compile train / score | wall |"
    "\n|" + "---|" * 13
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/compile_check_full")
    parser.add_argument("--only", action="append", default=[], choices=sorted(PAIRS))
    args, extra = parser.parse_known_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    rows, worst = [], 0
    for name in args.only or list(PAIRS):
        cmd = command(name, out, extra)
        print("$", " ".join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        (out / f"{name}.txt").write_text(proc.stdout + proc.stderr)
        print(proc.stdout, flush=True)
        worst = max(worst, proc.returncode)
        if proc.returncode not in (0, 1):
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        rows.append(row(name, json.loads((out / f"{name}.json").read_text()), wall))
    print("\n".join([HEADER, *rows]))
    return worst


if __name__ == "__main__":
    sys.exit(main())
