"""Rematerialization policies for a model's layers (`remat_policy` on the model configs).

"none": keep every activation the backward pass needs (fastest, most memory).
"full": keep only each layer's inputs; recompute the layer in the backward pass.
"dots": keep the outputs of every matmul (incl. attention scores), recompute
    the cheap elementwise ops in between.
"dots_no_batch": keep the outputs of weight matmuls only (no batch dimension
    in the contraction), recompute attention scores and elementwise ops.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

POLICIES: dict[str, Callable | None] = {
    "full": None,  # jax.checkpoint's default: save nothing inside the layer
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
NAMES = ("none", *POLICIES)


def check(policy: str, owner: str) -> None:
    if policy not in NAMES:
        raise ValueError(f"{owner}.remat_policy {policy!r}: use one of {NAMES}")


def wrap(layer: nnx.Module, policy: str) -> Callable:
    """The layer's call, rematerialized in the backward pass under `policy`."""
    if policy == "none":
        return layer
    fn = nnx.remat(type(layer).__call__, static_argnums=(), policy=POLICIES[policy])
    return lambda *args: fn(layer, *args)


def checkpoint(fn: Callable, policy: str) -> Callable:
    """A pure function (a scan body) rematerialized in the backward pass under `policy`."""
    if policy == "none":
        return fn
    return jax.checkpoint(fn, policy=POLICIES[policy], prevent_cse=False)
