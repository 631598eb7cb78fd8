"""Autoregressive decoding with a KV cache for both model families.

Sequences, per family:
  * encoder-decoder (T5): the encoder runs once per call; its cross-attention
    keys and values are computed once (`EncoderDecoder.init_cache`) and reused
    at every step. The decoder starts from token 0 at position 0.
  * decoder-only (Llama family): `inputs_BxL` is the prompt exactly as the model
    is to see it (any BOS included), right-padded, row b being
    `input_lengths_B[b]` long. One prefill pass writes the prompt's keys and
    values; generated token i of row b then sits at position len_b + i, so
    rows of different prompt lengths decode together without left-padding.

Outputs hold the generated tokens only: BxN, N = `max_new_tokens`, EOS kept
and 0 after it. Decoding stops early once every row has emitted EOS.

Token choice (`DecodeConfig`): greedy (temperature 0); sampling with a
temperature, then top-k, then top-p (nucleus) filtering, in Hugging Face's
order, from a seeded key (step i uses `fold_in(key, i)`, so equal seeds give
equal outputs); or beam search (`beam_size` > 1) as in T5X: each step extends
the alive beams by their 2N best continuations, keeps the N best that did not
end as alive and merges those that ended into the N best finished, scored by
log p / ((5 + n) / 6) ** alpha for n generated tokens (EOS included; alpha 0.6
is T5X's default; Hugging Face's `length_penalty` divides by n ** alpha
instead). Search ends when no alive beam can beat the worst finished one.

Shapes follow the legend in `models/layers.py`, plus N new tokens and K beams.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from flanjax.models import family_of

PAD_ID = 0
State = dict[str, Any]  # the decoding state: caches etc., batch first in every leaf


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """How to pick tokens. Hashable: a static argument of the jitted decoders."""

    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy (argmax)
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1: no nucleus filter
    beam_size: int = 1  # > 1: beam search (temperature, top_k, top_p unused)
    alpha: float = 0.6  # beam search length penalty exponent
    eos_id: int | None = 1  # None: never stop early

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens {self.max_new_tokens}: must be at least 1")
        if self.temperature < 0:
            raise ValueError(f"temperature {self.temperature}: must be >= 0 (0 is greedy)")
        if self.top_k < 0:
            raise ValueError(f"top_k {self.top_k}: must be >= 0 (0 disables it)")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p {self.top_p}: must be in (0, 1] (1 disables it)")
        if self.beam_size < 1:
            raise ValueError(f"beam_size {self.beam_size}: must be at least 1")


def lengths_of(tokens_BxL: jax.Array) -> jax.Array:
    """Lengths B of right-padded rows: 1 + the index of the last nonzero token."""
    index_BxL = jnp.arange(1, tokens_BxL.shape[1] + 1, dtype=jnp.int32)
    return jnp.max(jnp.where(tokens_BxL != PAD_ID, index_BxL, 0), axis=-1)


def brevity_penalty(alpha: float, length: jax.Array | int) -> jax.Array:
    """T5X's (GNMT's) length normalizer ((5 + n) / 6) ** alpha."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


# --- one step of either family ---------------------------------------------------------
def start(
    model: nnx.Module, inputs_BxL: jax.Array, input_lengths_B: jax.Array, max_new_tokens: int
) -> tuple[State, jax.Array]:
    """The decoding state and the logits BxV of the first new token."""
    if family_of(model).encoder_decoder:
        segments_BxL = (jnp.arange(inputs_BxL.shape[1]) < input_lengths_B[:, None]).astype(
            jnp.int32
        )
        encoded_BxLxD = model.encode(inputs_BxL, segments_BxL)
        cache = model.init_cache(encoded_BxLxD, segments_BxL, max_new_tokens)
        start_Bx1 = jnp.zeros((inputs_BxL.shape[0], 1), jnp.int32)
        logits_Bx1xV, cache = model.decode_step(start_Bx1, 0, cache)
        return {"cache": cache}, logits_Bx1xV[:, 0]
    b, p = inputs_BxL.shape
    cache = model.init_cache(b, p + max_new_tokens)
    positions_BxP = jnp.broadcast_to(jnp.arange(p), (b, p))
    hidden_BxPxD, cache = model.decode_step(inputs_BxL, positions_BxP, cache, input_lengths_B)
    last_B = jnp.maximum(input_lengths_B - 1, 0)
    last_Bx1xD = hidden_BxPxD[jnp.arange(b), last_B][:, None]
    logits_BxV = model.output_logits(last_Bx1xD)[:, 0]
    return {"cache": cache, "lengths": input_lengths_B}, logits_BxV


