"""Optimizers and learning-rate schedules, built from a frozen config."""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any

import jax
import jax.numpy as jnp
import optax

from flanjax import adafactor
from flanjax.models import layer_stack


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer and schedule.

    name: "adafactor" (T5X's defaults: factored second moments, decay_rate 0.8,
      no momentum, update clipping at 1.0, updates scaled by parameter RMS) or
      "adamw".
    schedule: "constant", "rsqrt" (lr / sqrt(max(step, warmup))), or "cosine"
      (to 0 at `decay_steps`); every schedule warms up linearly over
      `warmup_steps` first ("rsqrt" is flat during warm-up, as in T5).
    freeze: regular expressions searched in each parameter's path (its module
      names joined by "/", e.g. "encoder_layers/0/attn/query"; with scan_layers
      one path holds every layer: "encoder_layers/attn/query"); matching
      parameters get no updates (and no optimizer state), and are left out of
      gradient clipping's global norm.
    """

    name: str = "adafactor"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_steps: int = 0  # cosine only
    weight_decay: float = 0.0  # adamw only
    b1: float = 0.9
    b2: float = 0.999
    grad_clip_norm: float = 0.0  # 0 disables global-norm clipping
    freeze: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in ("adafactor", "adamw"):
            raise ValueError(f"OptimizerConfig.name {self.name!r}: use 'adafactor' or 'adamw'")
        if self.schedule not in ("constant", "rsqrt", "cosine"):
            raise ValueError(
                f"OptimizerConfig.schedule {self.schedule!r}: use constant, rsqrt or cosine"
            )


def make_schedule(cfg: OptimizerConfig) -> optax.Schedule:
    lr, warm = cfg.learning_rate, cfg.warmup_steps
    if cfg.schedule == "rsqrt":
        # T5's inverse square root: constant lr / sqrt(warmup) until `warmup`.
        return lambda step: lr / jnp.sqrt(jnp.maximum(step, max(warm, 1)).astype(jnp.float32))
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warm, max(cfg.decay_steps, warm + 1))
    if warm:
        return optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warm), optax.constant_schedule(lr)], [warm]
        )
    return optax.constant_schedule(lr)


def make_optimizer(cfg: OptimizerConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = make_schedule(cfg)
    if cfg.name == "adafactor":
        tx = adafactor.adafactor(schedule)  # optax.adafactor's chain and state
        # Per layer in a scanned stack, as T5X treats the stacked axis: Adafactor's
        # parameter scale and update clipping take RMS norms over a whole tensor.
        per_stack = {name: per_layer(tx) for name in layer_stack.STACK_NAMES}
        tx = optax.multi_transform({"tensor": tx, **per_stack}, stack_labels)
    else:  # elementwise: a stacked tensor updates as its layers would
        tx = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
    if cfg.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
    if cfg.freeze:
        labels = lambda params: freeze_labels(params, cfg.freeze)  # noqa: E731
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    return tx, schedule


def stack_labels(params: Any) -> Any:
    """The stack's name for the parameters of a scanned layer stack (models/layer_stack.py:
    under the stack's name with no layer index after it), "tensor" for the others.
    Each stack is its own group: stacks differ in depth."""

    def label(kp: tuple, _: Any) -> str:
        keys = [k.key for k in kp if isinstance(k, jax.tree_util.DictKey)]
        for name, nxt in itertools.pairwise(keys):
            if name in layer_stack.STACK_NAMES:
                return "tensor" if isinstance(nxt, int) else name
        return "tensor"

    return jax.tree_util.tree_map_with_path(label, params)


def per_layer(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner` applied to each layer's slice of stacked parameters (vmapped over the
    leading axis), so a scanned model updates as its unrolled twin. Parameters
    without a stack (nothing to vmap over) go to `inner` as they are."""

    def init(params: Any) -> Any:
        return jax.vmap(inner.init)(params) if jax.tree.leaves(params) else inner.init(params)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if not jax.tree.leaves(updates):
            return inner.update(updates, state, params)
        return jax.vmap(inner.update)(updates, state, params)

    return optax.GradientTransformation(init, update)


def param_path(key_path: tuple) -> str:
    """A parameter's path as "module/submodule/name" (nnx.State keys)."""
    return "/".join(str(k.key) for k in key_path if isinstance(k, jax.tree_util.DictKey))


def freeze_labels(params: Any, patterns: tuple[str, ...]) -> Any:
    """ "frozen" or "train" for each parameter; refuses a pattern that matches nothing."""
    compiled = [re.compile(p) for p in patterns]
    paths = [param_path(kp) for kp, _ in jax.tree_util.tree_leaves_with_path(params)]
    for pat in compiled:
        if not any(pat.search(p) for p in paths):
            raise ValueError(f"OptimizerConfig.freeze {pat.pattern!r} matches no parameter")
    return jax.tree_util.tree_map_with_path(
        lambda kp, _: "frozen" if any(p.search(param_path(kp)) for p in compiled) else "train",
        params,
    )
