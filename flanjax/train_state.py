"""Train state built from abstract shapes, with shardings from the logical rules.

The state's structure and shapes come from `nnx.eval_shape` / `jax.eval_shape`
(nothing is allocated); parameter shardings come from each parameter's logical
axes through the rules table; optimizer-state shardings follow the parameter
each leaf belongs to. The state is then materialized by a jit whose
`out_shardings` place every array on its devices directly.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from flanjax import models, partitioning
from flanjax.models import LoraConfig, ModelConfig, create_model, layer_stack
from flanjax.models.lora import LoraParam


@struct.dataclass
class TrainState:
    """What the train step carries: the step, the trained parameters (all of them, or a
    LoRA run's adapters) and their optimizer state."""

    step: jax.Array
    params: nnx.State
    opt_state: optax.OptState


def param_specs(abs_params: nnx.State, rules: partitioning.Rules, mesh: Mesh | None = None) -> Any:
    """PartitionSpecs of the parameters from their logical axes; with `mesh`, each
    fitted to the parameter's shape (`partitioning.fit_spec`)."""
    with nnx.logical_axis_rules(rules):
        specs = nnx.get_partition_spec(abs_params)
    if mesh is None:
        return specs
    return jax.tree_util.tree_map_with_path(
        lambda kp, s, a: partitioning.fit_spec(s, a.shape, mesh, jax.tree_util.keystr(kp)),
        specs,
        abs_params,
        is_leaf=lambda x: isinstance(x, P),
    )


def _opt_specs(opt_state: Any, p_specs: Any, abs_params: Any) -> Any:
    """PartitionSpecs for the optimizer state, matched to parameters by key path.

    Optimizer states mirror the parameter tree below some prefix (`v_row/...`,
    `inner_states/train/inner_state/0/mu/...` under `optax.multi_transform`), so a
    leaf whose key path ends with a parameter's path belongs to that parameter
    and takes its spec (`partitioning.state_spec_like`); other leaves (counts)
    are replicated.
    """
    by_path = {
        tuple(kp): (s, a.shape)
        for (kp, s), a in zip(
            jax.tree_util.tree_leaves_with_path(p_specs, is_leaf=lambda x: isinstance(x, P)),
            jax.tree.leaves(abs_params),
            strict=True,
        )
    }

    def one(kp: tuple, leaf: Any) -> P:
        for i in range(len(kp)):
            if tuple(kp[i:]) in by_path:
                spec, pshape = by_path[tuple(kp[i:])]
                return partitioning.state_spec_like(spec, pshape, leaf.shape)
        return P()

    return jax.tree_util.tree_map_with_path(one, opt_state)


def state_shardings(abs_state: TrainState, mesh: Mesh, rules: partitioning.Rules) -> TrainState:
    """NamedShardings for every leaf of the train state."""
    p_specs = param_specs(abs_state.params, rules, mesh)
    opt = _opt_specs(abs_state.opt_state, p_specs, abs_state.params)
    to_sharding = functools.partial(
        jax.tree.map, lambda s: NamedSharding(mesh, s), is_leaf=lambda x: isinstance(x, P)
    )
    return TrainState(
        step=NamedSharding(mesh, P()),
        params=to_sharding(p_specs),
        opt_state=to_sharding(opt),
    )


def _init_params(cfg: ModelConfig, seed: int, lora_cfg: LoraConfig | None = None) -> nnx.State:
    with nnx.use_eager_sharding(False):
        model = create_model(cfg, nnx.Rngs(params=seed), lora_cfg)
    return nnx.state(model, nnx.Param)


def abstract_params(cfg: ModelConfig, lora_cfg: LoraConfig | None = None) -> nnx.State:
    """Shapes of the model's parameters (with LoRA adapters if `lora_cfg` is on)."""
    return jax.eval_shape(functools.partial(_init_params, cfg, 0, lora_cfg))


def init_adapters(cfg: ModelConfig, lora_cfg: LoraConfig, seed: int) -> nnx.State:
    """Fresh LoRA adapters of model `cfg` (A random, B zero)."""
    with nnx.use_eager_sharding(False):
        model = create_model(cfg, nnx.Rngs(params=seed), lora_cfg)
    return nnx.state(model, LoraParam)


def abstract_adapters(cfg: ModelConfig, lora_cfg: LoraConfig) -> nnx.State:
    """Shapes of the LoRA adapters of model `cfg`."""
    return jax.eval_shape(functools.partial(init_adapters, cfg, lora_cfg, 0))


def restack(params: nnx.State, cfg: ModelConfig) -> nnx.State:
    """`params`, in either layer layout, in the layout of `cfg` (`scan_layers`:
    stacked or one subtree per layer; models/layer_stack.py)."""
    pure = params.to_pure_dict()
    names = models.layer_stacks(cfg)
    stacked = not all(isinstance(k, int) for k in pure[names[0]])
    if cfg.scan_layers and not stacked:
        pure = layer_stack.stack_params(pure, names)
    elif stacked and not cfg.scan_layers:
        pure = layer_stack.unstack_params(pure, names)
    out = abstract_params(cfg)
    nnx.replace_by_pure_dict(out, pure)
    return out


def param_shardings(abs_params: nnx.State, mesh: Mesh, rules: partitioning.Rules) -> Any:
    return jax.tree.map(
        lambda s: NamedSharding(mesh, s),
        param_specs(abs_params, rules, mesh),
        is_leaf=lambda x: isinstance(x, P),
    )


def _init_state(cfg: ModelConfig, tx: optax.GradientTransformation, seed: int) -> TrainState:
    params = _init_params(cfg, seed)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))


def abstract_state(cfg: ModelConfig, tx: optax.GradientTransformation, seed: int = 0) -> TrainState:
    return jax.eval_shape(functools.partial(_init_state, cfg, tx, seed))


def init_state(
    cfg: ModelConfig,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    rules: partitioning.Rules,
    seed: int,
) -> tuple[TrainState, TrainState]:
    """(state, shardings): a freshly initialized, sharded train state."""
    shardings = state_shardings(abstract_state(cfg, tx, seed), mesh, rules)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        state = jax.jit(functools.partial(_init_state, cfg, tx, seed), out_shardings=shardings)()
    return state, shardings


def with_shardings(abs_tree: Any, shardings: Any) -> Any:
    """Abstract arrays carrying their target shardings (for restore or AOT)."""
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abs_tree, shardings
    )


def graphdef_of(
    cfg: ModelConfig, rules: partitioning.Rules, lora_cfg: LoraConfig | None = None
) -> nnx.GraphDef:
    with nnx.use_eager_sharding(False), nnx.logical_axis_rules(rules):
        model = nnx.eval_shape(lambda: create_model(cfg, nnx.Rngs(0), lora_cfg))
    return nnx.split(model, nnx.Param)[0]


def state_from_params(
    params: nnx.State, tx: optax.GradientTransformation, shardings: TrainState, step: int
) -> TrainState:
    """A train state at `step` around given (restored) parameters: fresh optimizer
    state, placed by `shardings` (initialization from a pretrained checkpoint)."""
    opt_state = jax.jit(tx.init, out_shardings=shardings.opt_state)(params)
    step_arr = jax.device_put(jnp.asarray(step, jnp.int32), shardings.step)
    return TrainState(step_arr, params, opt_state)
