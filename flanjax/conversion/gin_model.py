"""A model config as a gin model file (gin_configs/models/*.gin conventions).

`flanjax convert --from hf` writes MODEL_DIR/model.gin with it, and the shipped
files for real checkpoints (Flan-T5, SmolLM2, Llama 3.x, Qwen2.5) are written by
`scripts/write_model_gins.py` from `REAL_MODELS`, so their bindings and the
dataclass always agree (tests/test_gin_models.py parses every one back).
Architecture fields are written; compute choices (dtype, remat, attention
implementation, scan layout, dropout) are left to run files and the command line.
"""

from __future__ import annotations

import dataclasses

from flanjax.models import DecoderConfig, ModelConfig, T5Config

# Fields a model file leaves to the run (checkpointing.INITIAL_CHOICES, less `attention`,
# which is part of how a decoder was trained and is written).
_RUN_FIELDS = frozenset({"dtype", "param_dtype", "remat_policy", "attention_impl", "scan_layers"})


def _value(v) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def model_gin(cfg: ModelConfig, title: str, source: str = "") -> str:
    """The text of a gin model file binding `cfg`'s architecture and MODEL."""
    name = type(cfg).__name__
    lines = [f"# {title}"]
    if source:
        lines.append(f"# {source}")
    lines.append("# Use with: --gin_file=<this file> --gin_file=runs/finetune.gin ...")
    for field in dataclasses.fields(cfg):
        if field.name in _RUN_FIELDS:
            continue
        lines.append(f"{name}.{field.name} = {_value(getattr(cfg, field.name))}")
    lines.append(f"MODEL = @{name}()")
    return "\n".join(lines) + "\n"


def _t5(d_model: int, heads: int, d_ff: int, layers: int) -> T5Config:
    return T5Config(
        vocab_size=32128,
        d_model=d_model,
        num_heads=heads,
        head_dim=64,
        d_ff=d_ff,
        num_encoder_layers=layers,
        num_decoder_layers=layers,
        mlp_activation="gated-gelu",
        tie_embeddings=False,
        dropout_rate=0.0,
    )


_LLAMA3_1 = (8.0, 1.0, 4.0, 8192.0)  # rope_scaling of Llama 3.1
_LLAMA3_2 = (32.0, 1.0, 4.0, 8192.0)  # and of Llama 3.2


def _decoder(**kw) -> DecoderConfig:
    kw.setdefault("rms_norm_eps", 1e-5)
    return DecoderConfig(**kw)


def _qwen(**kw) -> DecoderConfig:
    return _decoder(rope_theta=1e6, rms_norm_eps=1e-6, qkv_bias=True, head_dim=128, **kw)


# file stem -> (title, config): shapes from each checkpoint's public config.json.
REAL_MODELS: dict[str, tuple[str, ModelConfig]] = {
    "flan_t5_small": ("Flan-T5 small (77M; T5 v1.1 shapes)", _t5(512, 6, 1024, 8)),
    "flan_t5_base": ("Flan-T5 base (248M)", _t5(768, 12, 2048, 12)),
    "flan_t5_large": ("Flan-T5 large (783M)", _t5(1024, 16, 2816, 24)),
    "flan_t5_xl": ("Flan-T5 XL (2.85B)", _t5(2048, 32, 5120, 24)),
    "flan_t5_xxl": ("Flan-T5 XXL (11.3B)", _t5(4096, 64, 10240, 24)),
    "smollm2_135m": (
        "SmolLM2-135M (-Instruct): Llama architecture, 135M",
        _decoder(vocab_size=49152, d_model=576, num_layers=30, num_heads=9, num_kv_heads=3,
                 head_dim=64, d_ff=1536, rope_theta=1e5, tie_embeddings=True),
    ),
    "smollm2_360m": (
        "SmolLM2-360M (-Instruct): Llama architecture, 362M",
        _decoder(vocab_size=49152, d_model=960, num_layers=32, num_heads=15, num_kv_heads=5,
                 head_dim=64, d_ff=2560, rope_theta=1e5, tie_embeddings=True),
    ),
    "smollm2_1_7b": (
        "SmolLM2-1.7B (-Instruct): Llama architecture, 1.71B",
        _decoder(vocab_size=49152, d_model=2048, num_layers=24, num_heads=32, num_kv_heads=32,
                 head_dim=64, d_ff=8192, rope_theta=1.3e5, tie_embeddings=True),
    ),
    "llama3_2_1b": (
        "Llama 3.2 1B (-Instruct), 1.24B",
        _decoder(vocab_size=128256, d_model=2048, num_layers=16, num_heads=32, num_kv_heads=8,
                 head_dim=64, d_ff=8192, rope_theta=5e5, rope_scaling=_LLAMA3_2,
                 tie_embeddings=True),
    ),
    "llama3_2_3b": (
        "Llama 3.2 3B (-Instruct), 3.21B",
        _decoder(vocab_size=128256, d_model=3072, num_layers=28, num_heads=24, num_kv_heads=8,
                 head_dim=128, d_ff=8192, rope_theta=5e5, rope_scaling=_LLAMA3_2,
                 tie_embeddings=True),
    ),
    "llama3_1_8b": (
        "Llama 3.1 8B (-Instruct), 8.03B",
        _decoder(vocab_size=128256, d_model=4096, num_layers=32, num_heads=32, num_kv_heads=8,
                 head_dim=128, d_ff=14336, rope_theta=5e5, rope_scaling=_LLAMA3_1,
                 tie_embeddings=False),
    ),
    "qwen2_5_0_5b": (
        "Qwen2.5 0.5B (-Instruct), 494M",
        _qwen(vocab_size=151936, d_model=896, num_layers=24, num_heads=14, num_kv_heads=2,
              d_ff=4864, tie_embeddings=True),
    ),
    "qwen2_5_1_5b": (
        "Qwen2.5 1.5B (-Instruct), 1.54B",
        _qwen(vocab_size=151936, d_model=1536, num_layers=28, num_heads=12, num_kv_heads=2,
              d_ff=8960, tie_embeddings=True),
    ),
    "qwen2_5_7b": (
        "Qwen2.5 7B (-Instruct), 7.62B",
        _qwen(vocab_size=152064, d_model=3584, num_layers=28, num_heads=28, num_kv_heads=4,
              d_ff=18944, tie_embeddings=False),
    ),
}  # fmt: skip
