"""Model families: the T5 encoder-decoder (and, later, decoder-only)."""

from __future__ import annotations

from flax import nnx

from flanjax.models.t5 import EncoderDecoder, T5Config

ModelConfig = T5Config


def create_model(config: ModelConfig, rngs: nnx.Rngs) -> EncoderDecoder:
    """A freshly initialized model for `config`."""
    if isinstance(config, T5Config):
        return EncoderDecoder(config, rngs=rngs)
    raise ValueError(f"unknown model config type {type(config).__name__}")
