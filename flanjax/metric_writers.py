"""Training metrics: JSON lines, TensorBoard scalars, and a one-line live display."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping

import tensorflow as tf


class MetricWriter:
    """Appends metrics to `<dir>/<name>.jsonl` and TensorBoard `<dir>/tensorboard/<name>`.

    Only process 0 writes (pass `enabled=False` elsewhere). Appending keeps the
    history of earlier runs in the same MODEL_DIR after a resume.
    """

    def __init__(self, model_dir: str, name: str = "train", enabled: bool = True):
        self.enabled = enabled
        self.jsonl_path = os.path.join(model_dir, f"{name}_metrics.jsonl")
        self.tb_dir = os.path.join(model_dir, "tensorboard", name)
        if enabled:
            os.makedirs(model_dir, exist_ok=True)
            self._tb = tf.summary.create_file_writer(self.tb_dir)

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        with self._tb.as_default():
            for k, v in metrics.items():
                tf.summary.scalar(k, float(v), step=int(step))
        self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()


_SHOWN = (
    ("loss", "{:.4f}"),
    ("accuracy", "{:.3f}"),
    ("learning_rate", "{:.2e}"),
    ("tokens_per_sec", "{:,.0f}"),
    ("nonpadding_fraction", "{:.2f}"),
)


class Progress:
    """A single status line rewritten in place on a terminal, plain lines otherwise."""

    def __init__(self, total_steps: int, enabled: bool = True, stream=sys.stderr):
        self.total, self.enabled, self.stream = total_steps, enabled, stream
        self.tty = stream.isatty()
        self.t0 = time.time()

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        parts = [f"step {step}/{self.total}"]
        for key, fmt in _SHOWN:
            if key in metrics:
                parts.append(f"{key.replace('_per_sec', '/s')} " + fmt.format(metrics[key]))
        parts.append(f"{time.time() - self.t0:.0f}s")
        line = " | ".join(parts)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
