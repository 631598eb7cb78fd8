"""Train-step benchmark: compile time, median step time, throughput, FLOPs and MFU.

Batches are synthetic and fully packed (or unpacked, one example per row, for
comparisons with frameworks that do not pack): each row of the encoder-decoder
holds `examples_per_row` examples whose input and target lengths split the
feature lengths exactly, so every position is a real token.

FLOPs and MFU: `flops_per_step` is flanjax's analytic count (flanjax/flops.py:
matmuls of forward and backward, causal factor 1.0, i.e. the full score matrix
that the model computes); MFU divides it by the median step time and the dense
bf16 peak of all devices (`flops.PEAK_FLOPS`; NaN on CPUs, which have none).
`compiler_flops_per_step` is XLA's own count (`cost_analysis()` of the compiled
step, per device, times the device count), which also holds the elementwise work,
the loss and the optimizer update; the two agree within a few percent at real
sizes (tests/test_benchmarking.py checks a small model). `cudnn_calls` counts cuDNN's
fused-attention calls in the compiled step (0 unless `attention_impl="cudnn"` on a GPU).
"""

from __future__ import annotations

import dataclasses
import math
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from flanjax import flops as flops_lib
from flanjax import optimizers, partitioning, train_state, trainer
from flanjax.data import batch as bk
from flanjax.data.pipeline import DataConfig
from flanjax.models import ModelConfig, family_of

CUDNN_ATTENTION = "__cudnn$fmha"  # custom-call target prefix of cuDNN's fused attention


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    model: ModelConfig
    feature_lengths: Mapping[str, int]  # {"inputs", "targets"}; decoder-only: {"targets"}
    batch_size: int
    steps: int = 10
    warmup_steps: int = 2
    pack: bool = True
    examples_per_row: int = 4  # when packed
    optimizer: optimizers.OptimizerConfig = optimizers.OptimizerConfig()
    mesh: partitioning.MeshConfig = partitioning.MeshConfig()
    seed: int = 0


