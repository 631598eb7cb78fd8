"""XLA flags flanjax sets for performance, before the first computation initializes a backend.

XLA reads `XLA_FLAGS` once, when JAX creates its first backend, so `apply()` must run
before anything touches a device; the `flanjax` entry point calls it first thing.
Flags a user already put in `XLA_FLAGS` win (a flag is only added when its name is
absent), and `FLANJAX_XLA_FLAGS=0` turns the whole set off.

GPU (they only act on GPU backends; the CPU and TPU compilers ignore them): the
latency-hiding scheduler overlaps collectives with compute; pipelined all-gather,
reduce-scatter and all-reduce let FSDP's weight gathers and gradient reductions run
a layer ahead; combining thresholds batch small collectives into large ones; the
highest-priority stream keeps collectives off the compute stream's queue.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

GPU_FLAGS: tuple[str, ...] = (
    "--xla_gpu_enable_latency_hiding_scheduler=true",
    "--xla_gpu_enable_highest_priority_async_stream=true",
    "--xla_gpu_enable_pipelined_all_gather=true",
    "--xla_gpu_enable_pipelined_reduce_scatter=true",
    "--xla_gpu_enable_pipelined_all_reduce=true",
    "--xla_gpu_enable_while_loop_double_buffering=true",
    "--xla_gpu_all_reduce_combine_threshold_bytes=134217728",
    "--xla_gpu_all_gather_combine_threshold_bytes=134217728",
    "--xla_gpu_reduce_scatter_combine_threshold_bytes=134217728",
)


def _name(flag: str) -> str:
    return flag.split("=", 1)[0]


def merged(existing: str, flags: tuple[str, ...] = GPU_FLAGS) -> str:
    """`existing` plus each of `flags` whose name it does not already set."""
    have = {_name(f) for f in existing.split()}
    added = [f for f in flags if _name(f) not in have]
    return " ".join([*existing.split(), *added])


def apply(env: MutableMapping[str, str] | None = None) -> str:
    """Adds flanjax's flags to `env["XLA_FLAGS"]` (default os.environ); returns the value."""
    env = os.environ if env is None else env
    if env.get("FLANJAX_XLA_FLAGS", "1") == "0":
        return env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = merged(env.get("XLA_FLAGS", ""))
    return env["XLA_FLAGS"]
