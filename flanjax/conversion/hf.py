"""Hugging Face <-> flanjax checkpoints, both ways, without torch.

Supported: T5ForConditionalGeneration (T5 v1.1 / Flan-T5 "gated-gelu", original
T5 "relu" with tied, D**-0.5-scaled output embeddings) as `T5Config`, and
LlamaForCausalLM / Qwen2ForCausalLM (SmolLM2 is a Llama) as `DecoderConfig`.

Weights are read with the safetensors numpy API (one file, or shards listed in
model.safetensors.index.json). Each parameter is one `Rule`: a flanjax
parameter path, the Hugging Face tensor name, and how the layouts differ.
torch's Linear stores (out, in); flanjax stores (in, ..., out) with heads and
head dims split (D x H x K for q/k/v, H x K x D for the output projection), so
a rule transposes and reshapes. Both models store the query without the
1/sqrt(K) scale (T5 has none; Llama scales the scores), and both use RoPE's
rotate-half layout, so no values are changed, only reshaped.

A converted MODEL_DIR holds checkpoints/0 (items params, data and meta; no
optimizer state, so it initializes fine-tuning rather than resuming it), the
tokenizer files in vocab/, the source config.json as hf_config.json, and the
architecture as a gin model file, model.gin (a run from the MODEL_DIR needs
none: it takes the checkpoint's architecture).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy, for bf16 safetensors)
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from flanjax import checkpointing, model_loading, train_state
from flanjax.conversion import gin_model
from flanjax.data.vocabularies import TOKENIZER_FILES
from flanjax.models import DecoderConfig, ModelConfig, T5Config, family_of

log = logging.getLogger(__name__)

SOURCE_CONFIG = "hf_config.json"  # the source config.json, kept in the MODEL_DIR
MODEL_GIN = "model.gin"  # the converted architecture as a gin model file, for those who want one
# Token ids and lengths carried from the source config back into an export.
_CARRIED_KEYS = (
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "decoder_start_token_id",
    "max_position_embeddings",
)
_DECODER_ARCHS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
# Tensors that carry nothing flanjax needs (tied copies, unused buffers).
_IGNORED_SUFFIXES = (
    "rotary_emb.inv_freq",
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "EncDecAttention.relative_attention_bias.weight",
)


# --- safetensors ----------------------------------------------------------------
class SafetensorsReader:
    """Tensors of a Hugging Face folder by name, read lazily as numpy arrays."""

    def __init__(self, src_dir: str):
        index = os.path.join(src_dir, "model.safetensors.index.json")
        single = os.path.join(src_dir, "model.safetensors")
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            self.files = {k: os.path.join(src_dir, v) for k, v in weight_map.items()}
        elif os.path.exists(single):
            with safe_open(single, "numpy") as f:
                self.files = dict.fromkeys(f.keys(), single)
        else:
            raise FileNotFoundError(
                f"{src_dir}: no model.safetensors or model.safetensors.index.json"
            )

    def names(self) -> set[str]:
        return set(self.files)

    def get(self, name: str) -> np.ndarray:
        if name not in self.files:
            raise KeyError(f"tensor {name!r} is not in the checkpoint")
        with safe_open(self.files[name], "numpy") as f:
            return f.get_tensor(name)


# --- configs --------------------------------------------------------------------
def read_json(path: str) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def _model_type(hf: dict[str, Any]) -> str:
    model_type = hf.get("model_type")
    if model_type in ("t5", *_DECODER_ARCHS):
        return model_type
    raise ValueError(
        f"unsupported Hugging Face model_type {model_type!r} (architectures "
        f"{hf.get('architectures')}): flanjax converts t5, llama and qwen2"
    )


def _rope(hf: dict[str, Any]) -> tuple[float, tuple[float, ...]]:
    """(rope theta, DecoderConfig.rope_scaling): the default RoPE, or Llama 3.1's scaling."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    if rope_type == "default":
        return theta, ()
    if rope_type == "llama3":
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        missing = [k for k in keys if k not in rope]
        if missing:
            raise ValueError(f"llama3 RoPE scaling without {missing}: {rope}")
        return theta, tuple(float(rope[k]) for k in keys)
    raise ValueError(f"RoPE type {rope_type!r} is not supported (only default and llama3)")


