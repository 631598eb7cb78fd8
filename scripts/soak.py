#!/usr/bin/env python
"""Soak test of preemption and crash recovery (not part of the unit suite).

Runs N cycles of: start a tiny CPU `flanjax train` as a subprocess (example-id
recording on), kill it at a random moment (SIGKILL during start-up or during
training, which includes asynchronous saves, or SIGTERM), and start it again.
Then it lets the run finish uninterrupted, trains the same number of steps in
one uninterrupted reference run, and reports:

- steps lost beyond the last checkpoint: per restart, the newest complete
  checkpoint on disk at the kill (for SIGTERM: the step the process stopped at)
  minus the step the next start resumed from (must be 0);
- examples skipped or repeated: the ids behind every step of the final
  parameters (the last record of each step in the example-id log) against the
  reference run's, as multisets (both must be 0), and whether every step that was
  redone after a kill read the same examples as the first time;
- the largest absolute difference between the final parameters of the two runs.

    .venv/bin/python scripts/soak.py --cycles 200 --out soak.json

The summary is printed and written as JSON (also after every cycle, so an
interrupted soak leaves its figures).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pathlib
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
FLAGS = [
    "--gin_file=runs/quickstart.gin",
    "--gin_file=models/t5_micro.gin",
    "--gin.BATCH_SIZE=8",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}",
    "--gin.CheckpointConfig.save_every=2",
    "--gin.CheckpointConfig.keep=3",
    "--gin.TrainConfig.log_every=10",
    "--gin.TrainConfig.show_progress=False",
    "--gin.TrainConfig.record_example_ids=True",
]
NEVER = 10**7  # TRAIN_STEPS while cycling: the run only ends when killed


def worker_env(cache_dir: pathlib.Path) -> dict[str, str]:
    return {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def start(model_dir: pathlib.Path, steps: int, log: pathlib.Path, env) -> subprocess.Popen:
    argv = [sys.executable, "-m", "flanjax.cli", "train", *FLAGS,
            f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}"]  # fmt: skip
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def id_records(model_dir: pathlib.Path) -> list[dict]:
    """The example-id log's complete lines, in order (a half line from a kill is dropped)."""
    path = model_dir / "example_ids" / "process_0.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def complete_checkpoints(model_dir: pathlib.Path) -> tuple[list[int], list[str]]:
    """(finalized checkpoint steps, names of Orbax temporary folders of unfinished saves)."""
    folder = model_dir / "checkpoints"
    names = os.listdir(folder) if folder.exists() else []
    return sorted(int(n) for n in names if n.isdigit()), [n for n in names if "tmp" in n]


