"""Scan over layers (models/layer_stack.py): the stacked model computes what the
unrolled one does, for both families, with every remat policy; the layouts convert
into each other; the stacked axis has its logical name; a run in one layout starts
from a checkpoint in the other."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from flanjax import models, optimizers, partitioning, train_state
from flanjax.models import DecoderConfig, T5Config, layer_stack

T5 = T5Config(
    vocab_size=64, d_model=32, num_heads=2, head_dim=16, d_ff=64,
    num_encoder_layers=3, num_decoder_layers=2,
)  # fmt: skip
PREFIX_LM = DecoderConfig(
    vocab_size=64, d_model=32, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8,
    d_ff=64, attention="prefix",
)  # fmt: skip
CONFIGS = {"t5": T5, "prefix_lm": PREFIX_LM}


def _model(cfg, seed: int = 0) -> nnx.Module:
    with nnx.use_eager_sharding(False):
        return models.create_model(cfg, nnx.Rngs(params=seed))


def _pair(cfg, **kw) -> tuple[nnx.Module, nnx.Module]:
    """(unrolled, scanned) models of `cfg` with the same weights."""
    unrolled = _model(dataclasses.replace(cfg, **kw))
    scanned = _model(dataclasses.replace(cfg, scan_layers=True, **kw))
    params = train_state.restack(nnx.state(unrolled, nnx.Param), scanned.cfg)
    nnx.update(scanned, params)
    return unrolled, scanned


def _loss(model: nnx.Module, rngs: nnx.Rngs | None = None) -> jax.Array:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(1, 64, (2, 9)))
    if isinstance(model.cfg, T5Config):
        logits = model(x, jnp.asarray(rng.integers(1, 64, (2, 5))), rngs=rngs)
    else:
        logits = model(x, inputs_mask_BxT=jnp.arange(9)[None] < 4, rngs=rngs)
    return jnp.mean(jax.nn.log_softmax(logits)[..., 3])


@pytest.mark.parametrize("family,policy", [("t5", "full"), ("prefix_lm", "dots")])
def test_scanned_equals_unrolled_forward_and_gradients(family: str, policy: str) -> None:
    """(Without remat the scanned stack runs in tests/test_decoding.py and the trainer's.)"""
    unrolled, scanned = _pair(CONFIGS[family], remat_policy=policy)
    loss_and_grads = nnx.jit(nnx.value_and_grad(_loss))
    loss_u, grads_u = loss_and_grads(unrolled)
    loss_s, grads_s = loss_and_grads(scanned)
    np.testing.assert_allclose(loss_s, loss_u, rtol=1e-6)
    as_unrolled = train_state.restack(grads_s, unrolled.cfg)
    for g_s, g_u in zip(jax.tree.leaves(as_unrolled), jax.tree.leaves(grads_u), strict=True):
        np.testing.assert_allclose(g_s, g_u, rtol=1e-4, atol=1e-6)


def test_stacked_parameters_and_dropout() -> None:
    _, scanned = _pair(T5, dropout_rate=0.5)
    wq = scanned.encoder_layers.attn.query
    assert wq.shape == (3, 32, 2, 16)  # N x D x H x K
    assert layer_stack.num_layers(scanned.encoder_layers) == 3
    assert len(layer_stack.layers(scanned.decoder_layers)) == 2
    loss = nnx.jit(lambda m, key: _loss(m, nnx.Rngs(dropout=key)))
    a, b, c = (loss(scanned, jax.random.key(k)) for k in (1, 1, 2))
    assert a == b and a != c and a != _loss(scanned)  # dropout on, seeded


def test_layouts_convert_both_ways() -> None:
    unrolled, scanned = _pair(PREFIX_LM)
    params = nnx.state(unrolled, nnx.Param)
    stacked = train_state.restack(params, scanned.cfg)
    assert stacked["decoder_layers"]["mlp"]["up"].shape == (3, 32, 64)
    back = train_state.restack(stacked, unrolled.cfg)
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(x, y)
    # Layer 1's row of the stack is layer 1's parameter.
    np.testing.assert_array_equal(
        stacked["decoder_layers"]["attn"]["key"][...][1],
        params["decoder_layers"][1]["attn"]["key"][...],
    )


def test_stacked_axis_is_named_layers_and_replicated() -> None:
    abstract = train_state.abstract_params(dataclasses.replace(T5, scan_layers=True))
    specs = train_state.param_specs(abstract, partitioning.DEFAULT_RULES)
    assert specs["encoder_layers"]["mlp"]["wi_0"] == P(None, "fsdp", "tensor")
    assert specs["decoder_layers"]["self_attn"]["query"] == P(None, "fsdp", "tensor", None)
    assert specs["token_embed"]["embedding"] == P("tensor", "fsdp")


def test_adafactor_updates_a_stack_as_its_unrolled_layers() -> None:
    """Adafactor's parameter scale and update clipping take a tensor's RMS: on a stack
    they are taken per layer (optimizers.per_layer), so three steps end where the
    unrolled model's do (within float32 rounding; over the whole stack: ~1e-4 off)."""
    unrolled, scanned = _pair(T5)
    tx, _ = optimizers.make_optimizer(optimizers.OptimizerConfig())
    grads = nnx.jit(nnx.grad(_loss))  # jitted: op by op, the 6 steps took over a minute

    @jax.jit
    def apply(grads, opt_state, params):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    initial = jax.tree.map(np.asarray, nnx.state(unrolled, nnx.Param))
    finals = []
    for model in (unrolled, scanned):
        params = nnx.state(model, nnx.Param)
        opt_state = tx.init(params)
        for _ in range(3):
            nnx.update(model, params)
            params, opt_state = apply(grads(model), opt_state, params)
        finals.append(params)
    as_unrolled = train_state.restack(finals[1], unrolled.cfg)
    moved = 0.0
    for x, y, x0 in zip(
        jax.tree.leaves(as_unrolled),
        jax.tree.leaves(finals[0]),
        jax.tree.leaves(initial),
        strict=True,
    ):
        np.testing.assert_allclose(x, y, atol=1e-6)
        moved = max(moved, float(jnp.abs(y - x0).max()))
    assert moved > 1e-3  # the steps did move the parameters
