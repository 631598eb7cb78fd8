"""The prepared GPU run: every GPU goal measured by one command, each part capped in time.

  scripts/gpu_checks.sh [--wheels DIR]     # on the GPU machine: installs, then runs this
  scripts/gpu_checks.sh --cpu              # the dry run: every part, tiny shapes, on CPU
  python -m flanjax.perf.gpu_checks --out DIR [--only PART ...] [--budget_s S]

Parts, in order (`PARTS`; the functions are in `gpu_parts`): the backend is a GPU and
runs a jitted matmul; cuDNN's fused attention equals the XLA path for T5 and for the
decoder (values and gradients); the three train-step goals of issue 8 (T5 1.1-large
512/128 in sequences/s, Flan-T5-base 1024/256 in MFU, a 1.34B decoder at 2048 in
tokens/s) in bfloat16 with packing and fused attention; the same-GPU transformers
comparison for T5-small; a SmolLM2-135M train step at GPU size.

Each part runs in its own process (on GPU; the dry run runs all parts in one process
to stay fast) under a time cap: `min(cap, time left of --budget_s)`, the process
group killed at the cap. A part that fails, crashes or runs out of time is recorded
with its error and the run goes on; the exit status is 1 if any part failed. The run
writes DIR/results.json (every figure) and DIR/table.md (a Markdown table with device,
date, commit and command, to paste into BENCHMARKS.md). Goals met or not are reported
in the table; they do not change the exit status.

JAX's persistent compilation cache (--compile_cache, default DIR/jax_cache) is shared
by the parts: a second run on the same machine skips the compiles (its compile times
then read from the cache), and the dry run compiles each tiny program once.

Environment of each part: XLA_FLAGS gets flanjax's GPU flags (`flanjax.xla_flags`);
on GPU JAX_PLATFORMS=cuda (no silent CPU fallback), XLA_PYTHON_CLIENT_MEM_FRACTION=0.90
(each process owns the GPU while it runs) and TensorFlow (imported by seqio) is kept
off the GPU; variables already set win.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[2]
# name: (time cap in seconds on GPU, what it checks)
PARTS: dict[str, tuple[int, str]] = {
    "device": (90, "backend"),
    "attention_t5": (75, "cuDNN attention = XLA attention, T5"),
    "attention_decoder": (75, "cuDNN attention = XLA attention, decoder"),
    "bench_t5_large": (150, "T5 1.1-large train step"),
    "bench_flan_t5_base": (110, "Flan-T5-base train step"),
    "bench_decoder_1p3b": (150, "1.34B decoder train step"),
    "vs_transformers": (100, "T5-small step, flanjax vs transformers"),
    "bench_smollm2": (80, "SmolLM2-135M train step"),
}
MIN_PART_S = 20  # a part is skipped when less than this is left of the budget


def requirements(lists: tuple[str, ...] = ("CORE", "GPU", "CONVERT")) -> list[str]:
    """The pinned requirements of setup.py's lists `lists` (what the GPU machine installs:
    flanjax's own, its `gpu` and its `convert` extras), read from setup.py's source."""
    found: dict[str, list[str]] = {}
    for node in ast.parse((REPO / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in lists:
                    found[target.id] = ast.literal_eval(node.value)
    missing = [name for name in lists if name not in found]
    if missing:
        raise ValueError(f"{REPO / 'setup.py'}: no list named {', '.join(missing)}")
    return [req for name in lists for req in found[name]]


def run_part(name: str, cpu: bool, out_dir: pathlib.Path) -> dict[str, Any]:
    from flanjax.perf import gpu_parts

    mode = gpu_parts.Mode(cpu=cpu)
    if name == "device":
        return gpu_parts.device(mode)
    if name.startswith("attention_"):
        return gpu_parts.attention(mode, name.removeprefix("attention_"))
    if name == "vs_transformers":
        return gpu_parts.vs_transformers(mode, out_dir)
    return gpu_parts.bench(mode, name)


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and infinities become None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _part_file(out_dir: pathlib.Path, name: str) -> pathlib.Path:
    return out_dir / f"part_{name}.json"


def child(names: list[str], cpu: bool, out_dir: pathlib.Path) -> int:
    """Runs parts in this process, writing each part's result as soon as it ends."""
    if not cpu:
        try:  # seqio imports TensorFlow: keep it from claiming GPU memory
            import tensorflow as tf

            tf.config.set_visible_devices([], "GPU")
        except Exception as e:
            print(f"could not hide the GPU from TensorFlow: {e}", file=sys.stderr)
    for name in names:
        t0 = time.perf_counter()
        try:
            result = run_part(name, cpu, out_dir)
        except Exception as e:  # fail soft: record, go on
            result = {"ok": False, "error": f"{type(e).__name__}: {e}"[:3000]}
        result["wall_s"] = time.perf_counter() - t0
        _part_file(out_dir, name).write_text(json.dumps(_clean(result), indent=1))
    return 0