def decoder_config_from_hf(hf: dict[str, Any], param_dtype: str = "float32") -> DecoderConfig:
    model_type = _model_type(hf)
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {hf['hidden_act']!r}: only silu (SwiGLU) is supported")
    if hf.get("mlp_bias") or (model_type == "llama" and hf.get("attention_bias")):
        raise ValueError("MLP or attention-output biases are not supported")
    if hf.get("use_sliding_window"):
        raise ValueError("sliding-window attention is not supported")
    heads = hf["num_attention_heads"]
    theta, scaling = _rope(hf)
    return DecoderConfig(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
        d_ff=hf["intermediate_size"],
        rope_theta=theta,
        rope_scaling=scaling,
        rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qkv_bias=model_type == "qwen2",
        dtype=param_dtype,
        param_dtype=param_dtype,
    )


def t5_scales_output(hf: dict[str, Any]) -> bool:
    """Whether HF scales the decoder output by D**-0.5 (original T5, tied embeddings).

    transformers 5 records it as `scale_decoder_outputs`; older configs say
    `tie_word_embeddings`, whose default (absent) is True."""
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return hf.get("tie_word_embeddings", True) is not False


def t5_config_from_hf(hf: dict[str, Any], param_dtype: str = "float32") -> T5Config:
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in ("gated-gelu", "relu"):
        raise ValueError(f"T5 feed_forward_proj {proj!r}: only gated-gelu and relu are supported")
    return T5Config(
        vocab_size=hf["vocab_size"],
        d_model=hf["d_model"],
        num_heads=hf["num_heads"],
        head_dim=hf["d_kv"],
        d_ff=hf["d_ff"],
        num_encoder_layers=hf["num_layers"],
        num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
        mlp_activation=proj,
        tie_embeddings=t5_scales_output(hf),
        relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128),
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-6),
        dtype=param_dtype,
        param_dtype=param_dtype,
    )


def config_from_hf(hf: dict[str, Any], param_dtype: str = "float32") -> ModelConfig:
    if _model_type(hf) == "t5":
        return t5_config_from_hf(hf, param_dtype)
    return decoder_config_from_hf(hf, param_dtype)


