"""Scoring, rank classification and greedy decoding for the encoder-decoder.

Rank classification runs the encoder once per example and reuses its states
for every answer choice: the encoder states BxLxD are repeated C times to score
B*C (example, choice) pairs through the decoder only. Greedy decoding also runs
the encoder once, then extends the target one token per step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

EOS_ID = 1


def shift_right(targets_BxT: jax.Array) -> jax.Array:
    """Decoder inputs: targets shifted right by one, starting with 0."""
    return jnp.pad(targets_BxT, ((0, 0), (1, 0)))[:, :-1]


def target_log_likelihood(logits_BxTxV: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Summed log-probability of the non-padding target tokens, per row."""
    logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
    tok_BxT = jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(targets_BxT > 0, tok_BxT, 0.0), axis=-1)


@nnx.jit
def score(model: nnx.Module, inputs_BxL: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """log p(targets | inputs) per example (natural log, EOS included if present)."""
    logits = model(inputs_BxL, shift_right(targets_BxT))
    return target_log_likelihood(logits, targets_BxT)


@functools.partial(nnx.jit, static_argnames=("num_choices",))
def score_choices(
    model: nnx.Module, inputs_BxL: jax.Array, choices_BCxT: jax.Array, num_choices: int
) -> jax.Array:
    """log-likelihoods BxC of C choices per example, encoding each example once.

    `choices_BCxT` holds example 0's C choices, then example 1's, and so on;
    padding choices (all zeros) score 0 and are to be masked by the caller.
    """
    enc_segments_BxL = (inputs_BxL != 0).astype(jnp.int32)
    encoded_BxLxD = model.encode(inputs_BxL, enc_segments_BxL)
    encoded_BCxLxD = jnp.repeat(encoded_BxLxD, num_choices, axis=0)
    segments_BCxL = jnp.repeat(enc_segments_BxL, num_choices, axis=0)
    logits = model.decode(encoded_BCxLxD, segments_BCxL, shift_right(choices_BCxT))
    return target_log_likelihood(logits, choices_BCxT).reshape(-1, num_choices)


@functools.partial(nnx.jit, static_argnames=("max_length",))
def greedy_decode(model: nnx.Module, inputs_BxL: jax.Array, max_length: int) -> jax.Array:
    """Greedy outputs BxT (0 after the first EOS); the encoder runs once.

    Each step recomputes the decoder over the whole (causally masked) prefix
    buffer, which is exact and, at the short target lengths of evaluation,
    cheap.
    """
    b = inputs_BxL.shape[0]
    enc_segments_BxL = (inputs_BxL != 0).astype(jnp.int32)
    encoded_BxLxD = model.encode(inputs_BxL, enc_segments_BxL)

    def body(i, carry):
        out_BxT, done_B = carry
        logits_BxTxV = model.decode(encoded_BxLxD, enc_segments_BxL, shift_right(out_BxT))
        next_B = jnp.argmax(logits_BxTxV[:, i], axis=-1).astype(jnp.int32)
        next_B = jnp.where(done_B, 0, next_B)
        out_BxT = out_BxT.at[:, i].set(next_B)
        return out_BxT, done_B | (next_B == EOS_ID)

    init = (jnp.zeros((b, max_length), jnp.int32), jnp.zeros((b,), bool))
    return jax.lax.fori_loop(0, max_length, body, init)[0]


def pad_rows(rows: list[list[int]], length: int) -> np.ndarray:
    """Right-pads (or truncates) token lists to a [len(rows), length] int32 array."""
    out = np.zeros((len(rows), length), np.int32)
    for i, r in enumerate(rows):
        r = r[:length]
        out[i, : len(r)] = r
    return out