def child_env(cpu: bool, compile_cache: str = "") -> dict[str, str]:
    from flanjax import xla_flags

    env = dict(os.environ)
    xla_flags.apply(env)
    if compile_cache:  # shared by the parts (the dry run's repeat the same tiny programs)
        env["JAX_COMPILATION_CACHE_DIR"] = compile_cache  # the flag wins over the environment
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if cpu:
        env["JAX_PLATFORMS"] = "cpu"
    else:
        env.setdefault("JAX_PLATFORMS", "cuda")
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90")
    return env


def _spawn(names: list[str], args, timeout: float) -> tuple[str, str]:
    """Runs `names` in a child process; (how it ended, its stderr tail)."""
    cmd = [sys.executable, "-m", "flanjax.perf.gpu_checks", "--child", ",".join(names),
           "--out", str(args.out)] + (["--cpu"] if args.cpu else [])  # fmt: skip
    log = args.out / f"log_{names[0]}.txt"
    with log.open("w") as f:
        env = child_env(args.cpu, args.compile_cache)
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=f,
                                start_new_session=True)  # fmt: skip
        try:
            rc = proc.wait(timeout=timeout)
            ended = "exited" if rc == 0 else f"exited with status {rc}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            ended = f"timed out after {timeout:.0f} s"
    return ended, log.read_text()[-2000:]


def run_all(args) -> dict[str, Any]:
    names = args.only or list(PARTS)
    groups = [[n] for n in names] if args.isolate else [names]
    deadline = time.monotonic() + args.budget_s
    parts: dict[str, Any] = {}
    for group in groups:
        left = deadline - time.monotonic()
        cap = sum(PARTS[n][0] for n in group) * (1 if not args.cpu else 4)
        if left < MIN_PART_S:
            parts |= {n: {"ok": False, "status": "SKIPPED", "error": "budget spent"} for n in group}
            continue
        t0 = time.perf_counter()
        ended, tail = _spawn(group, args, min(cap, left))
        for n in group:
            f = _part_file(args.out, n)
            if f.exists():
                parts[n] = json.loads(f.read_text())
                parts[n]["status"] = "pass" if parts[n].get("ok") else "FAIL"
            else:
                status = "TIMEOUT" if "timed out" in ended else "CRASHED"
                parts[n] = {"ok": False, "status": status, "error": f"process {ended}",
                            "log_tail": tail}  # fmt: skip
            parts[n]["cap_s"] = min(cap, left)
        print(f"{','.join(group)}: {ended} in {time.perf_counter() - t0:.0f} s; "
              + ", ".join(f"{n} {parts[n]['status']}" for n in group), flush=True)  # fmt: skip
    return parts


# ---------------------------------------------------------------- report


