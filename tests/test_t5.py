"""T5 encoder-decoder: packing, relative position buckets, logical axes, variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flanjax import inference, partitioning, train_state
from flanjax.models.t5 import EncoderDecoder, T5Config, relative_position_bucket

TINY = T5Config(
    vocab_size=64, d_model=32, num_heads=4, head_dim=8, d_ff=48,
    num_encoder_layers=2, num_decoder_layers=2,
)  # fmt: skip
EXAMPLES = [  # (inputs, targets), EOS = 1 included
    ([5, 9, 12, 7, 1], [20, 21, 1]),
    ([33, 4, 1], [8, 1]),
    ([11, 12, 13, 14, 15, 16, 1], [40, 41, 42, 1]),
]


def _model(cfg: T5Config = TINY) -> EncoderDecoder:
    with nnx.use_eager_sharding(False):
        return EncoderDecoder(cfg, rngs=nnx.Rngs(0))


def _token_nll(logits, targets):
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    return -jnp.take_along_axis(logp, targets[..., None], -1)[..., 0]


def test_packed_equals_unpacked_per_example_loss():
    model = _model()
    # Unpacked: one example per row, padded.
    enc = inference.pad_rows([i for i, _ in EXAMPLES], 8)
    tgt = inference.pad_rows([t for _, t in EXAMPLES], 5)
    nll = _token_nll(model(enc, inference.shift_right(tgt)), tgt)
    unpacked = np.asarray(jnp.sum(jnp.where(tgt > 0, nll, 0), -1))
    # Packed: all three in one row with segment ids; decoder inputs restart per segment.
    enc_p, enc_s, tgt_p, dec_in, dec_s = [], [], [], [], []
    for seg, (i, t) in enumerate(EXAMPLES, start=1):
        enc_p += i
        enc_s += [seg] * len(i)
        tgt_p += t
        dec_in += [0, *t[:-1]]
        dec_s += [seg] * len(t)
    pad = lambda x, n: np.array([x + [0] * (n - len(x))], np.int32)  # noqa: E731
    logits = model(pad(enc_p, 20), pad(dec_in, 12), pad(enc_s, 20), pad(dec_s, 12))
    nll_p = _token_nll(logits, pad(tgt_p, 12))[0]
    seg_p = pad(dec_s, 12)[0]
    packed = np.array([float(jnp.sum(jnp.where(seg_p == s, nll_p, 0))) for s in (1, 2, 3)])
    np.testing.assert_allclose(packed, unpacked, atol=1e-5, rtol=1e-5)


def test_relative_position_buckets_literal():
    rel = jnp.array([[-200, -20, -8, -1, 0, 1, 7, 8, 20, 200]])
    bi = relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    uni = relative_position_bucket(rel, bidirectional=False, num_buckets=32, max_distance=128)
    # Bidirectional: 16 buckets per direction (+16 for keys after the query), exact
    # below 8, then 8 + floor(log(n/8) / log(128/8) * 8): n=20 -> 8 + floor(2.64) = 10,
    # n=200 -> min(8 + 17, 15) = 15.
    assert bi.tolist() == [[15, 10, 8, 1, 0, 17, 23, 24, 26, 31]]
    # Causal: only the past counts; exact below 16, then 16 + floor(log(n/16) /
    # log(128/16) * 16): n=20 -> 16 + floor(1.72) = 17; n=200 -> capped at 31.
    assert uni.tolist() == [[31, 17, 8, 1, 0, 0, 0, 0, 0, 0]]


def test_every_parameter_has_logical_axes_and_shards():
    rules = partitioning.DEFAULT_RULES
    abs_params = train_state.abstract_params(TINY)
    specs = train_state.param_specs(abs_params, rules)
    leaves = jax.tree.leaves(abs_params, is_leaf=lambda x: isinstance(x, nnx.Variable))
    for v in leaves:
        axes = v.get_metadata()["out_sharding"]
        assert axes is not None and len(axes) == len(v.shape), v
    flat = {"/".join(map(str, k)): s for k, s in jax.tree_util.tree_leaves_with_path(specs)}
    assert any("tensor" in str(s) for s in flat.values())


@pytest.mark.parametrize("variant", ["relu_tied", "bf16_remat_dropout"])
def test_variants_run_and_differentiate(variant):
    cfg = (
        T5Config(**{**TINY.__dict__, "mlp_activation": "relu", "tie_embeddings": True})
        if variant == "relu_tied"
        else T5Config(
            **{**TINY.__dict__, "dtype": "bfloat16", "remat_policy": "full", "dropout_rate": 0.1}
        )
    )
    model = _model(cfg)
    enc = inference.pad_rows([EXAMPLES[0][0]], 8)
    tgt = inference.pad_rows([EXAMPLES[0][1]], 4)

    def loss(m):
        return jnp.sum(
            _token_nll(m(enc, inference.shift_right(tgt), rngs=nnx.Rngs(dropout=1)), tgt)
        )

    grads = nnx.grad(loss)(model)
    norms = [float(jnp.linalg.norm(g.astype(jnp.float32))) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and sum(norms) > 0
    assert not hasattr(model, "lm_head") if variant == "relu_tied" else hasattr(model, "lm_head")


def test_greedy_decode_stops_after_eos_and_matches_argmax():
    model = _model()
    enc = inference.pad_rows([i for i, _ in EXAMPLES], 8)
    out = np.asarray(inference.greedy_decode(model, enc, max_length=6))
    # Step-by-step reference: the argmax of a full forward pass on the prefix so far.
    ref = np.zeros_like(out)
    for t in range(6):
        logits = model(enc, inference.shift_right(jnp.asarray(ref)))
        ref[:, t] = np.asarray(jnp.argmax(logits[:, t], -1))
        for b in range(len(ref)):
            if 1 in ref[b, :t]:
                ref[b, t] = 0
    np.testing.assert_array_equal(out, ref)
