"""LoRA runs: adapters trained, base weights frozen, checkpoints of the adapters only.

A LoRA run (`TrainConfig.lora.rank > 0`) splits the model's parameters in two:
the adapters (`LoraParam`s, models/lora.py) are the train state's `params`, with
the only optimizer state; the base weights are a separate, frozen `nnx.State`
that the jitted step takes as an input it neither differentiates nor donates
(train_step's `frozen`). Both are sharded by the one rules table.

The base comes from `TrainConfig.initial_checkpoint_path` (required). Every
checkpoint of the run holds the adapters, their optimizer state, the data
position and meta, whose "lora" entry records the LoRA config and the base
checkpoint (absolute MODEL_DIR and step): resuming reloads the base from there,
and evaluation, scoring, generation and export load base + adapters merged once
(`restore_params`). A MODEL_DIR refuses a run with a different LoRA config, a full
fine-tuning run, or another base (`check_run`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from flanjax import checkpointing, train_state
from flanjax.models import ModelConfig, create_model, lora
from flanjax.models.lora import LoraConfig, LoraParam
from flanjax.train_step import TrainState

log = logging.getLogger(__name__)

BASE = nnx.All(nnx.Param, nnx.Not(LoraParam))  # the frozen parameters of a LoRA model
FREE_FIELDS = frozenset({"dropout"})  # may change when a LoRA run resumes


def _init_adapters(cfg: ModelConfig, lora_cfg: LoraConfig, seed: int) -> nnx.State:
    with nnx.use_eager_sharding(False):
        model = create_model(cfg, nnx.Rngs(params=seed), lora_cfg)
    return nnx.state(model, LoraParam)


def _init_state(cfg, lora_cfg, tx: optax.GradientTransformation, seed: int, step: int):
    adapters = _init_adapters(cfg, lora_cfg, seed)
    return TrainState(jnp.asarray(step, jnp.int32), adapters, tx.init(adapters))


def abstract_adapters(cfg: ModelConfig, lora_cfg: LoraConfig) -> nnx.State:
    return jax.eval_shape(functools.partial(_init_adapters, cfg, lora_cfg, 0))


def abstract_state(cfg: ModelConfig, lora_cfg: LoraConfig, tx, seed: int = 0) -> TrainState:
    """The adapter-only train state's shapes: params and optimizer state of adapters."""
    return jax.eval_shape(functools.partial(_init_state, cfg, lora_cfg, tx, seed, 0))


def init_state(cfg, lora_cfg, tx, mesh: Mesh, rules, seed: int, step: int):
    """(state, shardings): fresh adapters (A random, B zero) at `step`, sharded. Only the
    adapters are computed: the base's initializers are dead code to XLA."""
    shardings = train_state.state_shardings(abstract_state(cfg, lora_cfg, tx, seed), mesh, rules)
    init = functools.partial(_init_state, cfg, lora_cfg, tx, seed, step)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        state = jax.jit(init, out_shardings=shardings)()
    return state, shardings


