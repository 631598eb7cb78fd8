"""Model families: the T5 encoder-decoder and the Llama-family decoder-only model."""

from __future__ import annotations

from flax import nnx

from flanjax.models import layer_stack
from flanjax.models.llama import Decoder, DecoderConfig
from flanjax.models.t5 import EncoderDecoder, T5Config

ModelConfig = T5Config | DecoderConfig


def create_model(config: ModelConfig, rngs: nnx.Rngs) -> EncoderDecoder | Decoder:
    """A freshly initialized model for `config`."""
    if isinstance(config, T5Config):
        return EncoderDecoder(config, rngs=rngs)
    if isinstance(config, DecoderConfig):
        return Decoder(config, rngs=rngs)
    raise ValueError(f"unknown model config type {type(config).__name__}")


def layer_stacks(config: ModelConfig) -> tuple[str, ...]:
    """The model's attributes holding a stack of layers (models/layer_stack.py)."""
    if isinstance(config, T5Config):
        return layer_stack.STACK_NAMES
    return ("decoder_layers",)
