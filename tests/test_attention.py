"""attention_impl: the fused path (jax.nn.dot_product_attention) computes what the einsum
path computes, on packed rows (segment masks), T5's relative position bias, grouped-query
and prefix-LM attention, in values and in gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flanjax.models import DecoderConfig, T5Config, create_model

T5 = T5Config(
    vocab_size=64, d_model=32, num_heads=4, head_dim=8, d_ff=48,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip
DECODER = DecoderConfig(
    vocab_size=64, d_model=32, num_layers=1, num_heads=4, num_kv_heads=2, head_dim=8,
    d_ff=48, attention="prefix",
)  # fmt: skip
SEG_1xT = np.array([[1, 1, 1, 2, 2, 2, 2, 0]], np.int32)  # two packed examples and padding


def _model(cfg):
    with nnx.use_eager_sharding(False):
        return create_model(cfg, nnx.Rngs(params=0))


def _loss_and_grads(model, *args):
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(p):
        logits = nnx.merge(graphdef, p)(*args)
        return jnp.sum(jax.nn.log_softmax(logits)[..., 3] * (SEG_1xT > 0)[..., None])

    return jax.value_and_grad(loss)(params)


def _args(cfg):
    tokens = jnp.asarray(np.random.RandomState(0).randint(2, 64, (1, 8)), jnp.int32)
    if isinstance(cfg, T5Config):
        return (tokens, tokens, SEG_1xT, SEG_1xT)
    inputs_mask = jnp.asarray([[1, 1, 0, 1, 1, 0, 0, 0]], bool)  # prefix of each example
    return (tokens, SEG_1xT, None, inputs_mask)


@pytest.mark.parametrize("base", [T5, DECODER], ids=["t5", "decoder_gqa_prefix"])
def test_fused_attention_equals_einsum_attention(base) -> None:
    outputs = {}
    for impl in ("xla", "fused"):
        cfg = dataclasses.replace(base, attention_impl=impl)
        outputs[impl] = _loss_and_grads(_model(cfg), *_args(cfg))
    (loss_x, grads_x), (loss_f, grads_f) = outputs["xla"], outputs["fused"]
    np.testing.assert_allclose(loss_f, loss_x, rtol=1e-5)
    for gx, gf in zip(jax.tree.leaves(grads_x), jax.tree.leaves(grads_f), strict=True):
        np.testing.assert_allclose(gf, gx, atol=1e-5, rtol=1e-4)


def test_unknown_attention_impl_is_refused() -> None:
    with pytest.raises(ValueError, match=r"T5Config.attention_impl 'flash'.*xla"):
        T5Config(attention_impl="flash")


def test_cpu_heads_major_attention_equals_the_einsum_layout(monkeypatch):
    """XLA CPU's layout (`_attention_heads_major`) and the other platforms' (the
    einsum path) give the same values and gradients: grouped heads, bias, mask."""
    from flanjax import partitioning
    from flanjax.models import layers

    r = np.random.RandomState(0)
    q = jnp.asarray(r.randn(2, 5, 6, 4), jnp.float32)
    k, v = (jnp.asarray(r.randn(2, 7, 3, 4), jnp.float32) for _ in range(2))
    bias = jnp.asarray(r.randn(6, 5, 7), jnp.float32)
    mask = jnp.asarray(r.rand(2, 5, 7) > 0.3)

    def loss(q, k, v, bias):
        return jnp.sum(jnp.sin(layers.dot_attention(q, k, v, mask, bias, scale=0.5)))

    grad = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))
    monkeypatch.setattr(partitioning, "target_platform", lambda: "cpu")
    cpu_value, cpu_grads = grad(q, k, v, bias)
    monkeypatch.setattr(partitioning, "target_platform", lambda: "tpu")
    value, grads = grad(q, k, v, bias)
    np.testing.assert_allclose(cpu_value, value, rtol=1e-5)
    for a, b in zip(cpu_grads, grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
