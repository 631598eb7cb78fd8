"""Softmax cross-entropy whose backward pass keeps no float32 copy of the logits.

Large vocabularies make the logits the largest activation of a step (B x T x 32k for
T5, x 50k-128k for decoders). Autodiff through `logsumexp(logits.astype(float32))`
keeps the float32 logits as a residual for the backward pass and builds the softmax
in float32 again there. `softmax_cross_entropy` keeps only the logits as the model
produced them (bfloat16 under mixed precision) and the float32 log-normalizer per
token, and forms the gradient

    d logits = softmax(logits) * (g_nll + g_log_z) - onehot(targets) * g_nll

in one elementwise pass, cast straight back to the logits' dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def softmax_cross_entropy(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(nll_BxT, log_z_BxT), float32: -log softmax(logits)[target] and logsumexp(logits)."""
    return _forward(logits_BxTxV, targets_BxT)[0]


def _forward(logits_BxTxV, targets_BxT):
    logits = logits_BxTxV.astype(jnp.float32)
    log_z_BxT = jax.nn.logsumexp(logits, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits, targets_BxT[..., None], axis=-1)[..., 0]
    return (log_z_BxT - target_logit_BxT, log_z_BxT), (logits_BxTxV, targets_BxT, log_z_BxT)


def _backward(residuals, cotangents):
    logits_BxTxV, targets_BxT, log_z_BxT = residuals
    g_nll_BxT, g_log_z_BxT = cotangents
    p_BxTxV = jnp.exp(logits_BxTxV.astype(jnp.float32) - log_z_BxT[..., None])
    vocab_V = jnp.arange(logits_BxTxV.shape[-1], dtype=targets_BxT.dtype)
    onehot_BxTxV = vocab_V == targets_BxT[..., None]
    d_BxTxV = p_BxTxV * (g_nll_BxT + g_log_z_BxT)[..., None] - jnp.where(
        onehot_BxTxV, g_nll_BxT[..., None], 0.0
    )
    return d_BxTxV.astype(logits_BxTxV.dtype), None


softmax_cross_entropy.defvjp(_forward, _backward)