def _commit() -> str:
    if os.environ.get("FLANJAX_COMMIT"):
        return os.environ["FLANJAX_COMMIT"]
    try:
        cmd = ["git", "rev-parse", "--short", "HEAD"]
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _figures(name: str, r: dict[str, Any]) -> tuple[str, str]:
    """(what was measured, the goal and whether it was met) of one part's result."""
    if not r.get("ok") and "rel_errors" not in r and "step_time_s" not in r:
        return f"error: {str(r.get('error', ''))[:160]}".replace("|", "/"), "-"
    if name == "device":
        extra = f", cuDNN {r['cudnn_version']}" if r.get("cudnn_version") else ""
        smi = f"; {r['nvidia_smi']}" if r.get("nvidia_smi") else ""
        return f"{r['device_count']} x {r['device_kind']}, jax {r['jax']}{extra}{smi}", "-"
    if name.startswith("attention_"):
        e, t = r["rel_errors"], r["tolerances"]
        text = ", ".join(f"{k} {e[k]:.1e} (tol {t[k]:.0e})" for k in ("loss", "logits", "grads"))
        return (
            f"{r['impl']} vs xla, {r['dtype']}: rel. error {text}; {r['cudnn_calls']} cuDNN calls",
            "equal",
        )
    if name == "vs_transformers":
        return (f"`{r['command']}`: flanjax {r['flanjax_step_s']:.3f} s, transformers "
                f"{r['transformers_step_s']:.3f} s: {r['ratio_flanjax_over_transformers']:.2f}x",
                "<= 0.5x")  # fmt: skip
    mfu = f"MFU {100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "MFU -"
    variant = ", ".join(f"{k}={v}" for k, v in r["variant"].items())
    text = (f"{r['title']}, batch {r['batch_size']}, {r['dtype']}, {variant}: "
            f"{r['sequences_per_s']:.1f} seq/s, {r['tokens_per_s']:,.0f} tokens/s, {mfu}, "
            f"step {1e3 * r['step_time_s']:.1f} ms, peak {r['peak_memory_gib']:.1f} GiB, "
            f"compile {r['compile_s']:.0f} s, {r.get('cudnn_calls', 0)} cuDNN calls")  # fmt: skip
    met = {True: "met", False: "**not met**", None: ""}[r.get("goal_met")]
    return text, f"{r['goal']} {met}".strip()


def table(results: dict[str, Any]) -> str:
    device = results["parts"].get("device", {})
    kind = device.get("device_kind", "unknown device")
    lines = [
        f"`{results['command']}` ({results['mode']} mode), {results['date']}, commit "
        f"{results['commit']}, {kind}, {results['wall_s']:.0f} s in all",
        "",
        "| date | commit | device | check | figures | goal | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["parts"].items():
        figures, goal = _figures(name, r)
        lines.append(f"| {results['date']} | {results['commit']} | {kind} | {PARTS[name][1]} "
                     f"| {figures} | {goal} | {r['status']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="dry run: tiny shapes on CPU")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("gpu_checks_out"))
    p.add_argument("--only", action="append", choices=list(PARTS), help="run only these parts")
    p.add_argument("--budget_s", type=float, default=360.0,
                   help="time for all parts (with ~1-2 min of installing: 8 min)")  # fmt: skip
    p.add_argument("--isolate", type=int, choices=(0, 1), default=None,
                   help="one process per part (default: 1 on GPU, 0 with --cpu)")  # fmt: skip
    p.add_argument("--compile_cache", default=None,
                   help="compilation cache folder (default OUT/jax_cache; '': none)")  # fmt: skip
    p.add_argument("--requirements", action="store_true",
                   help="print the pinned requirements the GPU run installs; exit")  # fmt: skip
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.requirements:
        print("\n".join(requirements()))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        return child(args.child.split(","), args.cpu, args.out)
    if args.compile_cache is None:
        args.compile_cache = str((args.out / "jax_cache").resolve())
    args.isolate = (not args.cpu) if args.isolate is None else bool(args.isolate)
    for stale in args.out.glob("part_*.json"):
        stale.unlink()
    t0 = time.perf_counter()
    parts = run_all(args)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "commit": _commit(),
        "command": os.environ.get("FLANJAX_GPU_CHECKS_COMMAND")
        or "python -m flanjax.perf.gpu_checks " + " ".join(argv or sys.argv[1:]),
        "mode": "cpu" if args.cpu else "gpu",
        "budget_s": args.budget_s,
        "wall_s": time.perf_counter() - t0,
        "parts": parts,
        "ok": all(r.get("ok") for r in parts.values()),
    }
    (args.out / "results.json").write_text(json.dumps(_clean(results), indent=1))
    (args.out / "table.md").write_text(table(results))
    print(table(results))
    failed = [n for n, r in parts.items() if not r.get("ok")]
    print(f"results: {args.out / 'results.json'}, table: {args.out / 'table.md'}; "
          + (f"FAILED: {', '.join(failed)}" if failed else "all parts passed"))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
