"""Scoring, rank classification and greedy decoding for both model families.

Arrays are right-padded with 0; a row's length is 1 + the index of its last
nonzero token unless lengths are passed (needed only when a real sequence ends
in token 0, e.g. a Llama-family tokenizer's id 0).

Encoder-decoder (T5): `inputs` go to the encoder and `targets` are scored
through the decoder (shifted right, 0 first). Rank classification runs the
encoder once per example and computes its cross-attention keys and values once,
repeating them over the C answer choices for the decoder's single pass.

Decoder-only: `inputs` is the prompt exactly as the model is to see it (any BOS
included) and `targets` its continuation; only the continuation is scored, each
token given the prompt and the continuation before it. The prompt must be
non-empty. Rank classification runs the prompt once through the KV cache
(prefill), repeats the cache C times and runs the C choices against it, so the
shared prompt is computed once.

Log-likelihoods are natural-log sums over the target tokens given. EOS is
whatever the caller put in the targets: the evaluator and `encode_example`
append EOS for T5 (as seqio's features do); for decoder-only models converted
from Hugging Face, `encode_example` adds only what the tokenizer itself appends
(nothing for GPT-2 / SmolLM2 / Llama-3 style tokenizers).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import seqio
from flax import nnx

from flanjax import decoding
from flanjax.decoding import lengths_of
from flanjax.models import family_of

EOS_ID = 1


def shift_right(targets_BxT: jax.Array) -> jax.Array:
    """Decoder inputs: targets shifted right by one, starting with 0."""
    return jnp.pad(targets_BxT, ((0, 0), (1, 0)))[:, :-1]


def target_log_likelihood(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, lengths_B: jax.Array | None = None
) -> jax.Array:
    """Summed log-probability per row of the first `lengths_B` target tokens
    (default: the non-padding ones)."""
    logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
    tok_BxT = jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    if lengths_B is None:
        lengths_B = lengths_of(targets_BxT)
    real_BxT = jnp.arange(targets_BxT.shape[1]) < lengths_B[:, None]
    return jnp.sum(jnp.where(real_BxT, tok_BxT, 0.0), axis=-1)


def _encoder_segments(inputs_BxL: jax.Array, lengths_B: jax.Array | None) -> jax.Array:
    if lengths_B is None:
        return (inputs_BxL != 0).astype(jnp.int32)
    return (jnp.arange(inputs_BxL.shape[1]) < lengths_B[:, None]).astype(jnp.int32)


def _decoder_only_choices(
    model: nnx.Module,
    prompt_BxP: jax.Array,
    choices_BCxT: jax.Array,
    num_choices: int,
    prompt_lengths_B: jax.Array,
    choice_lengths_BC: jax.Array,
) -> jax.Array:
    """log p(choice | prompt) BxC: prefill once, then all choices against the cache."""
    b, p = prompt_BxP.shape
    t = choices_BCxT.shape[1]
    cache = model.init_cache(b, p + t)
    positions_BxP = jnp.broadcast_to(jnp.arange(p), (b, p))
    hidden_BxPxD, cache = model.decode_step(prompt_BxP, positions_BxP, cache, prompt_lengths_B)
    last_Bx1xD = hidden_BxPxD[jnp.arange(b), jnp.maximum(prompt_lengths_B - 1, 0)][:, None]
    repeat = functools.partial(jnp.repeat, repeats=num_choices, axis=0)
    logits_BCx1xV = repeat(model.output_logits(last_Bx1xD))  # predicts each choice's token 0
    if t > 1:  # choice tokens 0..T-2 predict tokens 1..T-1
        lengths_BC = repeat(prompt_lengths_B)
        positions_BCxT = lengths_BC[:, None] + jnp.arange(t - 1)
        hidden_BCxTxD, _ = model.decode_step(
            choices_BCxT[:, :-1], positions_BCxT, jax.tree.map(repeat, cache), lengths_BC
        )
        logits_BCxTxV = jnp.concatenate([logits_BCx1xV, model.output_logits(hidden_BCxTxD)], axis=1)
    else:
        logits_BCxTxV = logits_BCx1xV
    ll_BC = target_log_likelihood(logits_BCxTxV, choices_BCxT, choice_lengths_BC)
    return ll_BC.reshape(b, num_choices)


@functools.partial(nnx.jit, static_argnames=("num_choices",))
def score_choices(
    model: nnx.Module,
    inputs_BxL: jax.Array,
    choices_BCxT: jax.Array,
    num_choices: int,
    input_lengths_B: jax.Array | None = None,
    choice_lengths_BC: jax.Array | None = None,
) -> jax.Array:
    """log-likelihoods BxC of C choices per example, the inputs computed once.

    `choices_BCxT` holds example 0's C choices, then example 1's, and so on;
    padding choices (all zeros) score 0 and are to be masked by the caller.
    """
    if choice_lengths_BC is None:
        choice_lengths_BC = lengths_of(choices_BCxT)
    if not family_of(model).encoder_decoder:
        if input_lengths_B is None:
            input_lengths_B = lengths_of(inputs_BxL)
        return _decoder_only_choices(
            model, inputs_BxL, choices_BCxT, num_choices, input_lengths_B, choice_lengths_BC
        )
    segments_BxL = _encoder_segments(inputs_BxL, input_lengths_B)
    encoded_BxLxD = model.encode(inputs_BxL, segments_BxL)
    cache = model.init_cache(encoded_BxLxD, segments_BxL, choices_BCxT.shape[1])
    cache = jax.tree.map(functools.partial(jnp.repeat, repeats=num_choices, axis=0), cache)
    logits_BCxTxV, _ = model.decode_step(shift_right(choices_BCxT), 0, cache)
    ll_BC = target_log_likelihood(logits_BCxTxV, choices_BCxT, choice_lengths_BC)
    return ll_BC.reshape(-1, num_choices)


@nnx.jit
def score(
    model: nnx.Module,
    inputs_BxL: jax.Array,
    targets_BxT: jax.Array,
    input_lengths_B: jax.Array | None = None,
    target_lengths_B: jax.Array | None = None,
) -> jax.Array:
    """log p(targets | inputs) per example (natural log, over the target tokens given)."""
    if not family_of(model).encoder_decoder:
        if input_lengths_B is None:
            input_lengths_B = lengths_of(inputs_BxL)
        if target_lengths_B is None:
            target_lengths_B = lengths_of(targets_BxT)
        ll_Bx1 = _decoder_only_choices(
            model, inputs_BxL, targets_BxT, 1, input_lengths_B, target_lengths_B
        )
        return ll_Bx1[:, 0]
    segments_BxL = _encoder_segments(inputs_BxL, input_lengths_B)
    logits_BxTxV = model(inputs_BxL, shift_right(targets_BxT), segments_BxL)
    return target_log_likelihood(logits_BxTxV, targets_BxT, target_lengths_B)


def greedy_decode(
    model: nnx.Module,
    inputs_BxL: jax.Array,
    max_length: int,
    eos_id: int = EOS_ID,
    input_lengths_B: jax.Array | None = None,
) -> jax.Array:
    """Greedy outputs BxT (EOS kept, 0 after it), with the KV cache; the encoder
    (or the prompt) runs once. For decoder-only models the outputs are the new
    tokens only."""
    inputs_BxL = jnp.asarray(inputs_BxL)
    if input_lengths_B is None:
        input_lengths_B = lengths_of(inputs_BxL)
    cfg = decoding.DecodeConfig(max_new_tokens=max_length, eos_id=eos_id)
    tokens_BxT, _ = decoding.generate(model, inputs_BxL, input_lengths_B, jax.random.key(0), cfg)
    return tokens_BxT


def pad_rows(rows: list[list[int]], length: int) -> np.ndarray:
    """Right-pads (or truncates) token lists to a [len(rows), length] int32 array."""
    out = np.zeros((len(rows), length), np.int32)
    for i, r in enumerate(rows):
        r = r[:length]
        out[i, : len(r)] = r
    return out


# --- text in, text out (the score and generate commands) ------------------------------
def is_encoder_decoder(model: nnx.Module) -> bool:
    return family_of(model).encoder_decoder


def encode_example(
    vocab: seqio.Vocabulary, inputs: str, targets: str, *, encoder_decoder: bool
) -> tuple[list[int], list[int]]:
    """(input or prompt ids, target ids) of one text pair, laid out per family:

    * encoder-decoder: inputs + EOS, targets + EOS (seqio's features and Hugging
      Face's T5 tokenizer agree).
    * decoder-only with a Hugging Face tokenizer: what the tokenizer adds around a
      text (`prefix_ids`, e.g. Llama-3's BOS) + inputs, and targets as given +
      `suffix_ids` (empty for GPT-2 / SmolLM2 style tokenizers): the layout of
      `AutoTokenizer(inputs)` followed by the continuation's tokens.
    * decoder-only with a seqio vocabulary (models trained in flanjax, e.g. on the
      byte vocabulary): seqio's decoder feature converters' layout, 0 (BOS) +
      inputs + EOS, then targets + EOS.
    Inputs and targets are tokenized separately, so tokens never merge across them.
    """
    in_ids, tgt_ids = list(vocab.encode(inputs)), list(vocab.encode(targets))
    if encoder_decoder:
        return in_ids + [vocab.eos_id], tgt_ids + [vocab.eos_id]
    prefix, suffix = getattr(vocab, "prefix_ids", None), getattr(vocab, "suffix_ids", None)
    if prefix is not None and suffix is not None:
        return [*prefix, *in_ids], tgt_ids + list(suffix)
    return [0, *in_ids, vocab.eos_id], tgt_ids + [vocab.eos_id]


def bucket(n: int, minimum: int = 16) -> int:
    """A padded length for n tokens (a power of two), so few shapes get compiled."""
    return max(minimum, 1 << max(n - 1, 0).bit_length())


def pad_batch(rows: Sequence[Sequence[int]], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [batch_size, bucket(longest)], lengths [batch_size]); missing rows empty."""
    tokens = pad_rows([list(r) for r in rows], bucket(max((len(r) for r in rows), default=1)))
    tokens = np.concatenate([tokens, np.zeros((batch_size - len(rows), tokens.shape[1]), np.int32)])
    lengths = np.zeros((batch_size,), np.int32)
    lengths[: len(rows)] = [len(r) for r in rows]
    return tokens, lengths


def read_examples(path: str, fields: Sequence[str]) -> list[tuple[int, dict]]:
    """(line, record) of a JSON-lines file whose records hold string `fields`;
    a malformed line raises DataFileError naming file and line."""
    from flanjax.data import readers

    out = []
    for line, record in readers.numbered_jsonl(path):
        for field in fields:
            if not isinstance(record.get(field), str):
                got = "missing" if field not in record else type(record[field]).__name__
                raise readers.DataFileError(
                    f"{path}:{line}: field {field!r} must be a string ({got})"
                )
        out.append((line, record))
    return out


def encode_examples(
    model: nnx.Module,
    vocab: seqio.Vocabulary,
    path: str,
    records: Sequence[tuple[int, dict]],
) -> list[tuple[list[int], list[int]]]:
    """`encode_example` of every record, checked against the model: ids within its
    vocabulary, and (decoder-only) a non-empty prompt to condition on."""
    from flanjax.data.readers import DataFileError

    encoder_decoder = is_encoder_decoder(model)
    vocab_size = model.cfg.vocab_size
    pairs = []
    for line, record in records:
        ids, tgt = encode_example(
            vocab, record["inputs"], record.get("targets", ""), encoder_decoder=encoder_decoder
        )
        if not ids:
            raise DataFileError(
                f"{path}:{line}: empty prompt: a decoder-only model needs at least one "
                "input token to condition on"
            )
        if max(ids + tgt) >= vocab_size:
            raise DataFileError(
                f"{path}:{line}: token id {max(ids + tgt)} is outside the model's vocabulary "
                f"({vocab_size}): wrong --vocabulary?"
            )
        pairs.append((ids, tgt))
    return pairs


def write_jsonl(path: str, records: Sequence[dict]) -> None:
    """Writes records as JSON lines, atomically (never a half-written file)."""
    import json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)