def wait_for_training(proc, model_dir, n_before: int, timeout: float) -> float | None:
    """Seconds until the process is training (it logged the ids of its second step, so
    its first, compiled, step has run); None if it exited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return None
        if len(id_records(model_dir)) > n_before + 1:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError(f"no training step within {timeout}s")


def one_cycle(i, rng, args, model_dir, workdir, env, startup_estimate) -> dict:
    """Starts the run, kills it at a random moment, returns what happened."""
    n_before = len(id_records(model_dir))
    log = workdir / f"cycle_{i % 5}.log"
    roll = rng.random()
    kind = "sigterm" if roll < args.sigterm_fraction else "sigkill"
    early = kind == "sigkill" and roll > 1 - args.startup_fraction
    launched = time.monotonic()
    proc = start(model_dir, NEVER, log, env)
    rec = {"cycle": i, "kind": kind}
    if early:  # killed during start-up: imports, restore, compilation, data
        time.sleep(rng.uniform(0, startup_estimate))
        rec["kind"] = "sigkill_startup"
    else:
        if wait_for_training(proc, model_dir, n_before, args.step_timeout) is None:
            raise RuntimeError(f"cycle {i}: exited early:\n{log.read_text()[-3000:]}")
        rec["startup_s"] = time.monotonic() - launched
        time.sleep(rng.uniform(0, args.window))
    proc.send_signal(signal.SIGTERM if kind == "sigterm" else signal.SIGKILL)
    rc = proc.wait(args.step_timeout)
    text = log.read_text()
    if kind == "sigterm" and (rc != 0 or "stopped by a signal" not in text):
        raise RuntimeError(f"cycle {i}: SIGTERM gave rc {rc}:\n{text[-3000:]}")
    if kind != "sigterm" and rc != -signal.SIGKILL:
        raise RuntimeError(f"cycle {i}: exited by itself with {rc}:\n{text[-3000:]}")
    records = id_records(model_dir)
    steps, tmp = complete_checkpoints(model_dir)
    last = records[-1]["step"] if len(records) > n_before else None
    rec.update(
        rc=rc,
        resumed_from=resumed_step(model_dir, n_before),
        last_step_started=last,
        newest_checkpoint=steps[-1] if steps else None,
        save_in_flight=bool(tmp),
    )
    # Where the next start must resume: the step a SIGTERM stopped at (it saves
    # there), else the newest complete checkpoint.
    rec["next_must_resume_from"] = last if kind == "sigterm" else rec["newest_checkpoint"] or 0
    return rec


def resumed_step(model_dir: pathlib.Path, n_before: int) -> int | None:
    """The step a start resumed from: one before the first step it logged."""
    new = id_records(model_dir)[n_before:]
    return new[0]["step"] - 1 if new else None


def run_to(model_dir, steps, workdir, env, name) -> None:
    log = workdir / f"{name}.log"
    rc = start(model_dir, steps, log, env).wait()
    if rc != 0:
        raise RuntimeError(f"{name} run failed ({rc}):\n{log.read_text()[-3000:]}")


def lineage(records: list[dict]) -> tuple[dict[int, list[str]], int]:
    """(the ids of each step's last record, the number of redone steps whose ids differ
    from their earlier attempt)."""
    final: dict[int, list[str]] = {}
    mismatched = 0
    for r in records:
        if r["step"] in final and final[r["step"]] != r["ids"]:
            mismatched += 1
        final[r["step"]] = r["ids"]
    return final, mismatched


def compare_params(a: pathlib.Path, b: pathlib.Path) -> float:
    import numpy as np
    import orbax.checkpoint as ocp

    ckpt = ocp.PyTreeCheckpointer()
    x, y = ckpt.restore(a / "params"), ckpt.restore(b / "params")
    import jax

    leaves = zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True)
    return float(max(np.max(np.abs(np.asarray(p) - np.asarray(q))) for p, q in leaves))


def lost_steps(cycles: list[dict]) -> int:
    """Sum over starts of |the step it had to resume from - the step it resumed from|
    (a start killed before its first step resumed from an unknown step: not counted)."""
    lost, must = 0, 0
    for c in cycles:
        if c.get("resumed_from") is not None:
            c["lost"] = must - c["resumed_from"]
            lost += abs(c["lost"])
        must = c.get("next_must_resume_from", must)
    return lost


def summarize(args, cycles, started, extra) -> dict:
    kinds = collections.Counter(c["kind"] for c in cycles if c["kind"] != "none")
    in_save = sum(c.get("save_in_flight", 0) for c in cycles if c["kind"].startswith("sigkill"))
    return {
        "command": " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
        "date_utc": started,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs "
        f"{platform.platform()}",
        "cycles_requested": args.cycles,
        "cycles_run": sum(c["kind"] != "none" for c in cycles),
        "faults": dict(kinds) | {"sigkill_with_a_save_in_flight": in_save},
        "steps_lost_beyond_last_checkpoint": lost_steps(cycles),
        "steps_redone_after_kills": sum(
            c["last_step_started"] - c["next_must_resume_from"]
            for c in cycles
            if c.get("last_step_started") is not None
        ),
        **extra,
        "cycles": cycles,
    }


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--time_budget", type=float, default=0, help="stop cycling after N s (0: no)")
    p.add_argument("--window", type=float, default=2.0, help="kill within N s of the first step")
    p.add_argument("--sigterm_fraction", type=float, default=0.3)
    p.add_argument("--startup_fraction", type=float, default=0.1)
    p.add_argument("--final_steps", type=int, default=4, help="steps after the last cycle")
    p.add_argument("--step_timeout", type=float, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="default: a new temporary folder")
    p.add_argument("--out", default="soak.json")
    p.add_argument(
        "--finish_only",
        action="store_true",
        help="no new cycles: finish the soak in --workdir whose cycles are in --out",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="flanjax_soak_"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = worker_env(workdir / "jax_cache")
    model_dir, reference_dir = workdir / "soak", workdir / "reference"
    out = pathlib.Path(args.out)
    cycles: list[dict] = []
    if args.finish_only:
        cycles = [c for c in json.loads(out.read_text())["cycles"] if c["kind"] != "none"]
    else:
        shutil.rmtree(model_dir, ignore_errors=True)
    shutil.rmtree(reference_dir, ignore_errors=True)
    rng = random.Random(args.seed)
    t0, startup = time.monotonic(), 20.0
    for i in range(0 if args.finish_only else args.cycles):
        if args.time_budget and time.monotonic() - t0 > args.time_budget:
            break
        rec = one_cycle(i, rng, args, model_dir, workdir, env, startup)
        startup = rec.get("startup_s", startup)
        cycles.append(rec)
        print(json.dumps(rec), flush=True)
        out.write_text(json.dumps(summarize(args, cycles, started, {}), indent=1))
    n_before = len(id_records(model_dir))
    steps, _ = complete_checkpoints(model_dir)
    final_step = (steps[-1] if steps else 0) + args.final_steps
    run_to(model_dir, final_step, workdir, env, "final")
    cycles.append(
        {"cycle": "final", "kind": "none", "resumed_from": resumed_step(model_dir, n_before)}
    )
    run_to(reference_dir, final_step, workdir, env, "reference")
    soak_ids, mismatched = lineage(id_records(model_dir))
    ref_ids, _ = lineage(id_records(reference_dir))
    soak_all = collections.Counter(x for s in range(1, final_step + 1) for x in soak_ids.get(s, []))
    ref_all = collections.Counter(x for s in range(1, final_step + 1) for x in ref_ids.get(s, []))
    extra = {
        "final_step": final_step,
        "examples_skipped": sum((ref_all - soak_all).values()),
        "examples_repeated": sum((soak_all - ref_all).values()),
        "steps_with_different_examples": sum(
            soak_ids.get(s) != ref_ids.get(s) for s in range(1, final_step + 1)
        ),
        "redone_steps_reading_other_examples": mismatched,
        "examples_trained": sum(soak_all.values()),
        "max_abs_param_difference": compare_params(
            model_dir / "checkpoints" / str(final_step),
            reference_dir / "checkpoints" / str(final_step),
        ),
        "wall_seconds": round(time.monotonic() - t0),
        "workdir": str(workdir),
    }
    summary = summarize(args, cycles, started, extra)
    out.write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "cycles"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