def step(
    model: nnx.Module, state: State, token_B: jax.Array, i: jax.Array
) -> tuple[jax.Array, State]:
    """Feeds generated token `i` (0-based) of every row; the logits BxV of token i+1."""
    if family_of(model).encoder_decoder:
        logits_Bx1xV, cache = model.decode_step(token_B[:, None], i + 1, state["cache"])
        return logits_Bx1xV[:, 0], {"cache": cache}
    positions_Bx1 = (state["lengths"] + i)[:, None]
    hidden_Bx1xD, cache = model.decode_step(
        token_B[:, None], positions_Bx1, state["cache"], state["lengths"]
    )
    return model.output_logits(hidden_Bx1xD)[:, 0], {**state, "cache": cache}


# --- token choice ---------------------------------------------------------------------
def filter_logits(logits_BxV: jax.Array, cfg: DecodeConfig) -> jax.Array:
    """Temperature-scaled logits, -inf outside the top-k and outside the top-p nucleus."""
    logits_BxV = logits_BxV.astype(jnp.float32) / cfg.temperature
    if cfg.top_k:
        kth_Bx1 = jax.lax.top_k(logits_BxV, min(cfg.top_k, logits_BxV.shape[-1]))[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
    if cfg.top_p < 1.0:
        # Keep the most probable tokens while the probability mass before them is
        # below top_p (so at least one); ties with the last kept logit stay too.
        sorted_BxV = -jnp.sort(-logits_BxV, axis=-1)
        probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
        before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
        keep_B = jnp.sum(before_BxV < cfg.top_p, axis=-1)
        cutoff_Bx1 = jnp.take_along_axis(sorted_BxV, keep_B[:, None] - 1, axis=-1)
        logits_BxV = jnp.where(logits_BxV < cutoff_Bx1, -jnp.inf, logits_BxV)
    return logits_BxV


def pick(logits_BxV: jax.Array, cfg: DecodeConfig, key: jax.Array) -> jax.Array:
    """The next token B: argmax at temperature 0, else a sample of the filtered logits."""
    if cfg.temperature == 0.0:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, filter_logits(logits_BxV, cfg)).astype(jnp.int32)


def _is_eos(token: jax.Array, eos_id: int | None) -> jax.Array:
    return jnp.zeros(token.shape, bool) if eos_id is None else token == eos_id


def _sample_loop(
    model: nnx.Module, state: State, logits_BxV: jax.Array, cfg: DecodeConfig, key: jax.Array
) -> jax.Array:
    """Greedy or sampled tokens BxN, PAD after EOS; stops once every row has ended."""
    b, n = logits_BxV.shape[0], cfg.max_new_tokens

    def cond(carry) -> jax.Array:
        i, _, done_B, _, _ = carry
        return (i < n) & ~jnp.all(done_B)

    def body(carry):
        i, out_BxN, done_B, logits_BxV, state = carry
        token_B = jnp.where(done_B, PAD_ID, pick(logits_BxV, cfg, jax.random.fold_in(key, i)))
        out_BxN = out_BxN.at[:, i].set(token_B)
        done_B = done_B | _is_eos(token_B, cfg.eos_id)
        logits_BxV, state = jax.lax.cond(
            (i + 1 < n) & ~jnp.all(done_B),
            lambda: step(model, state, token_B, i),
            lambda: (logits_BxV, state),
        )
        return i + 1, out_BxN, done_B, logits_BxV, state

    out_BxN = jnp.full((b, n), PAD_ID, jnp.int32)
    carry = (jnp.int32(0), out_BxN, jnp.zeros((b,), bool), logits_BxV, state)
    return jax.lax.while_loop(cond, body, carry)[1]


# --- beam search -----------------------------------------------------------------------
def _gather_beams(x_BxKx: jax.Array, index_BxM: jax.Array) -> jax.Array:
    """x[b, index[b, m]] for every b, m (beams are axis 1)."""
    return jax.vmap(lambda x, i: x[i])(x_BxKx, index_BxM)


