"""Meshes, the logical-axis rules table, and shardings derived from it.

Every parameter and activation in flanjax's models carries logical axis names
(t5x style). One rules table, plain data, maps each logical name to mesh axes;
changing data/FSDP/tensor parallelism is a change of mesh sizes or rules only
(`MeshConfig` in gin; gin_configs/partitioning/*.gin set both).

Mesh axes, outermost first: `replica` (pure data parallelism across slices or
nodes: parameters replicated, only gradients cross the slow network), `data`
(data parallelism inside a slice/node), `fsdp` (batch and parameter sharding:
parameters are all-gathered per layer), `tensor` (heads / MLP / vocabulary
sharding). The batch is split over replica x data x fsdp.

Parameter axes: vocab, embed, mlp, heads, kv_heads (key/value heads of grouped-
query attention), kv (head dim), relpos_buckets, layers (scanned stacks),
lora_rank (LoRA adapters, replicated). Activation axes carry an `act_` prefix
(act_batch, act_length, act_embed, ...) so that a parameter axis and an activation
axis can map to different mesh axes (e.g. FSDP shards parameters' `embed` while
activations shard `act_batch`).

Parameters whose dimension does not divide by its mesh axes (SmolLM2's 9 query
and 3 key/value heads on tensor=2) keep that dimension replicated
(`fit_spec`), so any rules table works for any model; activations may be
sharded unevenly inside the jitted step, which XLA pads.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import jax
import numpy as np
from flax.core import spmd as core_spmd
from flax.linen import spmd as linen_spmd
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

log = logging.getLogger(__name__)

MESH_AXES = ("replica", "data", "fsdp", "tensor")
BATCH_AXES = ("replica", "data", "fsdp")
Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

DEFAULT_RULES: Rules = (
    # parameters
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("kv", None),
    ("relpos_buckets", None),
    ("layers", None),  # the stacked dimension of scanned layers (models/layer_stack.py)
    ("lora_rank", None),  # LoRA adapters' rank dimension (models/lora.py)
    # activations
    ("act_batch", BATCH_AXES),
    ("act_length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_kv", None),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Sizes of the mesh axes; -1 means inferred from the device count (at most one).

    `replica` is the outer data-parallel axis across TPU slices (multislice) or
    GPU nodes: with several slices, or several processes, it spans them (see
    `make_mesh`). `rules` is the logical-axis table (gin:
    `MeshConfig.rules = (('vocab', 'tensor'), ...)`).
    """

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    replica: int = 1
    rules: Rules = DEFAULT_RULES

    def shape(self, num_devices: int) -> tuple[int, int, int, int]:
        """(replica, data, fsdp, tensor) sizes for `num_devices`, in MESH_AXES order."""
        sizes = [self.replica, self.data, self.fsdp, self.tensor]
        if sizes.count(-1) > 1:
            raise ValueError(f"mesh {self._named(sizes)}: at most one axis may be -1 (inferred)")
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise ValueError(
                    f"mesh {self._named(sizes)}: {num_devices} devices not divisible by {known}"
                )
            sizes[sizes.index(-1)] = num_devices // known
        if math.prod(sizes) != num_devices:
            raise ValueError(
                f"mesh {self._named(sizes)} needs {math.prod(sizes)} devices, "
                f"but {num_devices} are available"
            )
        return tuple(sizes)  # type: ignore[return-value]

    @staticmethod
    def _named(sizes: Sequence[int]) -> str:
        return " ".join(f"{a}={s}" for a, s in zip(MESH_AXES, sizes))


def _granules(devices: Sequence[jax.Device]) -> tuple[int, bool]:
    """(number of TPU slices, or of processes off TPU; whether processes are the granules)."""
    slices = {getattr(d, "slice_index", 0) for d in devices}
    if len(slices) > 1:
        return len(slices), False
    if devices[0].platform == "tpu":  # one slice: every chip on the fast interconnect
        return 1, False
    return len({d.process_index for d in devices}), True


