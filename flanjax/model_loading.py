"""The one way to read a model out of a MODEL_DIR (checkpointing.py owns the folder
layout; this module turns its checkpoints into parameters and models).

Used by the trainer (the initial checkpoint), LoRA runs (their frozen base), the
evaluator, inference (`flanjax score` / `generate`), preflight and the exporters
(conversion/hf.py, conversion/peft.py). A checkpoint is either a model's parameters
(a full fine-tuning run, or a converted checkpoint) or a LoRA run's adapters with a
reference to their base; both load as the plain model's parameters, in the layer
layout (`scan_layers`) the caller asks for, whichever layout they were saved in.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh

from flanjax import checkpointing, partitioning, train_state
from flanjax.models import Model, ModelConfig, lora
from flanjax.models.lora import LoraConfig

ShardingOf = Callable[[Any], Any]  # abstract params -> their shardings


def on_one_device(abstract: Any) -> Any:
    """Every array on the first device (inference on one host)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda _: device, abstract)


def resolve_step(ckpt: checkpointing.Checkpointer, step: int | None) -> int:
    """`step`, or the newest committed checkpoint's; a folder without one is named."""
    step = ckpt.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoints in {ckpt.directory}")
    return step


def restore_params(
    model_dir: str, step: int, cfg: ModelConfig, sharding_of: ShardingOf, where: str = ""
) -> nnx.State:
    """Checkpoint `step`'s parameters as model `cfg`'s, placed by `sharding_of(abstract
    params)`. The saved model must be `cfg` up to the choices a run may make over a
    pretrained checkpoint (checkpointing.INITIAL_CHOICES); a checkpoint saved in the
    other layer layout is restored in its own and restacked on the devices; a LoRA
    checkpoint's base is merged with its adapters (W + scale * A B, once)."""
    where = where or f"{model_dir} step {step}"
    ckpt = checkpointing.Checkpointer(model_dir, read_only=True)
    try:
        meta = ckpt.read_meta(step)
        checkpointing.check_same_model(meta, cfg, where, also_free=checkpointing.INITIAL_CHOICES)
        saved = checkpointing.model_config_from_json(meta["model"]) if "model" in meta else cfg
        if "lora" in meta:
            lora_cfg = LoraConfig.from_json(meta["lora"]["config"])
            abs_adapters = train_state.abstract_adapters(cfg, lora_cfg)
            adapters = ckpt.restore_params(
                step, train_state.with_shardings(abs_adapters, sharding_of(abs_adapters))
            )
        else:
            src_cfg = dataclasses.replace(cfg, scan_layers=saved.scan_layers)
            src_abs = train_state.abstract_params(src_cfg)
            params = ckpt.restore_params(
                step, train_state.with_shardings(src_abs, sharding_of(src_abs))
            )
    finally:
        ckpt.close()
    if "lora" in meta:
        ref = meta["lora"]["base"]
        base = restore_params(ref["path"], ref["step"], cfg, sharding_of, f"{where} (LoRA base)")
        return merge(base, adapters, lora_cfg, cfg, sharding_of(train_state.abstract_params(cfg)))
    if saved.scan_layers != cfg.scan_layers:
        restack = functools.partial(train_state.restack, cfg=cfg)
        out = sharding_of(train_state.abstract_params(cfg))
        params = jax.jit(restack, out_shardings=out)(params)
    return params


def merge(base: nnx.State, adapters: nnx.State, lora_cfg: LoraConfig, cfg, out_shardings=None):
    """The base parameters with the adapters merged in (an nnx.State of the plain model)."""

    def merged(base: nnx.State, adapters: nnx.State) -> nnx.State:
        pure = lora.merge_params(base.to_pure_dict(), adapters.to_pure_dict(), lora_cfg.scale)
        out = train_state.abstract_params(cfg)
        nnx.replace_by_pure_dict(out, pure)
        return out

    return jax.jit(merged, out_shardings=out_shardings)(base, adapters)


def load_params(
    model_dir: str, step: int | None = None, sharding_of: ShardingOf = on_one_device
) -> tuple[ModelConfig, nnx.State, int]:
    """(config, parameters, step) of MODEL_DIR's checkpoint `step` (default: the newest),
    as saved (a LoRA checkpoint merged), on one device unless `sharding_of` places them."""
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir}: no such MODEL_DIR")
    ckpt = checkpointing.Checkpointer(model_dir, read_only=True)
    try:
        step = resolve_step(ckpt, step)
        cfg = checkpointing.model_config_from_json(ckpt.read_meta(step)["model"])
    finally:
        ckpt.close()
    return cfg, restore_params(model_dir, step, cfg, sharding_of), step


def load_model(
    model_dir: str,
    step: int | None = None,
    mesh: Mesh | None = None,
    rules: partitioning.Rules = partitioning.DEFAULT_RULES,
) -> tuple[Model, int]:
    """(model, step) of MODEL_DIR's checkpoint `step` (default: the newest): on one
    device, or with `mesh` its parameters sharded by the logical axis `rules`."""
    sharding_of = (
        on_one_device
        if mesh is None
        else functools.partial(train_state.param_shardings, mesh=mesh, rules=rules)
    )
    cfg, params, step = load_params(model_dir, step, sharding_of)
    with nnx.use_eager_sharding(False):
        graphdef = train_state.graphdef_of(cfg, rules)
    return nnx.merge(graphdef, params), step


def load_adapters(model_dir: str, step: int | None = None):
    """(model config, LoraConfig, adapters as a pure dict on the host, meta) of a LoRA
    MODEL_DIR's checkpoint `step` (default: the newest)."""
    ckpt = checkpointing.Checkpointer(model_dir, read_only=True)
    try:
        step = resolve_step(ckpt, step)
        meta = ckpt.read_meta(step)
        if "lora" not in meta:
            raise ValueError(f"{model_dir} step {step} is not a LoRA checkpoint (no adapters)")
        cfg = checkpointing.model_config_from_json(meta["model"])
        lora_cfg = LoraConfig.from_json(meta["lora"]["config"])
        abs_adapters = train_state.abstract_adapters(cfg, lora_cfg)
        target = train_state.with_shardings(abs_adapters, on_one_device(abs_adapters))
        adapters = ckpt.restore_params(step, target)
    finally:
        ckpt.close()
    return cfg, lora_cfg, jax.device_get(adapters.to_pure_dict()), meta
