"""Model families: the T5 encoder-decoder and the Llama-family decoder-only model
(models/family.py: what each provides, and how to add one)."""

from __future__ import annotations

from flax import nnx

from flanjax.models.family import FAMILIES, Family, family_named, family_of
from flanjax.models.llama import Decoder, DecoderConfig
from flanjax.models.lora import LoraConfig
from flanjax.models.t5 import EncoderDecoder, T5Config

ModelConfig = T5Config | DecoderConfig
Model = EncoderDecoder | Decoder

__all__ = [
    "FAMILIES",
    "Decoder",
    "DecoderConfig",
    "EncoderDecoder",
    "Family",
    "LoraConfig",
    "Model",
    "ModelConfig",
    "T5Config",
    "check_feature_converter",
    "create_model",
    "family_named",
    "family_of",
    "feature_converters",
    "layer_stacks",
]


def create_model(config: ModelConfig, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None) -> Model:
    """A freshly initialized model for `config`; with LoRA adapters if `lora_cfg` is on."""
    lora_cfg = lora_cfg if lora_cfg is not None and lora_cfg.enabled else None
    return family_of(config).module_cls(config, rngs=rngs, lora_cfg=lora_cfg)


def layer_stacks(config: ModelConfig) -> tuple[str, ...]:
    """The model's attributes holding a stack of layers (models/layer_stack.py)."""
    return family_of(config).layer_stacks


def feature_converters(config: ModelConfig) -> tuple[str, ...]:
    """Names of the feature converters (data/pipeline.py) whose batches `config`'s model
    reads; the first is the default for instruction data (inputs and targets)."""
    return family_of(config).feature_converters


def check_feature_converter(config: ModelConfig, converter: str) -> None:
    """Refuses a converter whose batches the model cannot read (an encoder-decoder batch
    into a decoder-only model, or the reverse)."""
    family_of(config).check_feature_converter(converter)
