"""Paired timing of two train steps, each in its own process, alternating one step at a time.

Running two frameworks in one process, one step each in turn, slows whichever runs
second: the first one's worker threads keep spinning for a while after its step (torch's
OpenMP pool, XLA's Eigen pool) and take cores from the second. Here each side is a
worker process that blocks on its stdin between steps; the parent asks one worker for a
step, waits `settle_s` so the other's threads have gone idle, then asks the other, and
swaps which side goes first every round so neither always follows the other. Both sides
see the same minutes of machine load, so the per-round ratio is what to read on a
machine whose speed drifts.

A worker is any command that ends in `serve(one_step)`; the protocol is one line each
way: the parent writes `step`, the worker answers `PAIRED_STEP <seconds>`. Other output
on the worker's stdout is passed through to stderr.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

_READY, _STEP = "PAIRED_READY", "PAIRED_STEP"


def serve(one_step: Callable[[], float]) -> None:
    """Worker side: announce readiness, then run one step per `step` line on stdin and
    answer its seconds, until stdin closes."""
    print(_READY, flush=True)
    for line in sys.stdin:
        if line.strip() == "step":
            print(f"{_STEP} {one_step():.6f}", flush=True)


class _Worker:
    def __init__(self, name: str, argv: Sequence[str]):
        self.name = name
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._expect(_READY)

    def _expect(self, tag: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(tag):
                return line[len(tag) :].strip()
            sys.stderr.write(f"[{self.name}] {line}")
        code = self.proc.wait()
        raise RuntimeError(f"paired worker {self.name!r} exited with code {code} before {tag}")

    def step(self) -> float:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return float(self._expect(_STEP))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def alternate(
    workers: dict[str, Sequence[str]],
    rounds: int,
    warmup: int = 2,
    settle_s: float = 0.5,
    lead_in: int = 0,
) -> dict[str, list[float]]:
    """Starts the two worker commands (name -> argv, started one after the other so they
    do not compile at once), runs `warmup` untimed steps of each, then `rounds` rounds
    of one timed step each, the order swapped every round; `lead_in` untimed steps
    open each turn, so that the timed step follows a step of its own side. (On CPU-2 a
    flanjax step right after a torch step took 0.4-1.0 s longer, the idle torch process
    using no CPU meanwhile; one lead-in step removed that in one run and not in a
    later one: read the rounds of each order apart, as `summary`'s lists allow.)
    Returns name -> step seconds."""
    if len(workers) != 2:
        raise ValueError(f"paired timing needs exactly two workers, got {sorted(workers)}")
    started: list[_Worker] = []
    try:
        for name, argv in workers.items():
            started.append(_Worker(name, argv))
        for _ in range(warmup):
            for w in started:
                w.step()
        times: dict[str, list[float]] = {w.name: [] for w in started}
        for r in range(rounds):
            for w in started if r % 2 == 0 else started[::-1]:
                time.sleep(settle_s)
                for _ in range(lead_in):
                    w.step()
                times[w.name].append(w.step())
        return times
    finally:
        for w in started:
            w.close()


def summary(times: dict[str, list[float]], numerator: str, denominator: str) -> dict:
    """Medians of each side and the median of the per-round ratios numerator/denominator."""
    num, den = times[numerator], times[denominator]
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    return {
        "rounds": len(ratios),
        f"{numerator}_step_s": round(statistics.median(num), 3),
        f"{denominator}_step_s": round(statistics.median(den), 3),
        f"median_ratio_{numerator}_over_{denominator}": round(statistics.median(ratios), 3),
        "ratios": [round(x, 3) for x in ratios],
        f"{numerator}_steps_s": [round(x, 3) for x in num],
        f"{denominator}_steps_s": [round(x, 3) for x in den],
    }


SIDES = ("flanjax", "transformers")


def add_flags(p: argparse.ArgumentParser, rounds: int = 0) -> None:
    """The flags of a two-sided benchmark script that uses `compare`."""
    p.add_argument(
        "--paired",
        type=int,
        default=rounds,
        help="ROUNDS: one step of each side per round, each side in its own process",
    )
    p.add_argument(
        "--lead_in",
        type=int,
        default=1,
        help="paired: untimed steps of a side before each timed one",
    )
    p.add_argument(
        "--settle", type=float, default=0.5, help="paired: seconds of idle machine before each step"
    )
    p.add_argument("--worker", choices=SIDES, default="", help=argparse.SUPPRESS)  # fmt: skip


def compare(args: argparse.Namespace, worker_argv: Callable[[str], list[str]]) -> dict:
    """flanjax against transformers, `worker_argv(side)` the command of each side's
    worker (ending in `--worker SIDE`), with `add_flags`' settings: `summary`'s row."""
    times = alternate(
        {side: worker_argv(side) for side in SIDES},
        rounds=args.paired, warmup=args.warmup, settle_s=args.settle, lead_in=args.lead_in,
    )  # fmt: skip
    return summary(times, *SIDES)
