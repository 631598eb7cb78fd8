"""A model's stack of identical layers: a list of modules, or one scanned module.

`scan_layers=False` (the default) keeps `nnx.List([layer_0, layer_1, ...])`: the
parameter tree has one subtree per layer (`decoder_layers/3/attn/query`) and the
forward pass is unrolled, one copy of the layer per layer in the compiled program.

`scan_layers=True` builds the layers under `nnx.vmap`, so each parameter is
stacked with a leading N (layers) dimension whose logical axis is "layers"
(`decoder_layers/attn/query`: N x D x H x K), and runs them with `jax.lax.scan`:
the compiled program holds the layer once, so compile time and code size no
longer grow with depth (what makes a 24+24-layer T5-XXL compile in minutes). The
computation is the same; the scanned and unrolled models give equal outputs for
equal (stacked / unstacked) parameters. Rematerialization wraps the scan body.

The two layouts convert into each other (`stack_params`, `unstack_params`): Hugging
Face conversion works on the unstacked layout, and a run may start from an
initial checkpoint saved in the other layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from flanjax.models import remat

LAYERS_AXIS = "layers"  # logical axis of the stacked dimension (partitioning rules)
STACK_NAMES = ("encoder_layers", "decoder_layers")  # the models' stack attributes


def build(make: Callable[[nnx.Rngs], nnx.Module], n: int, scan: bool, rngs: nnx.Rngs):
    """n layers from `make(rngs)`: an nnx.List, or (scan) one module of stacked params."""
    if not scan:
        return nnx.List([make(rngs) for _ in range(n)])

    @nnx.split_rngs(splits=n)
    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: LAYERS_AXIS})
    def make_stacked(r: nnx.Rngs) -> nnx.Module:
        return make(r)

    return make_stacked(rngs)


def is_scanned(stack: Any) -> bool:
    return not isinstance(stack, nnx.List)


def run(stack: Any, x: jax.Array, args: tuple, rngs: nnx.Rngs | None, policy: str) -> jax.Array:
    """x through every layer in order: `layer(x, *args, rngs) -> x`.

    Dropout in a scanned stack draws one key from `rngs.dropout` and splits it per
    layer (the unrolled stack draws per layer from the stream), so the two layouts
    agree exactly without dropout and in distribution with it.
    """
    if not is_scanned(stack):
        for layer in stack:
            x = remat.wrap(layer, policy)(x, *args, rngs)
        return x
    graphdef, state = nnx.split(stack)
    n = num_layers(stack)
    keys = None if rngs is None else jax.random.split(rngs.dropout(), n)

    def body(carry: jax.Array, xs: tuple) -> tuple[jax.Array, None]:
        layer_state, key = xs
        layer = nnx.merge(graphdef, layer_state)
        layer_rngs = None if key is None else nnx.Rngs(dropout=key)
        return layer(carry, *args, layer_rngs), None

    x, _ = jax.lax.scan(remat.checkpoint(body, policy), x, (state, keys))
    return x


def num_layers(stack: Any) -> int:
    if not is_scanned(stack):
        return len(stack)
    return jax.tree.leaves(nnx.state(stack))[0].shape[0]


def layers(stack: Any) -> Sequence[nnx.Module]:
    """The layers one by one (KV-cache decoding walks them with per-layer caches).
    A scanned stack is sliced, layer i's parameters being row i of each stack."""
    if not is_scanned(stack):
        return list(stack)
    graphdef, state = nnx.split(stack)
    return [
        nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
        for i in range(num_layers(stack))
    ]


def stack_params(pure: dict, names: Sequence[str]) -> dict:
    """Unstacked -> stacked layout of a pure parameter dict (`nnx.State.to_pure_dict`):
    each `names` entry {0: tree, 1: tree, ...} becomes one tree of stacked arrays."""
    out = dict(pure)
    for name in names:
        per_layer = [pure[name][i] for i in sorted(pure[name], key=int)]
        out[name] = jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)
    return out


def unstack_params(pure: dict, names: Sequence[str]) -> dict:
    """Stacked -> unstacked layout (the inverse of `stack_params`)."""
    out = dict(pure)
    for name in names:
        n = jax.tree.leaves(pure[name])[0].shape[0]
        out[name] = {i: jax.tree.map(lambda a, i=i: a[i], pure[name]) for i in range(n)}
    return out
