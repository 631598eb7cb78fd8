"""The training run's throughput metrics: tokens per second, the non-padding fraction
of the batches, model FLOPs per second and, on a device with a known peak, MFU."""

from __future__ import annotations

import time

import numpy as np

from flanjax import flops
from flanjax.data import batch as batch_keys


class Throughput:
    """Tokens/s (input and target positions, padding included), the non-padding
    fraction, and MFU (with a known device peak) over the steps since the last read."""

    def __init__(self, step_flops: float | None = None) -> None:
        self.step_flops = step_flops
        self.read_and_reset()

    def add(self, local_batch: dict[str, np.ndarray], num_shards: int) -> None:
        self.tokens += num_shards * batch_keys.token_positions(local_batch)
        self.nonpad += batch_keys.nonpadding_fraction(local_batch)
        self.steps += 1

    def read_and_reset(self) -> dict[str, float]:
        now = time.perf_counter()
        out = {}
        if getattr(self, "steps", 0):
            seconds = now - self.t0
            out = {
                "tokens_per_sec": self.tokens / seconds,
                "nonpadding_fraction": self.nonpad / self.steps,
            }
            if self.step_flops:
                flops_per_sec = self.step_flops * self.steps / seconds
                out["model_tflops_per_sec"] = flops_per_sec / 1e12
                utilization = flops.mfu(flops_per_sec)
                if utilization is not None:
                    out["mfu"] = utilization
        self.tokens, self.nonpad, self.steps, self.t0 = 0, 0.0, 0, now
        return out
