"""The input pipeline at Flan-Collection scale: memory, time to the first batch, resume, speed.

For each collection size (generated in the Flan 2022 format with 1,836 tasks, cached
under --root) and each core count, a fresh process (pinned to the cores with
sched_setaffinity) registers the collection (T5 vocabulary), builds the training
pipeline (enc_dec, packed, --lengths, --batch rows), and reports:
  first_batch_s      start of the process's pipeline work -> first batch (no cache)
  tokens_per_s       non-padding tokens per second over --batches batches
  resume_s           a new pipeline restored at batch --resume_at (batches of --resume_batch
                     rows, to reach a far batch index in minutes) -> its first batch
  replay_s           reading those --resume_at batches: what a resume that skips
                     (replays) the consumed batches costs
  peak_rss_gib       the process's peak resident memory
One JSON line per run, then a markdown table for BENCHMARKS.md.

  python scripts/bench_data_scale.py --sizes 100000,1000000,5000000 --cores 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _generate(root: Path, n: int, shards: int) -> Path:
    out = root / f"flan2022_{n}"
    if not (out / "categories.json").exists():
        script = REPO / "scripts" / "generate_flan_collection.py"
        cmd = [sys.executable, str(script), str(out), "--records", str(n), "--shards", str(shards)]
        subprocess.run(cmd, check=True)
    return out


def _child(args) -> dict:
    import numpy as np

    from flanjax.data import catalog
    from flanjax.data.pipeline import BatchIterator, DataConfig
    from flanjax.tasks import flan2022

    start = time.perf_counter()
    flan2022.register(args.collection)
    li, lt = (int(x) for x in args.lengths.split(","))
    cfg = DataConfig("flan2022", {"inputs": li, "targets": lt}, batch_size=args.batch)
    it = BatchIterator(cfg)
    next(it)
    first = time.perf_counter() - start
    tokens, t0 = 0, time.perf_counter()
    for _ in range(args.batches - 1):
        b = next(it)
        tokens += int(
            (b["encoder_input_tokens"] > 0).sum() + (b["decoder_target_tokens"] > 0).sum()
        )
    speed = tokens / (time.perf_counter() - t0)
    del it
    far = DataConfig("flan2022", {"inputs": li, "targets": lt}, batch_size=args.resume_batch)
    t0 = time.perf_counter()
    run = BatchIterator(far)
    for _ in range(args.resume_at):
        next(run)
    replay = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        run.save_position(f"{tmp}/position")
        del run
        t0 = time.perf_counter()
        resumed = BatchIterator(far, start_batch=args.resume_at, restore_from=f"{tmp}/position")
        next(resumed)
        resume = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    del np, catalog
    return {"first_batch_s": round(first, 1), "tokens_per_s": round(speed),
            "resume_s": round(resume, 2), "replay_s": round(replay, 1),
            "peak_rss_gib": round(rss, 2)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000,5000000")
    p.add_argument("--cores", default="1,2")
    p.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "flanjax_data_scale"))
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--lengths", default="1024,256")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--resume_at", type=int, default=100_000)
    p.add_argument("--resume_batch", type=int, default=1)
    p.add_argument("--collection", help=argparse.SUPPRESS)  # the child's
    args = p.parse_args()
    if args.collection:
        print("RESULT " + json.dumps(_child(args)), flush=True)
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        collection = _generate(Path(args.root), n, args.shards)
        for cores in (int(c) for c in args.cores.split(",")):
            rows.append(_run(args, n, cores, collection))
    print("\n| records | cores | first batch s | tokens/s | resume s | replay s | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['records']:,} | {r['cores']} | {r['first_batch_s']} | {r['tokens_per_s']:,} "
              f"| {r['resume_s']} | {r['replay_s']} | {r['peak_rss_gib']} |")  # fmt: skip


def _run(args, n: int, cores: int, collection: Path) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "FLANJAX_CACHE_DIR": cache, "TF_CPP_MIN_LOG_LEVEL": "2"}
        cmd = [sys.executable, __file__, "--collection", str(collection)]
        cmd += ["--lengths", args.lengths, "--batch", str(args.batch)]
        cmd += ["--batches", str(args.batches), "--resume_at", str(args.resume_at)]
        cmd += ["--resume_batch", str(args.resume_batch)]
        out = subprocess.run(
            cmd, env=env, capture_output=True, text=True, check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, range(cores)),
        )  # fmt: skip
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"records {n}, cores {cores}: failed\n{out.stderr[-3000:]}")
    row = {"records": n, "cores": cores, "batches": args.batches, "resume_at": args.resume_at,
           "resume_batch": args.resume_batch, **json.loads(lines[0][7:])}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
