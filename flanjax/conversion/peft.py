"""A LoRA MODEL_DIR's adapters as a Hugging Face PEFT adapter folder, without torch.

`peft.PeftModel.from_pretrained(base, folder)` loads the folder onto the
transformers base model the run started from (the Hugging Face folder that
`flanjax convert --from hf` read, or `flanjax convert --to hf` of the base):
adapter_config.json (LoRA, r, lora_alpha, lora_dropout, the exact module names
adapted) and adapter_model.safetensors (`base_model.model.<module>.lora_A.weight`
R x in, `lora_B.weight` out x R). PEFT computes x A^T B^T * lora_alpha / r, the
same term flanjax adds (models/lora.py), so the logits agree.

The layouts follow the converter's rules (conversion/hf.py): an adapter of the
flanjax weight at path P has A: I... x R and B: R x O...; the torch Linear of P's
rule takes the flattened inputs I and gives the flattened outputs O.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from flanjax import model_loading, models
from flanjax.conversion import hf
from flanjax.models import LoraConfig, ModelConfig, layer_stack, lora

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PREFIX = "base_model.model."


def _adapters_by_path(tree: dict, prefix: tuple = ()) -> dict[str, dict]:
    """{"decoder_layers.0.attn.query": {"a", "b"}} from a pure (unstacked) adapter dict."""
    out = {}
    for key, sub in tree.items():
        if isinstance(key, str) and key.endswith(lora.SUFFIX):
            out[".".join(map(str, (*prefix, key[: -len(lora.SUFFIX)])))] = sub
        elif isinstance(sub, dict):
            out |= _adapters_by_path(sub, (*prefix, key))
    return out


def adapter_tensors(adapters: dict, cfg: ModelConfig) -> tuple[dict[str, np.ndarray], list[str]]:
    """(PEFT tensors by name, the adapted HF module names) of pure adapter parameters."""
    if cfg.scan_layers:
        names = [n for n in models.layer_stacks(cfg) if n in adapters]
        adapters = layer_stack.unstack_params(adapters, names)
        cfg = dataclasses.replace(cfg, scan_layers=False)
    rules = {r.path: r for r in hf.param_rules(cfg)}
    tensors, modules = {}, []
    for path, ab in sorted(_adapters_by_path(adapters).items()):
        rule = rules[path]
        module = rule.hf.removesuffix(".weight")
        a, b = np.asarray(ab["a"], np.float32), np.asarray(ab["b"], np.float32)
        rank = a.shape[-1]
        a_RxI = a.reshape(math.prod(a.shape[: rule.n_in]), rank).T
        b_OxR = b.reshape(rank, -1).T
        tensors[f"{PREFIX}{module}.lora_A.weight"] = np.ascontiguousarray(a_RxI)
        tensors[f"{PREFIX}{module}.lora_B.weight"] = np.ascontiguousarray(b_OxR)
        modules.append(module)
    return tensors, modules


def adapter_config(cfg: ModelConfig, lora_cfg: LoraConfig, modules: list[str]) -> dict[str, Any]:
    """PEFT's LoraConfig as JSON: exact module names, PEFT's default (non-rs) scaling. The
    base is the caller's (a flanjax MODEL_DIR is no Hugging Face model path)."""
    return {
        "peft_type": "LORA",
        "task_type": models.family_of(cfg).peft_task_type,
        "base_model_name_or_path": None,
        "r": lora_cfg.rank,
        "lora_alpha": lora_cfg.alpha,
        "lora_dropout": lora_cfg.dropout,
        "target_modules": sorted(modules),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
    }


def export_peft(model_dir: str, dst_dir: str, step: int | None = None) -> str:
    """Writes adapter_config.json and adapter_model.safetensors of a LoRA MODEL_DIR's
    checkpoint `step` (default: the latest) into `dst_dir`."""
    cfg, lora_cfg, adapters, _ = model_loading.load_adapters(model_dir, step)
    tensors, modules = adapter_tensors(adapters, cfg)
    os.makedirs(dst_dir, exist_ok=True)
    with open(os.path.join(dst_dir, CONFIG_FILE), "w") as f:
        json.dump(adapter_config(cfg, lora_cfg, modules), f, indent=1)
    save_file(tensors, os.path.join(dst_dir, WEIGHTS_FILE), metadata={"format": "pt"})
    return dst_dir