def split(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, adapters, base) of a LoRA model."""
    return nnx.split(model, LoraParam, BASE)


# --- the base checkpoint ----------------------------------------------------------------
def restore_base(ref: dict, cfg: ModelConfig, sharding_of: Callable) -> nnx.State:
    """The base parameters of checkpoint `ref` ({"path", "step"}) in `cfg`'s layer layout,
    placed by `sharding_of(abstract params)`; a base saved in the other layout is
    restored in its own and restacked on the devices."""
    src = checkpointing.Checkpointer(ref["path"], read_only=True)
    try:
        meta = src.read_meta(ref["step"])
        where = f"{ref['path']} step {ref['step']} (LoRA base)"
        checkpointing.check_same_model(meta, cfg, where, also_free=checkpointing.INITIAL_CHOICES)
        saved = checkpointing.model_config_from_json(meta["model"]) if "model" in meta else cfg
        src_cfg = dataclasses.replace(cfg, scan_layers=saved.scan_layers)
        src_abs = train_state.abstract_params(src_cfg)
        target = train_state.with_shardings(src_abs, sharding_of(src_abs))
        params = src.restore_params(ref["step"], target)
    finally:
        src.close()
    if src_cfg.scan_layers != cfg.scan_layers:
        restack = functools.partial(train_state.restack, cfg=cfg)
        out = sharding_of(train_state.abstract_params(cfg))
        params = jax.jit(restack, out_shardings=out)(params)
    return params


def base_ref(initial_checkpoint_path: str) -> dict:
    model_dir, step = checkpointing.locate_checkpoint(initial_checkpoint_path)
    return {"path": model_dir, "step": step}


def run_meta(lora_cfg: LoraConfig, ref: dict) -> dict:
    """The "lora" entry of a LoRA run's checkpoint meta."""
    return {"lora": {"config": lora_cfg.to_json(), "base": ref}}


def check_run(meta: dict, cfg: Any, directory: str) -> None:
    """Refuses MODEL_DIR checkpoints of another model, of a full fine-tuning run when
    LoRA is on (and the reverse), of a different LoRA config, or of another base."""
    checkpointing.check_same_model(meta, cfg.model, directory)
    saved, wanted = meta.get("lora"), cfg.lora
    if saved is None and not wanted.enabled:
        return
    if saved is None or not wanted.enabled:
        held = "a LoRA run's adapters" if saved else "a full fine-tuning run"
        asked = f"LoRA rank {wanted.rank}" if wanted.enabled else "full fine-tuning (no LoRA)"
        raise ValueError(
            f"{directory} holds {held}, but {asked} was requested. Use a new MODEL_DIR, or "
            f"the saved LoraConfig{'' if not saved else ' ' + str(saved['config'])}."
        )
    old = dataclasses.asdict(LoraConfig.from_json(saved["config"]))
    diff = {
        k: (old[k], v)
        for k, v in dataclasses.asdict(wanted).items()
        if k not in FREE_FIELDS and old[k] != v
    }
    if diff:
        raise ValueError(
            f"{directory} holds LoRA adapters of a different LoraConfig (field: (saved, "
            f"requested)): {diff}. Use a new MODEL_DIR, or the saved config."
        )
    if cfg.initial_checkpoint_path and base_ref(cfg.initial_checkpoint_path) != saved["base"]:
        raise ValueError(
            f"{directory} holds adapters of the base {saved['base']}, but "
            f"initial_checkpoint_path {cfg.initial_checkpoint_path!r} is another checkpoint"
        )


# --- the run's start ----------------------------------------------------------------------
def restore_or_init(cfg: Any, tx, mesh: Mesh, ckpt: checkpointing.Checkpointer) -> tuple:
    """A LoRA run's start (`cfg` a TrainConfig): MODEL_DIR's newest adapters, or fresh
    adapters on the initial checkpoint; either way the base restored beside them.
    (adapter state, its shardings, batches consumed, resumed, base, checkpoint meta)."""
    rules = cfg.mesh.rules
    abstract = abstract_state(cfg.model, cfg.lora, tx, cfg.seed)
    shardings = train_state.state_shardings(abstract, mesh, rules)
    target = train_state.with_shardings(abstract, shardings)
    found = ckpt.restore_newest_valid(target, lambda meta: check_run(meta, cfg, ckpt.directory))
    sharding_of = functools.partial(train_state.param_shardings, mesh=mesh, rules=rules)
    if found is not None:
        _, (params, opt_state), data_state, meta = found
        ref = meta["lora"]["base"]
        step = jax.device_put(np.int32(meta["step"]), shardings.step)
        state, resumed = TrainState(step, params, opt_state), True
        batches = int(data_state["batches_consumed"])
        log.info("resumed LoRA adapters from %s step %d", ckpt.directory, meta["step"])
    else:
        if not cfg.initial_checkpoint_path:
            raise ValueError(
                "TrainConfig.lora (rank > 0) trains adapters on a pretrained model: set "
                "TrainConfig.initial_checkpoint_path (INITIAL_CHECKPOINT_PATH) to its checkpoint"
            )
        ref = base_ref(cfg.initial_checkpoint_path)
        base_meta = checkpointing.Checkpointer(ref["path"], read_only=True).read_meta(ref["step"])
        start = int(base_meta.get("step", ref["step"]))
        state, shardings = init_state(cfg.model, cfg.lora, tx, mesh, rules, cfg.seed, start)
        batches, resumed = 0, False
        log.info("LoRA rank %d on %s step %d", cfg.lora.rank, ref["path"], ref["step"])
    base = restore_base(ref, cfg.model, sharding_of)
    log.info(
        "LoRA: %d trainable parameters (adapters), %d frozen (base)",
        count(state.params),
        count(base),
    )
    return state, shardings, batches, resumed, base, run_meta(cfg.lora, ref)