def make_mesh(config: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh with Auto axis types (with_sharding_constraint style).

    With several TPU slices (or, on GPUs/CPUs, several processes) and a
    `replica` size divisible by their number, `replica` spans them and the other
    axes stay inside a slice/process (`create_hybrid_device_mesh`), so only the
    gradient all-reduce crosses the data-center network.
    """
    devices = list(devices) if devices is not None else jax.devices()
    shape = config.shape(len(devices))
    auto = (AxisType.Auto,) * len(MESH_AXES)
    granules, by_process = _granules(devices)
    if granules > 1 and shape[0] % granules == 0:
        from jax.experimental import mesh_utils

        ici = (shape[0] // granules, *shape[1:])
        grid = mesh_utils.create_hybrid_device_mesh(
            ici, (granules, 1, 1, 1), devices, process_is_granule=by_process
        )
        return Mesh(grid, MESH_AXES, axis_types=auto)
    return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)


def logical_to_spec(axes: Sequence[str | None], rules: Rules) -> P:
    return linen_spmd.logical_to_mesh_axes(tuple(axes), rules)


def logical_sharding(mesh: Mesh, axes: Sequence[str | None], rules: Rules) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(axes, rules))


def fit_spec(spec: P, shape: Sequence[int], mesh: Mesh, name: str = "") -> P:
    """`spec` with each dimension's mesh axes trimmed (from the innermost) until the
    dimension divides by their product; an axis that cannot divide is replicated."""
    out = []
    for dim, entry in zip(shape, tuple(spec) + (None,) * (len(shape) - len(tuple(spec)))):
        axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        kept = list(axes)
        while kept and dim % math.prod(mesh.shape[a] for a in kept):
            kept.pop()
        if len(kept) < len(axes):
            log.info(
                "%s: dimension %d not divisible over %s; sharded over %s", name, dim, axes, kept
            )
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    return P(*out)


def target_platform() -> str:
    """The platform being compiled for: that of the mesh set by `jax.set_mesh` (a TPU
    topology's when compile-check compiles for a TPU on a CPU host), else JAX's
    default backend. For the few choices that are faster on one platform and slower
    on another."""
    device = getattr(jax.sharding.get_abstract_mesh(), "abstract_device", None)
    return device.platform if device is not None else jax.default_backend()


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


def state_spec_like(spec: P, param_shape: Sequence[int], leaf_shape: Sequence[int]) -> P:
    """The spec of an optimizer-state leaf that belongs to a parameter.

    A leaf of the parameter's shape takes its spec; Adafactor's factored second
    moments (the parameter's shape less its last, or less its second-to-last,
    dimension) take the spec less that dimension; anything else is replicated.
    """
    shape, pshape = tuple(leaf_shape), tuple(param_shape)
    spec = tuple(spec) + (None,) * (len(pshape) - len(tuple(spec)))
    if shape == pshape:
        return P(*spec)
    if shape == pshape[:-1]:
        return P(*spec[:-1])
    if len(pshape) >= 2 and shape == pshape[:-2] + pshape[-1:]:
        return P(*(spec[:-2] + spec[-1:]))
    return P()


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
    """Sharding of a [batch, length] input array."""
    return logical_sharding(mesh, ("act_batch", "act_length"), rules)


def data_layout(
    mesh: Mesh, rules: Rules, batch_size: int, process_index: int | None = None
) -> tuple[int, int]:
    """(shard index, number of shards) of the global batch this process must read.

    The process's devices hold a contiguous block of the batch's rows; processes
    whose devices hold the same rows (e.g. a `tensor` axis spanning processes)
    read the same shard. The input pipeline reads shard `index` of `count` and
    yields `batch_size // count` rows per step (T5X's DataLayout).
    """
    process_index = jax.process_index() if process_index is None else process_index
    index_map = batch_sharding(mesh, rules).devices_indices_map((batch_size, 1))
    rows = {
        (s.start or 0, batch_size if s.stop is None else s.stop)
        for d, (s, _) in index_map.items()
        if d.process_index == process_index
    }
    start, stop = min(r[0] for r in rows), max(r[1] for r in rows)
    covered = np.zeros(batch_size, bool)
    for a, b in rows:
        covered[a:b] = True
    local = stop - start
    if not covered[start:stop].all() or batch_size % local or start % local:
        raise ValueError(
            f"process {process_index} holds batch rows {sorted(rows)} of {batch_size}: not one "
            "aligned block; reorder the mesh axes or change the batch size"
        )
    return start // local, batch_size // local


def host_local_batch(
    mesh: Mesh, rules: Rules, batch: dict[str, np.ndarray], num_shards: int | None = None
) -> dict[str, jax.Array]:
    """Assembles global arrays from this process's share of the batch.

    `num_shards` is `data_layout`'s count (default: the process count, right
    when every process holds different rows).
    """
    sharding = batch_sharding(mesh, rules)
    shards = jax.process_count() if num_shards is None else num_shards

    def one(v: np.ndarray) -> jax.Array:
        v = np.asarray(v)
        global_shape = (v.shape[0] * shards, *v.shape[1:])
        return jax.make_array_from_process_local_data(sharding, v, global_shape)

    return {k: one(v) for k, v in batch.items()}