def _beam_step(model, cfg: DecodeConfig, b: int, k: int, carry):
    """One beam-search step: extend, split ended from alive, merge finished, feed."""
    i, alive_BxKxN, alive_logp_BxK, fin_BxKxN, fin_score_BxK, logits_BKxV, state = carry
    v = logits_BKxV.shape[-1]
    logp_BxKxV = jax.nn.log_softmax(logits_BKxV.astype(jnp.float32)).reshape(b, k, v)
    cand_BxKV = (alive_logp_BxK[..., None] + logp_BxKxV).reshape(b, k * v)
    top_logp_BxM, top_index_BxM = jax.lax.top_k(cand_BxKV, 2 * k)  # M = 2K candidates
    parent_BxM, token_BxM = top_index_BxM // v, (top_index_BxM % v).astype(jnp.int32)
    seqs_BxMxN = _gather_beams(alive_BxKxN, parent_BxM).at[:, :, i].set(token_BxM)
    ended_BxM = _is_eos(token_BxM, cfg.eos_id)
    # At most K candidates end (one EOS per beam), so K alive ones always remain.
    alive_logp_BxK, keep_BxK = jax.lax.top_k(jnp.where(ended_BxM, -jnp.inf, top_logp_BxM), k)
    alive_BxKxN = _gather_beams(seqs_BxMxN, keep_BxK)
    ended_score_BxM = jnp.where(
        ended_BxM, top_logp_BxM / brevity_penalty(cfg.alpha, i + 1), -jnp.inf
    )
    fin_score_BxK, fin_keep_BxK = jax.lax.top_k(
        jnp.concatenate([fin_score_BxK, ended_score_BxM], axis=1), k
    )
    fin_BxKxN = _gather_beams(jnp.concatenate([fin_BxKxN, seqs_BxMxN], axis=1), fin_keep_BxK)
    parent_BK = jnp.arange(b)[:, None] * k + jnp.take_along_axis(parent_BxM, keep_BxK, 1)
    state = jax.tree.map(lambda x: x[parent_BK.reshape(-1)], state)
    token_BK = jnp.take_along_axis(token_BxM, keep_BxK, axis=1).reshape(-1)
    logits_BKxV, state = jax.lax.cond(
        i + 1 < cfg.max_new_tokens,
        lambda: step(model, state, token_BK, i),
        lambda: (logits_BKxV, state),
    )
    return i + 1, alive_BxKxN, alive_logp_BxK, fin_BxKxN, fin_score_BxK, logits_BKxV, state


def _beam_search(
    model: nnx.Module, state: State, logits_BxV: jax.Array, cfg: DecodeConfig
) -> tuple[jax.Array, jax.Array]:
    """The best sequence BxN per row (PAD after EOS) and its length-normalized score B."""
    b, k, n = logits_BxV.shape[0], cfg.beam_size, cfg.max_new_tokens
    state = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), state)
    first_logp_K = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)  # beams start identical
    carry = (
        jnp.int32(0),
        jnp.full((b, k, n), PAD_ID, jnp.int32),
        jnp.broadcast_to(first_logp_K, (b, k)),
        jnp.full((b, k, n), PAD_ID, jnp.int32),
        jnp.full((b, k), -jnp.inf),
        jnp.repeat(logits_BxV, k, axis=0),
        state,
    )

    def cond(carry) -> jax.Array:
        i, _, alive_logp_BxK, _, fin_score_BxK, _, _ = carry
        best_alive_B = alive_logp_BxK[:, 0] / brevity_penalty(cfg.alpha, n)
        worst_finished_B = fin_score_BxK[:, -1]  # -inf until K beams have finished
        return (i < n) & ~jnp.all(worst_finished_B > best_alive_B)

    _, alive_BxKxN, alive_logp_BxK, fin_BxKxN, fin_score_BxK, _, _ = jax.lax.while_loop(
        cond, functools.partial(_beam_step, model, cfg, b, k), carry
    )
    none_finished_B = jnp.isneginf(fin_score_BxK[:, 0])
    best_BxN = jnp.where(none_finished_B[:, None], alive_BxKxN[:, 0], fin_BxKxN[:, 0])
    alive_score_B = alive_logp_BxK[:, 0] / brevity_penalty(cfg.alpha, n)
    return best_BxN, jnp.where(none_finished_B, alive_score_B, fin_score_BxK[:, 0])


