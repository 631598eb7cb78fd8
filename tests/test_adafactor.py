"""flanjax's Adafactor against optax.adafactor with T5X's settings: same state tree,
same updates (to float rounding), on shapes that take each reduction path."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flanjax import adafactor

SHAPES = {
    "wide": (128, 4100),  # mean over axis 0 leaves 4100: halves on CPUs
    "odd_leading": (136, 4100),  # 136 halves to 17, then a sum
    "tall": (4100, 128),  # narrow result: jnp.mean
    "stacked": (3, 128, 4100),  # factored over the last two axes
    "small": (256, 200),
    "unfactored": (64, 64),
    "bias": (8,),
}


def _tree(seed: int, scale: float = 1.0) -> dict:
    keys = jax.random.split(jax.random.PRNGKey(seed), len(SHAPES))
    return {
        name: scale * jax.random.normal(k, shape)
        for k, (name, shape) in zip(keys, SHAPES.items(), strict=True)
    }


def _reference(lr):
    return optax.adafactor(
        learning_rate=lr,
        min_dim_size_to_factor=128,
        decay_rate=0.8,
        multiply_by_parameter_scale=True,
        clipping_threshold=1.0,
        momentum=None,
    )


@pytest.mark.parametrize("n", [2, 3, 6, 8, 17, 136, 512, 768])
def test_halving_mean_is_the_mean(n):
    x = jax.random.uniform(jax.random.PRNGKey(n), (5, n, 7))
    np.testing.assert_allclose(adafactor.halving_mean(x, 1), jnp.mean(x, axis=1), rtol=1e-6)


def test_wide_means_over_the_leading_axis_halve_on_cpus():
    hlo = jax.jit(lambda x: adafactor.axis_mean(x, 0)).lower(jnp.ones((128, 4100))).as_text()
    assert "slice" in hlo  # the halving path
    narrow = jax.jit(lambda x: adafactor.axis_mean(x, 0)).lower(jnp.ones((4100, 128))).as_text()
    assert "slice" not in narrow


def test_updates_and_state_match_optax():
    lr = optax.constant_schedule(1e-2)
    ours, ref = adafactor.adafactor(lr), _reference(lr)
    params = _tree(0)
    s_ours, s_ref = ours.init(params), ref.init(params)
    assert jax.tree.structure(s_ours) == jax.tree.structure(s_ref)
    step_ours, step_ref = jax.jit(ours.update), jax.jit(ref.update)
    p_ours = p_ref = params
    for i in range(3):
        grads = _tree(10 + i, scale=1e-3)
        u_ours, s_ours = step_ours(grads, s_ours, p_ours)
        u_ref, s_ref = step_ref(grads, s_ref, p_ref)
        for name in SHAPES:
            np.testing.assert_allclose(u_ours[name], u_ref[name], rtol=2e-5, atol=1e-9)
        p_ours, p_ref = optax.apply_updates(p_ours, u_ours), optax.apply_updates(p_ref, u_ref)
    for a, b in zip(jax.tree.leaves(s_ours), jax.tree.leaves(s_ref), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=2e-5)
    assert int(s_ours[0].count) == 3


def test_parameter_scale_matches_optax_above_and_below_min_scale():
    params = {"big": jnp.full((4, 3), 2.0), "tiny": jnp.full((5,), 1e-5), "zero": jnp.zeros(2)}
    updates = jax.tree.map(jnp.ones_like, params)
    ours, _ = adafactor.scale_by_param_block_rms().update(updates, optax.EmptyState(), params)
    ref, _ = optax.scale_by_param_block_rms().update(updates, optax.EmptyState(), params)
    for name, expected in (("big", 2.0), ("tiny", 1e-3), ("zero", 1e-3)):
        np.testing.assert_allclose(ours[name], expected, rtol=1e-6)
        np.testing.assert_array_equal(ours[name], ref[name])