def count(params: Any) -> int:
    """The number of parameters (array elements) in a tree."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


# --- loading for evaluation, inference and export ------------------------------------------
def restore_params(
    ckpt: checkpointing.Checkpointer, step: int, cfg: ModelConfig, sharding_of: Callable
) -> nnx.State:
    """Checkpoint `step`'s parameters of model `cfg` placed by `sharding_of(abstract)`:
    a full checkpoint's as saved; a LoRA checkpoint's base merged with its adapters
    (W + scale * A B, once, on the devices), so the plain model runs them."""
    meta = ckpt.read_meta(step)
    abs_params = train_state.abstract_params(cfg)
    if "lora" not in meta:
        return ckpt.restore_params(
            step, train_state.with_shardings(abs_params, sharding_of(abs_params))
        )
    lora_cfg = LoraConfig.from_json(meta["lora"]["config"])
    abs_adapters = abstract_adapters(cfg, lora_cfg)
    adapters = ckpt.restore_params(
        step, train_state.with_shardings(abs_adapters, sharding_of(abs_adapters))
    )
    base = restore_base(meta["lora"]["base"], cfg, sharding_of)
    return merge(base, adapters, lora_cfg, cfg, sharding_of(abs_params))


def merge(base: nnx.State, adapters: nnx.State, lora_cfg: LoraConfig, cfg, out_shardings=None):
    """The base parameters with the adapters merged in (an nnx.State of the plain model)."""

    def merged(base: nnx.State, adapters: nnx.State) -> nnx.State:
        pure = lora.merge_params(base.to_pure_dict(), adapters.to_pure_dict(), lora_cfg.scale)
        out = train_state.abstract_params(cfg)
        nnx.replace_by_pure_dict(out, pure)
        return out

    return jax.jit(merged, out_shardings=out_shardings)(base, adapters)


def load_checkpoint_adapters(model_dir: str, step: int | None = None):
    """(model config, LoraConfig, adapters as a pure dict on the host, meta) of a LoRA
    MODEL_DIR's checkpoint `step` (default: the latest)."""
    ckpt = checkpointing.Checkpointer(model_dir, read_only=True)
    try:
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoints in {ckpt.directory}")
        meta = ckpt.read_meta(step)
        if "lora" not in meta:
            raise ValueError(f"{model_dir} step {step} is not a LoRA checkpoint (no adapters)")
        cfg = checkpointing.model_config_from_json(meta["model"])
        lora_cfg = LoraConfig.from_json(meta["lora"]["config"])
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abs_adapters = abstract_adapters(cfg, lora_cfg)
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abs_adapters
        )
        adapters = ckpt.restore_params(step, target)
    finally:
        ckpt.close()
    return cfg, lora_cfg, jax.device_get(adapters.to_pure_dict()), meta


def frozen_shardings(base: nnx.State) -> Any:
    return jax.tree.map(lambda a: a.sharding, base)