# --- entry points ---------------------------------------------------------------------
def output_lengths(tokens_BxN: jax.Array, eos_id: int | None) -> jax.Array:
    """Generated lengths B: up to and including the first EOS, else N."""
    n = tokens_BxN.shape[1]
    if eos_id is None:
        return jnp.full(tokens_BxN.shape[:1], n, jnp.int32)
    is_eos_BxN = tokens_BxN == eos_id
    return jnp.where(is_eos_BxN.any(-1), jnp.argmax(is_eos_BxN, -1) + 1, n).astype(jnp.int32)


@functools.partial(nnx.jit, static_argnames=("cfg",))
def generate(
    model: nnx.Module,
    inputs_BxL: jax.Array,
    input_lengths_B: jax.Array,
    key: jax.Array,
    cfg: DecodeConfig,
) -> tuple[jax.Array, jax.Array]:
    """New tokens BxN (PAD after EOS) and their lengths B (EOS included).

    `inputs_BxL`: the encoder inputs (T5) or the prompt (decoder-only), right-padded
    to lengths `input_lengths_B`. `key` seeds sampling; greedy and beam search
    ignore it.
    """
    state, logits_BxV = start(model, inputs_BxL, input_lengths_B, cfg.max_new_tokens)
    if cfg.beam_size > 1:
        tokens_BxN, _ = _beam_search(model, state, logits_BxV, cfg)
    else:
        tokens_BxN = _sample_loop(model, state, logits_BxV, cfg, key)
    return tokens_BxN, output_lengths(tokens_BxN, cfg.eos_id)


@functools.partial(nnx.jit, static_argnames=("max_new_tokens", "eos_id"))
def greedy_without_cache(
    model: nnx.Module,
    inputs_BxL: jax.Array,
    input_lengths_B: jax.Array,
    max_new_tokens: int,
    eos_id: int | None = 1,
) -> jax.Array:
    """Greedy tokens BxN recomputing the whole sequence at every step (no KV cache):
    the reference the cached decoders are tested and benchmarked against."""
    b, p = inputs_BxL.shape
    n = max_new_tokens
    if family_of(model).encoder_decoder:
        segments_BxL = (jnp.arange(p) < input_lengths_B[:, None]).astype(jnp.int32)
        encoded_BxLxD = model.encode(inputs_BxL, segments_BxL)
        buffer_BxS = jnp.zeros((b, n + 1), jnp.int32)  # decoder inputs: 0, then tokens

        def next_logits(buffer_BxS, i):
            logits_BxSxV = model.decode(encoded_BxLxD, segments_BxL, buffer_BxS)
            return logits_BxSxV[:, i], jnp.full((b,), i + 1)

    else:
        buffer_BxS = jnp.zeros((b, p + n), jnp.int32).at[:, :p].set(inputs_BxL)
        slots_S = jnp.arange(p + n)

        def next_logits(buffer_BxS, i):
            now_B = input_lengths_B + i  # tokens so far
            segments_BxS = (slots_S < now_B[:, None]).astype(jnp.int32)
            inputs_mask_BxS = slots_S < input_lengths_B[:, None]
            logits_BxSxV = model(buffer_BxS, segments_BxS, None, inputs_mask_BxS)
            return logits_BxSxV[jnp.arange(b), now_B - 1], now_B

    def body(i, carry):
        buffer_BxS, out_BxN, done_B = carry
        logits_BxV, write_B = next_logits(buffer_BxS, i)
        token_B = jnp.where(done_B, PAD_ID, jnp.argmax(logits_BxV, -1).astype(jnp.int32))
        buffer_BxS = buffer_BxS.at[jnp.arange(b), write_B].set(token_B)
        out_BxN = out_BxN.at[:, i].set(token_B)
        return buffer_BxS, out_BxN, done_B | _is_eos(token_B, eos_id)

    init = (buffer_BxS, jnp.zeros((b, n), jnp.int32), jnp.zeros((b,), bool))
    return jax.lax.fori_loop(0, n, body, init)[1]
