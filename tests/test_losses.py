"""The custom-gradient cross-entropy equals autodiff through the plain formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flanjax.losses import softmax_cross_entropy


def _plain(logits, targets):
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, -1)
    return log_z - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0], log_z


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_values_and_gradients_match_autodiff(dtype) -> None:
    rng = np.random.RandomState(0)
    logits = jnp.asarray(rng.randn(2, 5, 11) * 3, dtype)
    targets = jnp.asarray(rng.randint(0, 11, (2, 5)), jnp.int32)
    w = jnp.asarray(rng.rand(2, 5), jnp.float32)

    def objective(fn):  # nll and z-loss terms both carry gradients
        return lambda x: jnp.sum((fn(x, targets)[0] + 1e-2 * fn(x, targets)[1] ** 2) * w)

    got, got_grad = jax.value_and_grad(objective(softmax_cross_entropy))(logits)
    want, want_grad = jax.value_and_grad(objective(_plain))(logits)
    assert got_grad.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)
    tol = 1e-6 if dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(
        np.asarray(got_grad, np.float32), np.asarray(want_grad, np.float32), atol=tol
    )
