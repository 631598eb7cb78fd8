"""KV-cache decoding, sampling and beam search on tiny random models of both families."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flanjax import decoding, inference
from flanjax.decoding import DecodeConfig
from flanjax.models import DecoderConfig, T5Config, create_model

TINY_DECODER = DecoderConfig(
    vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, d_ff=48
)
TINY_T5 = T5Config(
    vocab_size=64, d_model=32, num_heads=4, head_dim=8, d_ff=48,
    num_encoder_layers=2, num_decoder_layers=2,
)  # fmt: skip
FAMILIES = {
    "t5": TINY_T5,
    "t5_tied_relu": dataclasses.replace(TINY_T5, tie_embeddings=True, mlp_activation="relu"),
    "decoder": TINY_DECODER,
    "prefix_lm": dataclasses.replace(TINY_DECODER, attention="prefix"),
    "t5_scanned": dataclasses.replace(TINY_T5, scan_layers=True),
    "prefix_lm_scanned": dataclasses.replace(TINY_DECODER, attention="prefix", scan_layers=True),
}  # fmt: skip


def make_model(cfg, seed: int = 0) -> nnx.Module:
    with nnx.use_eager_sharding(False):
        return create_model(cfg, nnx.Rngs(params=seed))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def model(request) -> nnx.Module:
    return make_model(FAMILIES[request.param])


@pytest.fixture(scope="module", params=["t5", "decoder"])
def core_model(request) -> nnx.Module:
    """One model per family, for the token-choice tests (the cache tests take all)."""
    return make_model(FAMILIES[request.param])


def prompts(lengths=(3, 8, 5), width: int = 8, vocab: int = 64, seed: int = 0):
    """Right-padded random prompts (ids >= 2) and their lengths."""
    rng = np.random.RandomState(seed)
    tokens = np.zeros((len(lengths), width), np.int32)
    for i, n in enumerate(lengths):
        tokens[i, :n] = rng.randint(2, vocab, n)
    return tokens, np.asarray(lengths, np.int32)


def run(model, cfg: DecodeConfig, seed: int = 0, inputs=None):
    tokens, lengths = prompts() if inputs is None else inputs
    out, out_lengths = decoding.generate(model, tokens, lengths, jax.random.key(seed), cfg)
    return np.asarray(out), np.asarray(out_lengths)


def test_kv_cache_equals_recomputation(model) -> None:
    tokens, lengths = prompts()
    reference = np.asarray(decoding.greedy_without_cache(model, tokens, lengths, 10, None))
    cached, n = run(model, DecodeConfig(max_new_tokens=10, eos_id=None))
    np.testing.assert_array_equal(cached, reference)
    assert (n == 10).all()
    # With an EOS that row 0 emits: it stops there (EOS kept, then padding).
    eos = int(reference[0, 2])
    reference = np.asarray(decoding.greedy_without_cache(model, tokens, lengths, 10, eos))
    cached, n = run(model, DecodeConfig(max_new_tokens=10, eos_id=eos))
    np.testing.assert_array_equal(cached, reference)
    first = int(np.argmax(cached[0] == eos))
    assert n[0] == first + 1 and (cached[0, first + 1 :] == 0).all()


def test_evaluator_greedy_decode_matches(model) -> None:
    tokens, lengths = prompts()
    reference = np.asarray(decoding.greedy_without_cache(model, tokens, lengths, 6, 1))
    np.testing.assert_array_equal(inference.greedy_decode(model, tokens, 6), reference)


def test_beam_size_one_equals_greedy(core_model) -> None:
    model = core_model
    greedy, _ = run(model, DecodeConfig(max_new_tokens=8, eos_id=None))
    beam, _ = run(model, DecodeConfig(max_new_tokens=8, eos_id=None, beam_size=1, alpha=0.0))
    np.testing.assert_array_equal(beam, greedy)
    eos = int(greedy[1, 3])  # an EOS some rows emit: finished and alive beams both in play
    greedy, _ = run(model, DecodeConfig(max_new_tokens=8, eos_id=eos))
    beam, _ = run(model, DecodeConfig(max_new_tokens=8, eos_id=eos, beam_size=1, alpha=0.0))
    np.testing.assert_array_equal(beam, greedy)


def test_top_k_one_equals_greedy(core_model) -> None:
    model = core_model
    greedy, _ = run(model, DecodeConfig(max_new_tokens=8, eos_id=None))
    top1, _ = run(model, DecodeConfig(max_new_tokens=8, eos_id=None, temperature=1.5, top_k=1))
    np.testing.assert_array_equal(top1, greedy)


def test_sampling_is_deterministic_per_seed(core_model) -> None:
    model = core_model
    cfg = DecodeConfig(max_new_tokens=12, eos_id=None, temperature=2.0, top_p=0.95, top_k=40)
    a, _ = run(model, cfg, seed=3)
    b, _ = run(model, cfg, seed=3)
    c, _ = run(model, cfg, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_filter_logits_top_k_and_top_p() -> None:
    logits = jnp.log(jnp.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = lambda cfg: np.isfinite(np.asarray(decoding.filter_logits(logits, cfg)))[0]  # noqa: E731
    np.testing.assert_array_equal(kept(DecodeConfig(temperature=1.0, top_k=2)), [1, 1, 0, 0, 0])
    # Mass before each token: 0, .5, .7, .85, .95; kept while below top_p.
    np.testing.assert_array_equal(kept(DecodeConfig(temperature=1.0, top_p=0.5)), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(kept(DecodeConfig(temperature=1.0, top_p=0.8)), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(kept(DecodeConfig(temperature=1.0, top_p=1.0)), [1] * 5)


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_wide_beam_finds_the_exact_best_sequence(family: str) -> None:
    """Beam K >= V^(N-1) keeps every prefix, so it returns the argmax over all V^N."""
    v, n = 6, 3
    cfg = FAMILIES[family]
    tiny = make_model(dataclasses.replace(cfg, vocab_size=v), seed=1)
    inputs, lengths = prompts(lengths=(4,), width=4, vocab=v, seed=2)
    best, _ = run(tiny, DecodeConfig(max_new_tokens=n, eos_id=None, beam_size=v ** (n - 1)),
                  inputs=(inputs, lengths))  # fmt: skip
    every_NxV = np.array(list(itertools.product(range(v), repeat=n)), np.int32)
    many = len(every_NxV)
    ll = np.asarray(
        inference.score(
            tiny, np.repeat(inputs, many, 0), every_NxV,
            np.repeat(lengths, many), np.full(many, n, np.int32),
        )
    )  # fmt: skip
    np.testing.assert_array_equal(best[0], every_NxV[ll.argmax()])


def test_beam_search_length_penalty_prefers_the_normalized_best() -> None:
    """The returned sequence's score is the best finished log p / ((5 + n) / 6)^alpha."""
    m = make_model(TINY_T5)
    inputs, lengths = prompts()
    cfg = DecodeConfig(max_new_tokens=6, eos_id=5, beam_size=4, alpha=0.6)
    state, logits = decoding.start(m, jnp.asarray(inputs), jnp.asarray(lengths), 6)
    best, score = decoding._beam_search(m, state, logits, cfg)
    best, score = np.asarray(best), np.asarray(score)
    n = np.asarray(decoding.output_lengths(jnp.asarray(best), 5))
    targets = np.where(np.arange(6) < n[:, None], best, 0)
    ll = np.asarray(inference.score(m, inputs, targets, lengths, n))
    np.testing.assert_allclose(score, ll / ((5 + n) / 6) ** 0.6, rtol=1e-4, atol=1e-4)


def test_decode_config_validates() -> None:
    for bad in ({"temperature": -1.0}, {"top_p": 0.0}, {"top_k": -1}, {"beam_size": 0},
                {"max_new_tokens": 0}):  # fmt: skip
        with pytest.raises(ValueError):
            DecodeConfig(**bad)
