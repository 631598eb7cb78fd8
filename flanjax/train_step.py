"""The loss and the pure train step, with gradient accumulation over microbatches.

Loss normalization (`LossConfig`). The feature converter's
`decoder_loss_weights` are 1 on real target tokens and 0 on padding. The
train step sums the weighted per-token loss (cross-entropy plus z-loss) over
the whole global batch and divides by one denominator computed from the whole
batch before any microbatching:

  "tokens" (default): the number of real target tokens in the batch (T5X's
      NUM_REAL_TARGET_TOKENS): every target token weighs the same.
  "sequences": each token's weight is divided by its sequence's number of real
      target tokens (per packed segment), and the sum by the number of
      sequences (T5X's AVERAGE_PER_SEQUENCE): every example weighs the same,
      however long its target.
  "fixed": a constant `loss_normalizing_factor` (T5X's float factor, e.g.
      batch size x target length), which keeps the gradient scale independent
      of how full the packed batch is.

Because the denominator is the whole batch's, `microbatches=M` computes
gradients of the summed loss of M slices of the batch, adds them, and divides
once: M microbatches give the gradient of the full batch (up to float32
summation order), whatever the normalization. Per-microbatch normalization
(dividing each slice by its own token count) would not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from flanjax import losses, partitioning
from flanjax.data import batch as bk
from flanjax.models.family import family_of
from flanjax.partitioning import constrain
from flanjax.train_state import TrainState

Batch = dict[str, jax.Array]
NORMALIZATIONS = ("tokens", "sequences", "fixed")
_TERMS = ("loss_sum", "nll_sum", "z_loss_sum", "correct_sum", "weight_sum")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """z-loss and loss normalization (see the module docstring).

    A `loss_normalizing_factor` > 0 implies normalization "fixed" (T5X's gin
    binding of a float factor).
    """

    z_loss: float = 1e-4  # coefficient of log(Z)^2, T5X's default
    loss_normalizing_factor: float = 0.0
    normalization: str = "tokens"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"LossConfig.normalization {self.normalization!r}: use one of {NORMALIZATIONS}"
            )
        if self.normalization == "fixed" and self.loss_normalizing_factor <= 0:
            raise ValueError("LossConfig.normalization 'fixed' needs loss_normalizing_factor > 0")

    @property
    def mode(self) -> str:
        return "fixed" if self.loss_normalizing_factor > 0 else self.normalization


def _per_sequence(w_BxT: jax.Array, segments_BxT: jax.Array | None) -> jax.Array:
    """Weights divided by the weight sum of their sequence (segment within a row)."""
    b, t = w_BxT.shape
    seg_BxT = jnp.ones((b, t), jnp.int32) if segments_BxT is None else segments_BxT
    ids_BxT = seg_BxT.astype(jnp.int32) + (t + 1) * jnp.arange(b, dtype=jnp.int32)[:, None]
    sums = jax.ops.segment_sum(w_BxT.reshape(-1), ids_BxT.reshape(-1), num_segments=b * (t + 1))
    per_token_BxT = sums[ids_BxT]
    return jnp.where(per_token_BxT > 0, w_BxT / jnp.maximum(per_token_BxT, 1e-9), 0.0)


def loss_weights(batch: Batch, cfg: LossConfig) -> tuple[jax.Array, jax.Array]:
    """(per-token loss weights BxT, the batch's loss denominator), both float32."""
    w_BxT = batch.get(bk.DECODER_LOSS_WEIGHTS, batch[bk.DECODER_TARGET_TOKENS] > 0)
    w_BxT = w_BxT.astype(jnp.float32)
    if cfg.mode == "fixed":
        return w_BxT, jnp.float32(cfg.loss_normalizing_factor)
    if cfg.mode == "sequences":
        w_BxT = _per_sequence(w_BxT, batch.get(bk.DECODER_SEGMENT_IDS))
    return w_BxT, jnp.maximum(jnp.sum(w_BxT), 1.0)


def cross_entropy(
    logits_BxTxV: jax.Array,
    targets_BxT: jax.Array,
    weights_BxT: jax.Array,
    z_loss: float,
    loss_weights_BxT: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Summed terms (float32): `loss_sum` (cross-entropy plus z-loss, weighted by
    `loss_weights_BxT`, default `weights_BxT`), and the nll, z-loss, correct and
    weight sums over real tokens (`weights_BxT`) for metrics."""
    nll_BxT, log_z_BxT = losses.softmax_cross_entropy(logits_BxTxV, targets_BxT)
    z_BxT = z_loss * jnp.square(log_z_BxT)
    w = weights_BxT.astype(jnp.float32)
    lw = w if loss_weights_BxT is None else loss_weights_BxT.astype(jnp.float32)
    correct = (jnp.argmax(logits_BxTxV, axis=-1) == targets_BxT).astype(jnp.float32)
    return {
        "loss_sum": jnp.sum((nll_BxT + z_BxT) * lw),
        "nll_sum": jnp.sum(nll_BxT * w),
        "z_loss_sum": jnp.sum(z_BxT * w),
        "correct_sum": jnp.sum(correct * w),
        "weight_sum": jnp.sum(w),
    }


def model_logits(model: nnx.Module, batch: Batch, rngs: nnx.Rngs | None) -> jax.Array:
    """Logits for a feature-converted batch, as the model's family reads it."""
    return family_of(model).batch_logits(model, batch, rngs)


def summed_loss(
    params: nnx.State,
    graphdef: nnx.GraphDef,
    batch: Batch,
    loss_weights_BxT: jax.Array,
    dropout_key: jax.Array | None,
    z_loss: float,
    frozen: nnx.State | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(the weighted loss sum, summed terms) of a batch or microbatch; unnormalized.
    `frozen`: parameters merged into the model beside `params` but not trained (a
    LoRA run's base weights; flanjax/lora_state.py)."""
    model = nnx.merge(graphdef, params) if frozen is None else nnx.merge(graphdef, params, frozen)
    rngs = nnx.Rngs(dropout=dropout_key) if dropout_key is not None else None
    logits = model_logits(model, batch, rngs)
    weights = batch.get(bk.DECODER_LOSS_WEIGHTS, batch[bk.DECODER_TARGET_TOKENS] > 0)
    terms = cross_entropy(
        logits, batch[bk.DECODER_TARGET_TOKENS], weights, z_loss, loss_weights_BxT
    )
    return terms["loss_sum"], terms


def loss_fn(
    params: nnx.State,
    graphdef: nnx.GraphDef,
    batch: Batch,
    dropout_key: jax.Array | None,
    cfg: LossConfig,
    frozen: nnx.State | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(normalized loss, summed terms) of a whole batch."""
    w_BxT, denom = loss_weights(batch, cfg)
    loss_sum, terms = summed_loss(params, graphdef, batch, w_BxT, dropout_key, cfg.z_loss, frozen)
    return loss_sum / denom, terms


def split_microbatches(batch: Batch, n: int) -> Batch:
    """Each [B, ...] array as [n, B/n, ...]; microbatch i holds rows i, i+n, i+2n, ...

    Strided rows keep each microbatch spread over the batch's data shards (each
    device contributes B/(n x shards) of its own rows), so no data moves.
    """

    def one(x: jax.Array) -> jax.Array:
        b = x.shape[0]
        if b % n:
            raise ValueError(f"batch of {b} rows does not split into {n} microbatches")
        x = jnp.swapaxes(x.reshape(b // n, n, *x.shape[1:]), 0, 1)
        axes = (None, "act_batch", "act_length")[: x.ndim] + (None,) * max(0, x.ndim - 3)
        return constrain(x, axes)

    return {k: one(v) for k, v in batch.items()}


def accumulate_gradients(
    params: nnx.State,
    graphdef: nnx.GraphDef,
    batch: Batch,
    loss_weights_BxT: jax.Array,
    dropout_key: jax.Array | None,
    z_loss: float,
    microbatches: int = 1,
    frozen: nnx.State | None = None,
) -> tuple[nnx.State, dict[str, jax.Array]]:
    """(gradients of the summed loss, summed terms) over the batch, in `microbatches`
    sequential slices (a scan; gradients accumulate in float32). Only `params` are
    differentiated: `frozen` parameters get no gradient computed."""
    grad_fn = jax.grad(summed_loss, has_aux=True)
    if microbatches == 1:
        return grad_fn(params, graphdef, batch, loss_weights_BxT, dropout_key, z_loss, frozen)
    micro = split_microbatches({**batch, "__loss_weights": loss_weights_BxT}, microbatches)

    def body(carry, xs):
        i, mb = xs
        w = mb.pop("__loss_weights")
        key = None if dropout_key is None else jax.random.fold_in(dropout_key, i)
        g, t = grad_fn(params, graphdef, mb, w, key, z_loss, frozen)
        acc_g, acc_t = carry
        acc_g = jax.tree.map(lambda a, x: a + x.astype(jnp.float32), acc_g, g)
        return (acc_g, {k: acc_t[k] + t[k] for k in _TERMS}), None

    zeros = (
        jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params),
        {k: jnp.zeros((), jnp.float32) for k in _TERMS},
    )
    (grads, terms), _ = jax.lax.scan(body, zeros, (jnp.arange(microbatches), micro))
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
    return grads, terms


def guarded_update(
    tx: optax.GradientTransformation, grads: Any, params: Any, opt_state: Any, finite: jax.Array
) -> tuple[Any, Any]:
    """The optimizer's new (params, opt_state) where `finite`, else the old ones: on CPUs
    under `lax.cond` (the optimizer skipped), elsewhere a select (compiled for TPUs,
    lax.cond cost T5-large 0.2 GiB a chip)."""

    def update(params, opt_state):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    if partitioning.target_platform() == "cpu":
        return jax.lax.cond(finite, update, lambda p, o: (p, o), params, opt_state)
    new = update(params, opt_state)
    return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, (params, opt_state))


def train_step(
    state: TrainState,
    batch: Batch,
    frozen: nnx.State | None = None,
    *,
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    schedule: Callable,
    loss_cfg: LossConfig,
    dropout_seed: int | None,
    microbatches: int = 1,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on the global batch. Pure: dropout's key is derived from
    (seed, step[, microbatch]), so a resumed run draws the same dropout masks as
    an uninterrupted one. `frozen`: untrained parameters (a LoRA run's base weights,
    not part of the state: no gradients, no optimizer state; see summed_loss).

    A step whose loss or gradient norm is NaN or Inf changes nothing but the step
    counter and reports `nonfinite` = 1 (the trainer stops or skips on it). On CPUs
    the optimizer runs under `lax.cond`, so a finite step pays nothing for the check
    (a select over every parameter and optimizer slot cost 0.1 s a step of T5-small);
    compiled for other platforms it is that select, which cost less HBM than the cond
    on TPUs (compile-check). Finite gradients make finite updates in both optimizers
    (their second moments add an epsilon; clipping and parameter scaling divide
    by at least 1 or multiply by finite RMS values), so the updates are not checked.
    """
    dropout_key = None
    if dropout_seed is not None:
        dropout_key = jax.random.fold_in(jax.random.key(dropout_seed), state.step)
    w_BxT, denom = loss_weights(batch, loss_cfg)
    grads, terms = accumulate_gradients(
        state.params, graphdef, batch, w_BxT, dropout_key, loss_cfg.z_loss, microbatches, frozen
    )
    grads = jax.tree.map(lambda g: (g / denom).astype(g.dtype), grads)
    loss, grad_norm = terms["loss_sum"] / denom, optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    params, opt_state = guarded_update(tx, grads, state.params, state.opt_state, finite)
    weight_sum = jnp.maximum(terms["weight_sum"], 1.0)
    metrics = {
        "loss": loss,
        "nll_per_token": terms["nll_sum"] / weight_sum,
        "z_loss": terms["z_loss_sum"] / weight_sum,
        "accuracy": terms["correct_sum"] / weight_sum,
        "grad_norm": grad_norm,
        "learning_rate": schedule(state.step),
        "target_tokens": terms["weight_sum"],
        "nonfinite": 1.0 - finite.astype(jnp.float32),
    }
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics
