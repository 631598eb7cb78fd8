"""The loss and the pure train step.

Loss weights: the feature converter's `decoder_loss_weights` are 1 on real target
tokens and 0 on padding, so the loss is the mean cross-entropy per real target
token of the batch (`normalization="tokens"`), or the token sum divided by a
fixed `loss_normalizing_factor` as in T5X, which keeps the gradient scale
independent of how full the packed batch is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

Batch = dict[str, jax.Array]


@struct.dataclass
class TrainState:
    step: jax.Array
    params: nnx.State
    opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class LossConfig:
    z_loss: float = 1e-4  # coefficient of log(Z)^2, T5X's default
    loss_normalizing_factor: float = 0.0  # 0: divide by the number of target tokens


def cross_entropy(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, weights_BxT: jax.Array, z_loss: float
) -> dict[str, jax.Array]:
    """Summed weighted cross-entropy, z-loss and accuracy terms (float32)."""
    logits = logits_BxTxV.astype(jnp.float32)
    log_z_BxT = jax.nn.logsumexp(logits, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits, targets_BxT[..., None], axis=-1)[..., 0]
    nll_BxT = log_z_BxT - target_logit_BxT
    w = weights_BxT.astype(jnp.float32)
    correct = (jnp.argmax(logits, axis=-1) == targets_BxT).astype(jnp.float32)
    return {
        "nll_sum": jnp.sum(nll_BxT * w),
        "z_loss_sum": z_loss * jnp.sum(jnp.square(log_z_BxT) * w),
        "correct_sum": jnp.sum(correct * w),
        "weight_sum": jnp.sum(w),
    }


def model_logits(model: nnx.Module, batch: Batch, rngs: nnx.Rngs | None) -> jax.Array:
    """Logits for a feature-converted batch: encoder-decoder batches carry
    `encoder_input_tokens`; decoder-only ones (seqio's DecoderFeatureConverter,
    PrefixLMFeatureConverter) do not, and may carry `decoder_positions` and, for
    prefix-LM, `decoder_causal_attention` (1 on the bidirectional inputs prefix)."""
    if "encoder_input_tokens" not in batch:
        return model(
            batch["decoder_input_tokens"],
            batch.get("decoder_segment_ids"),
            batch.get("decoder_positions"),
            batch.get("decoder_causal_attention"),
            rngs=rngs,
        )
    return model(
        batch["encoder_input_tokens"],
        batch["decoder_input_tokens"],
        batch.get("encoder_segment_ids"),
        batch.get("decoder_segment_ids"),
        rngs=rngs,
    )


def loss_fn(
    params: nnx.State,
    graphdef: nnx.GraphDef,
    batch: Batch,
    dropout_key: jax.Array | None,
    cfg: LossConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    model = nnx.merge(graphdef, params)
    rngs = nnx.Rngs(dropout=dropout_key) if dropout_key is not None else None
    logits = model_logits(model, batch, rngs)
    weights = batch.get("decoder_loss_weights", batch["decoder_target_tokens"] > 0)
    terms = cross_entropy(logits, batch["decoder_target_tokens"], weights, cfg.z_loss)
    denom = cfg.loss_normalizing_factor or jnp.maximum(terms["weight_sum"], 1.0)
    loss = (terms["nll_sum"] + terms["z_loss_sum"]) / denom
    return loss, terms


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    schedule: Callable,
    loss_cfg: LossConfig,
    dropout_seed: int | None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step. Pure: dropout's key is derived from (seed, step), so a
    resumed run draws the same dropout masks as an uninterrupted one."""
    dropout_key = None
    if dropout_seed is not None:
        dropout_key = jax.random.fold_in(jax.random.key(dropout_seed), state.step)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, terms), grads = grad_fn(state.params, graphdef, batch, dropout_key, loss_cfg)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    weight_sum = jnp.maximum(terms["weight_sum"], 1.0)
    metrics = {
        "loss": loss,
        "nll_per_token": terms["nll_sum"] / weight_sum,
        "z_loss": terms["z_loss_sum"] / weight_sum,
        "accuracy": terms["correct_sum"] / weight_sum,
        "grad_norm": optax.global_norm(grads),
        "learning_rate": schedule(state.step),
        "target_tokens": terms["weight_sum"],
    }
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics


def eval_loss(
    params: nnx.State, batch: Batch, *, graphdef: nnx.GraphDef, loss_cfg: LossConfig
) -> dict[str, jax.Array]:
    """Summed loss terms on a batch, without dropout (for held-out loss)."""
    return loss_fn(params, graphdef, batch, None, loss_cfg)[1]
