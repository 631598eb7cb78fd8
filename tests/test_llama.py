"""The decoder-only model: packing, prefix-LM masking, RoPE, and a prefix-LM train step."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from flanjax import partitioning, train_state
from flanjax.models import DecoderConfig, create_model, llama
from flanjax.train_step import LossConfig, train_step

TINY = DecoderConfig(
    vocab_size=64,
    d_model=32,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    d_ff=48,
    rope_theta=10000.0,
)


def _model(cfg: DecoderConfig = TINY, seed: int = 0) -> llama.Decoder:
    with nnx.use_eager_sharding(False):
        return create_model(cfg, nnx.Rngs(params=seed))


def test_packed_rows_equal_unpacked_examples() -> None:
    model = _model()
    rng = np.random.RandomState(0)
    a, b = rng.randint(1, 64, 5), rng.randint(1, 64, 7)
    packed_1xT = np.zeros((1, 14), np.int32)
    packed_1xT[0, :12] = np.concatenate([a, b])
    segments_1xT = np.array([[1] * 5 + [2] * 7 + [0] * 2], np.int32)
    positions_1xT = np.array([list(range(5)) + list(range(7)) + [0, 0]], np.int32)

    logits = np.asarray(model(jnp.asarray(packed_1xT), segments_1xT, positions_1xT))
    derived = np.asarray(model(jnp.asarray(packed_1xT), segments_1xT))  # positions from segments
    alone_a = np.asarray(model(jnp.asarray(a[None])))[0]
    alone_b = np.asarray(model(jnp.asarray(b[None])))[0]

    np.testing.assert_allclose(logits[0, :5], alone_a, atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits[0, 5:12], alone_b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(derived[0, :12], logits[0, :12], atol=1e-6, rtol=0)


def test_segment_positions_restart_at_each_segment() -> None:
    segments = jnp.array([[1, 1, 1, 2, 2, 3, 0, 0]])
    np.testing.assert_array_equal(llama.segment_positions(segments), [[0, 1, 2, 0, 1, 0, 0, 1]])


def test_prefix_lm_mask() -> None:
    # 3 input (prefix) positions, then 3 targets, in one segment.
    inputs_1xT = jnp.array([[1, 1, 1, 0, 0, 0]], bool)
    mask_TxT = np.asarray(llama.attention_mask(jnp.ones((1, 6), jnp.int32), inputs_1xT, True))[0]
    assert mask_TxT[0, 2]  # a prefix token attends to a later prefix token
    assert mask_TxT[3, :4].all() and not mask_TxT[3, 4:].any()  # targets: causal
    assert not np.triu(mask_TxT[3:, 3:], 1).any()
    causal_TxT = np.asarray(llama.attention_mask(jnp.ones((1, 6), jnp.int32), inputs_1xT, False))
    np.testing.assert_array_equal(causal_TxT[0], np.tril(np.ones((6, 6), bool)))


def _changed_positions(model: llama.Decoder, index: int, inputs_1xT: jax.Array) -> np.ndarray:
    """Which positions' logits change when the token at `index` changes."""
    tokens = jnp.array([[5, 6, 7, 8, 9, 10]])
    before = np.asarray(model(tokens, inputs_mask_BxT=inputs_1xT))
    after = np.asarray(model(tokens.at[0, index].set(33), inputs_mask_BxT=inputs_1xT))
    return np.abs(before - after).max(-1)[0] > 1e-6


def test_prefix_lm_logits_see_later_prefix_but_never_later_targets() -> None:
    inputs_1xT = jnp.array([[1, 1, 1, 0, 0, 0]], bool)
    prefix_model = _model(dataclasses.replace(TINY, attention="prefix"))
    # Changing prefix token 2 changes the prefix tokens before it (bidirectional).
    assert _changed_positions(prefix_model, 2, inputs_1xT).tolist() == [True] * 6
    # Changing target token 4 changes only itself and later tokens.
    changed = _changed_positions(prefix_model, 4, inputs_1xT)
    assert changed.tolist() == [False, False, False, False, True, True]
    # A causal model ignores the inputs mask.
    causal = _changed_positions(_model(TINY), 2, inputs_1xT)
    assert causal.tolist() == [False, False, True, True, True, True]


def test_rope_is_rotate_half_and_relative() -> None:
    k = 8
    x = jax.random.normal(jax.random.key(0), (1, 1, 1, k))
    pos = jnp.array([[3]])
    cos, sin = llama.rope_tables(pos, k, 10000.0)
    y = np.asarray(llama.apply_rope(x, cos, sin))[0, 0, 0]
    # Dimension i pairs with i + K/2 and turns by angle 3 * theta**(-2i/K).
    xr = np.asarray(x)[0, 0, 0]
    for i in range(k // 2):
        angle = 3 * 10000.0 ** (-2 * i / k)
        c, s = np.cos(angle), np.sin(angle)
        a, b = xr[i], xr[i + k // 2]
        np.testing.assert_allclose([y[i], y[i + k // 2]], [a * c - b * s, a * s + b * c], 1e-5)
    # q.k depends only on the position difference.
    q, kk = jax.random.normal(jax.random.key(1), (2, 1, 1, 1, k))

    def dot(pq: int, pk: int) -> float:
        rq = llama.apply_rope(q, *llama.rope_tables(jnp.array([[pq]]), k, 10000.0))
        rk = llama.apply_rope(kk, *llama.rope_tables(jnp.array([[pk]]), k, 10000.0))
        return float(jnp.sum(rq * rk))

    assert dot(7, 4) == pytest.approx(dot(13, 10), abs=1e-5)


def _prefix_lm_batch(batch_size: int, lengths: dict[str, int]) -> dict[str, np.ndarray]:
    import seqio

    import flanjax.tasks  # noqa: F401  (registers the built-in suite)

    ds = seqio.get_dataset(
        "builtin.train_without_comparison",
        task_feature_lengths=lengths,
        dataset_split="train",
        shuffle=False,
        feature_converter=seqio.PrefixLMFeatureConverter(pack=True),
    )
    return next(ds.batch(batch_size).as_numpy_iterator())


def test_prefix_lm_train_step_on_packed_batch_reduces_loss() -> None:
    batch = _prefix_lm_batch(4, {"inputs": 96, "targets": 32})
    assert {"decoder_causal_attention", "decoder_segment_ids", "decoder_positions"} <= set(batch)
    assert batch["decoder_segment_ids"].max() > 1  # really packed
    cfg = dataclasses.replace(TINY, vocab_size=384, attention="prefix")
    mesh_cfg = partitioning.MeshConfig(data=2, fsdp=2, tensor=2)
    mesh = partitioning.make_mesh(mesh_cfg, jax.devices()[:8])
    tx = optax.adam(3e-3)
    state, shardings = train_state.init_state(cfg, tx, mesh, mesh_cfg.rules, seed=0)
    step_fn = functools.partial(
        train_step,
        graphdef=train_state.graphdef_of(cfg, mesh_cfg.rules),
        tx=tx,
        schedule=optax.constant_schedule(3e-3),
        loss_cfg=LossConfig(),
        dropout_seed=None,
    )
    batch_sharding = partitioning.batch_sharding(mesh, mesh_cfg.rules)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(mesh_cfg.rules):
        jitted = jax.jit(step_fn, in_shardings=(shardings, batch_sharding))
        device_batch = partitioning.host_local_batch(mesh, mesh_cfg.rules, batch)
        losses = []
        for _ in range(5):
            state, metrics = jitted(state, device_batch)
            losses.append(float(metrics["loss"]))
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.1, losses
    assert int(state.step) == 5
