"""Rank classification throughput on an encoder-decoder: flanjax's batched scoring
(the encoder once per example, its cross-attention keys/values repeated over the
C options) against the naive way (every option re-encodes its example's inputs).

Both are jitted and scored on the same random batch; the script checks that they
agree, then times each (compile excluded) and prints examples/s. Runs on CPU:

    .venv/bin/python scripts/bench_rank_classification.py                # T5 v1.1 small shapes
    .venv/bin/python scripts/bench_rank_classification.py --num_choices 2 --input_length 64
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flanjax import inference
from flanjax.models import T5Config, create_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--num_heads", type=int, default=6)
    p.add_argument("--head_dim", type=int, default=64)
    p.add_argument("--d_ff", type=int, default=1024)
    p.add_argument("--num_layers", type=int, default=8, help="encoder and decoder layers each")
    p.add_argument("--vocab_size", type=int, default=32128)
    p.add_argument("--batch_size", type=int, default=8, help="examples per call")
    p.add_argument("--num_choices", type=int, default=4)
    p.add_argument("--input_length", type=int, default=256)
    p.add_argument("--choice_length", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    return p.parse_args()


def batch(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [B, L] (every row full, EOS last) and choices [B * C, T] of 1..T tokens."""
    rng = np.random.default_rng(0)
    b, c, t = args.batch_size, args.num_choices, args.choice_length
    inputs = rng.integers(2, args.vocab_size, (b, args.input_length), dtype=np.int32)
    inputs[:, -1] = 1
    choices = rng.integers(2, args.vocab_size, (b * c, t), dtype=np.int32)
    lengths = rng.integers(1, t + 1, b * c)
    choices[np.arange(t) >= lengths[:, None]] = 0
    choices[np.arange(b * c), lengths - 1] = 1
    return inputs, choices


@functools.partial(nnx.jit, static_argnames=("num_choices",))
def naive(model: nnx.Module, inputs_BxL, choices_BCxT, num_choices: int) -> jax.Array:
    """One full forward pass per (example, option): the encoder runs C times."""
    repeated_BCxL = jnp.repeat(inputs_BxL, num_choices, axis=0)
    return inference.score(model, repeated_BCxL, choices_BCxT).reshape(-1, num_choices)


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    out = np.asarray(jax.block_until_ready(fn()))  # compile and warm up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out


def main() -> None:
    args = parse_args()
    cfg = T5Config(
        vocab_size=args.vocab_size, d_model=args.d_model, num_heads=args.num_heads,
        head_dim=args.head_dim, d_ff=args.d_ff, num_encoder_layers=args.num_layers,
        num_decoder_layers=args.num_layers,
    )  # fmt: skip
    with nnx.use_eager_sharding(False):
        model = create_model(cfg, nnx.Rngs(params=0))
    inputs, choices = batch(args)
    c = args.num_choices
    t_ours, ours = timed(lambda: inference.score_choices(model, inputs, choices, c), args.repeats)
    t_naive, ref = timed(lambda: naive(model, inputs, choices, c), args.repeats)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)
    ours_eps, naive_eps = args.batch_size / t_ours, args.batch_size / t_naive
    print(json.dumps({
        "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(), **vars(args),
        "flanjax_examples_per_s": round(ours_eps, 2), "naive_examples_per_s": round(naive_eps, 2),
        "speedup": round(ours_eps / naive_eps, 2),
    }))  # fmt: skip
    print(
        f"rank classification, {args.batch_size} examples x {c} options, inputs "
        f"{args.input_length} tokens: flanjax {ours_eps:.1f} examples/s, naive (re-encoding "
        f"per option) {naive_eps:.1f} examples/s, {ours_eps / naive_eps:.2f}x"
    )


if __name__ == "__main__":
    main()
