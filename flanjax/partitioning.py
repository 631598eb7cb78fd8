"""Meshes, the logical-axis rules table, and shardings derived from it.

Every parameter and activation in flanjax's models carries logical axis names
(t5x style). One rules table, plain data, maps each logical name to mesh axes;
changing data/FSDP/tensor parallelism is a change of mesh sizes or rules only.

Parameter axes: vocab, embed, mlp, heads, kv, relpos_buckets.
Activation axes carry an `act_` prefix (act_batch, act_length, act_embed, ...)
so that a parameter axis and an activation axis can map to different mesh axes
(e.g. FSDP shards parameters' `embed` while activations shard `act_batch`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from flax.core import spmd as core_spmd
from flax.linen import spmd as linen_spmd
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

DEFAULT_RULES: Rules = (
    # parameters
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("relpos_buckets", None),
    # activations
    ("act_batch", ("data", "fsdp")),
    ("act_length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv", None),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Sizes of the data, fsdp and tensor mesh axes; -1 means inferred (at most one)."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    rules: Rules = DEFAULT_RULES

    def shape(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        if sizes.count(-1) > 1:
            raise ValueError(f"mesh {sizes}: at most one axis may be -1 (inferred)")
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise ValueError(f"mesh {sizes}: {num_devices} devices not divisible by {known}")
            sizes[sizes.index(-1)] = num_devices // known
        if math.prod(sizes) != num_devices:
            raise ValueError(
                f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs "
                f"{math.prod(sizes)} devices, but {num_devices} are available"
            )
        return tuple(sizes)  # type: ignore[return-value]


def make_mesh(config: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh with Auto axis types (with_sharding_constraint style)."""
    devices = list(devices) if devices is not None else jax.devices()
    shape = config.shape(len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def logical_to_spec(axes: Sequence[str | None], rules: Rules) -> P:
    return linen_spmd.logical_to_mesh_axes(tuple(axes), rules)


def logical_sharding(mesh: Mesh, axes: Sequence[str | None], rules: Rules) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(axes, rules))


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Sharding constraint on an activation by logical names, under the rules in context.

    A no-op outside a mesh or a `nnx.logical_axis_rules` context (e.g. plain
    eager calls in tests).
    """
    rules = core_spmd.get_logical_axis_rules()
    mesh = jax.sharding.get_abstract_mesh()
    if not rules or mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(axes, rules))


def state_specs_like(params_specs, params_shapes, tree_shapes):
    """PartitionSpecs for an optimizer-state subtree shaped like the parameters.

    Leaves with the parameter's shape take its spec; Adafactor's factored second
    moments (the parameter's shape less its last, or less its second-to-last,
    dimension) take the spec less that dimension; anything else is replicated.
    """

    def one(spec: P, pshape, leaf) -> P:
        shape, pshape = tuple(leaf.shape), tuple(pshape.shape)
        spec = tuple(spec) + (None,) * (len(pshape) - len(tuple(spec)))
        if shape == pshape:
            return P(*spec)
        if shape == pshape[:-1]:
            return P(*spec[:-1])
        if len(pshape) >= 2 and shape == pshape[:-2] + pshape[-1:]:
            return P(*(spec[:-2] + spec[-1:]))
        return P()

    return jax.tree.map(one, params_specs, params_shapes, tree_shapes)


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
    """Sharding of a [batch, length] input array."""
    return logical_sharding(mesh, ("act_batch", "act_length"), rules)


def host_local_batch(
    mesh: Mesh, rules: Rules, batch: dict[str, np.ndarray]
) -> dict[str, jax.Array]:
    """Assembles global arrays from this process's share of the batch."""
    sharding = batch_sharding(mesh, rules)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }
