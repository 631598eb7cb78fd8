"""Model families: the T5 encoder-decoder and the Llama-family decoder-only model."""

from __future__ import annotations

from flax import nnx

from flanjax.models import layer_stack
from flanjax.models.llama import Decoder, DecoderConfig
from flanjax.models.lora import LoraConfig
from flanjax.models.t5 import EncoderDecoder, T5Config

ModelConfig = T5Config | DecoderConfig


def create_model(
    config: ModelConfig, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None
) -> EncoderDecoder | Decoder:
    """A freshly initialized model for `config`; with LoRA adapters if `lora_cfg` is on."""
    lora_cfg = lora_cfg if lora_cfg is not None and lora_cfg.enabled else None
    if isinstance(config, T5Config):
        return EncoderDecoder(config, rngs=rngs, lora_cfg=lora_cfg)
    if isinstance(config, DecoderConfig):
        return Decoder(config, rngs=rngs, lora_cfg=lora_cfg)
    raise ValueError(f"unknown model config type {type(config).__name__}")


def layer_stacks(config: ModelConfig) -> tuple[str, ...]:
    """The model's attributes holding a stack of layers (models/layer_stack.py)."""
    if isinstance(config, T5Config):
        return layer_stack.STACK_NAMES
    return ("decoder_layers",)


# The seqio feature converters each family reads (the first is its default).
_CONVERTERS: dict[type, tuple[str, ...]] = {
    T5Config: ("enc_dec",),
    DecoderConfig: ("prefix_lm", "lm"),
}


def feature_converters(config: ModelConfig) -> tuple[str, ...]:
    """Names of the feature converters (data/pipeline.py) whose batches `config`'s model
    reads; the first is the default for instruction data (inputs and targets)."""
    return _CONVERTERS[type(config)]


def check_feature_converter(config: ModelConfig, converter: str) -> None:
    """Refuses a converter whose batches the model cannot read (an encoder-decoder batch
    into a decoder-only model, or the reverse)."""
    allowed = feature_converters(config)
    if converter not in allowed:
        raise ValueError(
            f"a {type(config).__name__} model reads DataConfig.feature_converter "
            f"{' or '.join(repr(c) for c in allowed)}, not {converter!r}"
            + (" (an encoder-decoder batch)" if converter == "enc_dec" else "")
        )