def _segments(length: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Segment ids 1..n splitting `length` positions into n random non-empty parts."""
    cuts = np.sort(rng.choice(np.arange(1, length), n - 1, replace=False)) if n > 1 else []
    sizes = np.diff([0, *cuts, length])
    return np.repeat(np.arange(1, n + 1), sizes).astype(np.int32)


def _positions(seg: np.ndarray) -> np.ndarray:
    starts = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
    pos = np.arange(len(seg)) - np.repeat(starts, np.diff(np.r_[starts, len(seg)]))
    return pos.astype(np.int32)


def synthetic_batch(cfg: BenchConfig) -> dict[str, np.ndarray]:
    """A batch in the feature converter's layout, every position a real token."""
    rng = np.random.default_rng(cfg.seed)
    vocab = cfg.model.vocab_size
    n = cfg.examples_per_row if cfg.pack else 1
    keys = family_of(cfg.model).task_features
    rows: dict[str, list] = {}
    for _ in range(cfg.batch_size):
        for key in keys:
            length = cfg.feature_lengths[key]
            seg = _segments(length, n, rng)
            tok = rng.integers(2, vocab, length, dtype=np.int32)
            if key == "inputs":
                rows.setdefault(bk.ENCODER_SEGMENT_IDS, []).append(seg)
                rows.setdefault(bk.ENCODER_POSITIONS, []).append(_positions(seg))
                rows.setdefault(bk.ENCODER_INPUT_TOKENS, []).append(tok)
            else:
                first = np.r_[True, np.diff(seg) != 0]
                rows.setdefault(bk.DECODER_SEGMENT_IDS, []).append(seg)
                rows.setdefault(bk.DECODER_POSITIONS, []).append(_positions(seg))
                rows.setdefault(bk.DECODER_TARGET_TOKENS, []).append(tok)
                rows.setdefault(bk.DECODER_INPUT_TOKENS, []).append(
                    np.where(first, 0, np.roll(tok, 1))
                )
                rows.setdefault(bk.DECODER_LOSS_WEIGHTS, []).append(np.ones(length, np.int32))
    batch = {k: np.stack(v) for k, v in rows.items()}
    if not cfg.pack:  # unpacked rows carry no segment ids or positions
        packing = (*bk.SEGMENT_KEYS, bk.ENCODER_POSITIONS, bk.DECODER_POSITIONS)
        batch = {k: v for k, v in batch.items() if k not in packing}
    return batch


def _peak_memory_bytes(device: jax.Device) -> int:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # host RSS on CPU


def _setup(cfg: BenchConfig) -> dict[str, Any]:
    """The mesh, the compiled train step, its state and batch, and the compile time."""
    tcfg = trainer.TrainConfig(
        model_dir="", data=DataConfig("bench", dict(cfg.feature_lengths), cfg.batch_size),
        model=cfg.model, train_steps=0, optimizer=cfg.optimizer, mesh=cfg.mesh,
    )  # fmt: skip
    sizes = (cfg.mesh.replica, cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)
    fixed = -1 not in sizes  # a fully given mesh runs on the first devices it needs
    mesh = partitioning.make_mesh(cfg.mesh, jax.devices()[: math.prod(sizes)] if fixed else None)
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    batch_np = synthetic_batch(cfg)
    with jax.set_mesh(mesh):
        state, shardings = train_state.init_state(cfg.model, tx, mesh, cfg.mesh.rules, cfg.seed)
        step = trainer.compile_train_step(tcfg, tx, schedule, mesh, shardings)
        batch = partitioning.host_local_batch(mesh, cfg.mesh.rules, batch_np)
        t0 = time.perf_counter()
        compiled = step.lower(state, batch).compile()
    return {"mesh": mesh, "compiled": compiled, "state": state, "batch": batch,
            "batch_np": batch_np, "compile_s": time.perf_counter() - t0}  # fmt: skip


def stepper(cfg: BenchConfig) -> Callable[[], float]:
    """A function that runs one more train step to completion and returns its seconds
    (for paired, interleaved comparisons with another framework)."""
    s = _setup(cfg)

    def one_step() -> float:
        t0 = time.perf_counter()
        with jax.set_mesh(s["mesh"]):
            s["state"], metrics = s["compiled"](s["state"], s["batch"])
            jax.block_until_ready(metrics["loss"])
        return time.perf_counter() - t0

    return one_step


def run(cfg: BenchConfig) -> dict[str, float | str]:
    """Compiles and times the real train step; returns one JSON-able row."""
    s = _setup(cfg)
    mesh, compiled, state, batch, batch_np = (s[k] for k in ("mesh", "compiled", "state",
                                                             "batch", "batch_np"))  # fmt: skip
    compile_s = s["compile_s"]
    compiler_flops = float((compiled.cost_analysis() or {}).get("flops", 0.0))
    cudnn_calls = compiled.as_text().count(CUDNN_ATTENTION)
    times = []
    with jax.set_mesh(mesh):
        for i in range(cfg.warmup_steps + cfg.steps):
            t0 = time.perf_counter()
            state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics["loss"])
            if i >= cfg.warmup_steps:
                times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    segments = batch_np.get(bk.DECODER_SEGMENT_IDS, [])
    examples = sum(int(s.max()) for s in segments) or cfg.batch_size
    tokens = bk.token_positions(batch_np)
    nonpad = round(bk.nonpadding_fraction(batch_np) * tokens)
    device = jax.devices()[0]
    flops = flops_lib.batch_flops(cfg.model, {k: v.shape for k, v in batch_np.items()})
    peak = flops_lib.peak_flops(device)
    return {
        "device": f"{mesh.size} x {device.device_kind}",
        "step_time_s": step_s,
        "examples_per_s": examples / step_s,
        "sequences_per_s": cfg.batch_size / step_s,
        "tokens_per_s": tokens / step_s,
        "nonpad_tokens_per_s": nonpad / step_s,
        "flops_per_step": flops,
        "compiler_flops_per_step": compiler_flops * mesh.size,
        "tflops_per_s": flops / step_s / 1e12,
        "mfu": flops / step_s / (peak * mesh.size) if peak else float("nan"),
        "peak_memory_gib": _peak_memory_bytes(device) / 2**30,
        "compile_s": compile_s,
        "cudnn_calls": cudnn_calls,
        "final_loss": float(metrics["loss"]),
    }