def config_to_hf(cfg: ModelConfig, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """A transformers config.json for `cfg`; token ids are taken from `source` if given."""
    if family_of(cfg).name == "t5":
        out = {
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5",
            "vocab_size": cfg.vocab_size,
            "d_model": cfg.d_model,
            "d_kv": cfg.head_dim,
            "d_ff": cfg.d_ff,
            "num_layers": cfg.num_encoder_layers,
            "num_decoder_layers": cfg.num_decoder_layers,
            "num_heads": cfg.num_heads,
            "relative_attention_num_buckets": cfg.relative_buckets,
            "relative_attention_max_distance": cfg.relative_max_distance,
            "dropout_rate": cfg.dropout_rate,
            "layer_norm_epsilon": cfg.layer_norm_eps,
            "feed_forward_proj": cfg.mlp_activation,
            "tie_word_embeddings": cfg.tie_embeddings,
            "scale_decoder_outputs": cfg.tie_embeddings,
            "is_encoder_decoder": True,
            "decoder_start_token_id": 0,
            "pad_token_id": 0,
            "eos_token_id": 1,
        }
    else:
        out = _decoder_config_to_hf(cfg)
    out["dtype"] = cfg.param_dtype
    for key in _CARRIED_KEYS:
        if source and key in source:
            out[key] = source[key]
    return out


def _decoder_config_to_hf(cfg: DecoderConfig) -> dict[str, Any]:
    if cfg.attention != "causal":
        raise ValueError(
            f"attention {cfg.attention!r}: transformers has no prefix-LM Llama/Qwen2; "
            "only causal decoders can be exported"
        )
    model_type = "qwen2" if cfg.qkv_bias else "llama"
    out = {
        "architectures": [_DECODER_ARCHS[model_type]],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": _rope_to_hf(cfg),
        "tie_word_embeddings": cfg.tie_embeddings,
        "max_position_embeddings": 8192,
    }
    if model_type == "llama":
        out.update(attention_bias=False, mlp_bias=False)
    return out


def _rope_to_hf(cfg: DecoderConfig) -> dict[str, Any]:
    if not cfg.rope_scaling:
        return {"rope_type": "default", "rope_theta": cfg.rope_theta}
    factor, low, high, original = cfg.rope_scaling
    return {
        "rope_type": "llama3",
        "rope_theta": cfg.rope_theta,
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": int(original),
    }


# --- parameter layout -------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Rule:
    """One parameter: flanjax path ('.'-joined), HF tensor name, layout difference.

    `n_in` 0: same values, reshaped. Otherwise HF stores the transpose (out, in)
    of a matrix whose input dimension is the flanjax parameter's first `n_in`
    dimensions (1 for D x H x K and D x F, 2 for H x K x D). `alt`: a tensor to
    read when `hf` is absent (a tied copy).
    """

    path: str
    hf: str
    n_in: int = 0
    alt: str | None = None

    def from_hf(self, w: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        w = w.T if self.n_in else w
        if w.size != math.prod(shape):
            raise ValueError(f"{self.hf}: HF shape {w.shape} does not fit {self.path} {shape}")
        return w.reshape(shape)

    def to_hf(self, p: np.ndarray) -> np.ndarray:
        if not self.n_in:
            return p.reshape(-1) if self.hf.endswith(".bias") else p
        return np.ascontiguousarray(p.reshape(math.prod(p.shape[: self.n_in]), -1).T)


def _decoder_rules(cfg: DecoderConfig) -> list[Rule]:
    rules = [
        Rule("embedding", "model.embed_tokens.weight"),
        Rule("final_norm.scale", "model.norm.weight"),
    ]
    if not cfg.tie_embeddings:
        rules.append(Rule("lm_head", "lm_head.weight", n_in=1))
    for i in range(cfg.num_layers):
        f, h = f"decoder_layers.{i}", f"model.layers.{i}"
        rules += [
            Rule(f"{f}.attn_norm.scale", f"{h}.input_layernorm.weight"),
            Rule(f"{f}.mlp_norm.scale", f"{h}.post_attention_layernorm.weight"),
            Rule(f"{f}.attn.query", f"{h}.self_attn.q_proj.weight", n_in=1),
            Rule(f"{f}.attn.key", f"{h}.self_attn.k_proj.weight", n_in=1),
            Rule(f"{f}.attn.value", f"{h}.self_attn.v_proj.weight", n_in=1),
            Rule(f"{f}.attn.out", f"{h}.self_attn.o_proj.weight", n_in=2),
            Rule(f"{f}.mlp.gate", f"{h}.mlp.gate_proj.weight", n_in=1),
            Rule(f"{f}.mlp.up", f"{h}.mlp.up_proj.weight", n_in=1),
            Rule(f"{f}.mlp.down", f"{h}.mlp.down_proj.weight", n_in=1),
        ]
        if cfg.qkv_bias:
            rules += [
                Rule(f"{f}.attn.{name}_bias", f"{h}.self_attn.{proj}_proj.bias")
                for name, proj in (("query", "q"), ("key", "k"), ("value", "v"))
            ]
    return rules


def _t5_attention_rules(f: str, h: str) -> list[Rule]:
    return [
        Rule(f"{f}.query", f"{h}.q.weight", n_in=1),
        Rule(f"{f}.key", f"{h}.k.weight", n_in=1),
        Rule(f"{f}.value", f"{h}.v.weight", n_in=1),
        Rule(f"{f}.out", f"{h}.o.weight", n_in=2),
    ]


def _t5_mlp_rules(cfg: T5Config, f: str, h: str) -> list[Rule]:
    if cfg.mlp_activation == "relu":
        wi = [Rule(f"{f}.wi_0", f"{h}.wi.weight", n_in=1)]
    else:
        wi = [Rule(f"{f}.wi_{j}", f"{h}.wi_{j}.weight", n_in=1) for j in (0, 1)]
    return [*wi, Rule(f"{f}.wo", f"{h}.wo.weight", n_in=1)]


def _t5_rules(cfg: T5Config) -> list[Rule]:
    rel = "layer.0.SelfAttention.relative_attention_bias.weight"
    rules = [
        Rule("token_embed.embedding", "shared.weight"),
        Rule("encoder_rel_bias", f"encoder.block.0.{rel}"),
        Rule("decoder_rel_bias", f"decoder.block.0.{rel}"),
        Rule("encoder_norm.scale", "encoder.final_layer_norm.weight"),
        Rule("decoder_norm.scale", "decoder.final_layer_norm.weight"),
    ]
    if not cfg.tie_embeddings:  # transformers 5 may tie (and then drop) lm_head
        rules.append(Rule("lm_head", "lm_head.weight", n_in=1, alt="shared.weight"))
    for i in range(cfg.num_encoder_layers):
        f, h = f"encoder_layers.{i}", f"encoder.block.{i}"
        rules += [
            Rule(f"{f}.attn_norm.scale", f"{h}.layer.0.layer_norm.weight"),
            *_t5_attention_rules(f"{f}.attn", f"{h}.layer.0.SelfAttention"),
            Rule(f"{f}.mlp_norm.scale", f"{h}.layer.1.layer_norm.weight"),
            *_t5_mlp_rules(cfg, f"{f}.mlp", f"{h}.layer.1.DenseReluDense"),
        ]
    for i in range(cfg.num_decoder_layers):
        f, h = f"decoder_layers.{i}", f"decoder.block.{i}"
        rules += [
            Rule(f"{f}.self_attn_norm.scale", f"{h}.layer.0.layer_norm.weight"),
            *_t5_attention_rules(f"{f}.self_attn", f"{h}.layer.0.SelfAttention"),
            Rule(f"{f}.cross_attn_norm.scale", f"{h}.layer.1.layer_norm.weight"),
            *_t5_attention_rules(f"{f}.cross_attn", f"{h}.layer.1.EncDecAttention"),
            Rule(f"{f}.mlp_norm.scale", f"{h}.layer.2.layer_norm.weight"),
            *_t5_mlp_rules(cfg, f"{f}.mlp", f"{h}.layer.2.DenseReluDense"),
        ]
    return rules


_RULES = {"t5": _t5_rules, "llama": _decoder_rules}  # by family name (models/family.py)


def param_rules(cfg: ModelConfig) -> list[Rule]:
    return _RULES[family_of(cfg).name](cfg)


def _path_str(path: tuple) -> str:
    return ".".join(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))


def params_from_hf(reader: SafetensorsReader, cfg: ModelConfig) -> Any:
    """The model's parameter state (an nnx.State of arrays) from HF tensors; with
    `scan_layers`, the layers' tensors stacked (models/layer_stack.py)."""
    if cfg.scan_layers:
        flat = params_from_hf(reader, dataclasses.replace(cfg, scan_layers=False))
        return train_state.restack(flat, cfg)
    rules = {r.path: r for r in param_rules(cfg)}
    names = reader.names()
    used = {r.hf if r.hf in names or not r.alt else r.alt for r in rules.values()}
    unexpected = sorted(
        n for n in names - used if not n.endswith(_IGNORED_SUFFIXES) and n != "lm_head.weight"
    )
    if unexpected:
        raise ValueError(f"tensors flanjax has no place for: {unexpected[:8]}")
    tied_t5 = family_of(cfg).name == "t5" and cfg.tie_embeddings and "lm_head.weight" in names
    if tied_t5 and not np.array_equal(reader.get("lm_head.weight"), reader.get("shared.weight")):
        raise ValueError("T5 scales a tied output embedding, but lm_head differs from shared")
    dtype = jnp.dtype(cfg.param_dtype)

    def load(path: tuple, abstract: jax.ShapeDtypeStruct) -> jax.Array:
        key = _path_str(path)
        if key not in rules:
            raise ValueError(f"no conversion rule for flanjax parameter {key}")
        rule = rules[key]
        name = rule.hf if rule.hf in names or not rule.alt else rule.alt
        value = rule.from_hf(reader.get(name), abstract.shape)
        return jnp.asarray(value.astype(np.float32), dtype)

    return jax.tree_util.tree_map_with_path(load, train_state.abstract_params(cfg))


def params_to_hf(params: Any, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """HF tensors (name -> array) from the model's parameter state."""
    if cfg.scan_layers:
        cfg = dataclasses.replace(cfg, scan_layers=False)
        params = train_state.restack(params, cfg)
    rules = {r.path: r for r in param_rules(cfg)}
    flat = {_path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    if set(flat) != set(rules):
        raise ValueError(f"parameters without a rule: {sorted(set(flat) ^ set(rules))[:8]}")
    return {rules[k].hf: np.ascontiguousarray(rules[k].to_hf(v)) for k, v in flat.items()}


# --- flanjax checkpoints ------------------------------------------------------------
def _copy_files(src_dir: str, dst_dir: str, names: tuple[str, ...]) -> list[str]:
    copied = [n for n in names if os.path.isfile(os.path.join(src_dir, n))]
    if copied:
        os.makedirs(dst_dir, exist_ok=True)
    for name in copied:
        shutil.copyfile(os.path.join(src_dir, name), os.path.join(dst_dir, name))
    return copied


# --- public API ---------------------------------------------------------------------
def convert_from_hf(
    src_dir: str, dst_dir: str, *, param_dtype: str = "float32", scan_layers: bool = False
) -> ModelConfig:
    """Converts a Hugging Face folder (config.json, safetensors, tokenizer) into a
    flanjax MODEL_DIR whose checkpoint 0 `model_loading.load_model` loads; with
    `scan_layers`, in the stacked-layer layout."""
    checkpointing.refuse_existing(dst_dir)
    hf = read_json(os.path.join(src_dir, "config.json"))
    cfg = dataclasses.replace(config_from_hf(hf, param_dtype), scan_layers=scan_layers)
    params = params_from_hf(SafetensorsReader(src_dir), cfg)
    checkpointing.save_model(dst_dir, cfg, params)
    with open(os.path.join(dst_dir, SOURCE_CONFIG), "w") as f:
        json.dump(hf, f, indent=1)
    copied = _copy_files(src_dir, os.path.join(dst_dir, "vocab"), TOKENIZER_FILES)
    with open(os.path.join(dst_dir, MODEL_GIN), "w") as f:
        f.write(gin_model.model_gin(cfg, f"{type(cfg).__name__} converted from {src_dir}"))
    log.info("converted %s -> %s (%s); tokenizer files %s", src_dir, dst_dir, cfg, copied)
    return cfg


def convert_to_hf(src_model_dir: str, dst_dir: str, step: int | None = None) -> str:
    """Writes config.json, model.safetensors (and tokenizer files from vocab/) of
    checkpoint `step` (default: the latest) for transformers' from_pretrained."""
    cfg, params, _ = model_loading.load_params(src_model_dir, step)
    source_path = os.path.join(src_model_dir, SOURCE_CONFIG)
    source = read_json(source_path) if os.path.exists(source_path) else None
    os.makedirs(dst_dir, exist_ok=True)
    with open(os.path.join(dst_dir, "config.json"), "w") as f:
        json.dump(config_to_hf(cfg, source), f, indent=1)
    tensors = params_to_hf(params, cfg)
    save_file(tensors, os.path.join(dst_dir, "model.safetensors"), metadata={"format": "pt"})
    _copy_files(os.path.join(src_model_dir, "vocab"), dst_dir, TOKENIZER_FILES)
    return dst_dir
