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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from flanjax import checkpointing, model_loading, train_state
from flanjax.models import ModelConfig
from flanjax.models.lora import LoraConfig, LoraParam
from flanjax.train_state import TrainState

log = logging.getLogger(__name__)

BASE = nnx.All(nnx.Param, nnx.Not(LoraParam))  # the frozen parameters of a LoRA model
FREE_FIELDS = frozenset({"dropout"})  # may change when a LoRA run resumes


def _init_state(cfg, lora_cfg, tx: optax.GradientTransformation, seed: int, step: int):
    adapters = train_state.init_adapters(cfg, lora_cfg, seed)
    return TrainState(jnp.asarray(step, jnp.int32), adapters, tx.init(adapters))


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
    where = f"{ref['path']} step {ref['step']} (LoRA base)"
    base = model_loading.restore_params(ref["path"], ref["step"], cfg.model, sharding_of, where)
    log.info(
        "LoRA: %d trainable parameters (adapters), %d frozen (base)",
        count(state.params),
        count(base),
    )
    return state, shardings, batches, resumed, base, run_meta(cfg.lora, ref)


def count(params: Any) -> int:
    """The number of parameters (array elements) in a tree."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def frozen_shardings(base: nnx.State) -> Any:
    return jax.tree.map(lambda a: a.sharding, base)
