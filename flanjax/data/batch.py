"""The feature-converted batch: the names of its arrays, defined once.

seqio's feature converters (data/pipeline.py) write these keys; the model families
(models/family.py) read them; the trainer, the benchmarks and the debugging tools
count tokens by them. Every array is [batch rows, positions]; 0 is padding in the
token, segment id and loss weight arrays.

  encoder-decoder (EncDecFeatureConverter): ENCODER_INPUT_TOKENS (+ segment ids and
      positions when packed), DECODER_INPUT_TOKENS, DECODER_TARGET_TOKENS,
      DECODER_LOSS_WEIGHTS (+ segment ids and positions when packed);
  decoder-only (DecoderFeatureConverter, PrefixLMFeatureConverter): the DECODER_*
      arrays over inputs and targets, and for prefix-LM DECODER_CAUSAL_ATTENTION
      (1 on the bidirectional inputs prefix, 0 elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENCODER_INPUT_TOKENS = "encoder_input_tokens"
ENCODER_SEGMENT_IDS = "encoder_segment_ids"
ENCODER_POSITIONS = "encoder_positions"
DECODER_INPUT_TOKENS = "decoder_input_tokens"
DECODER_TARGET_TOKENS = "decoder_target_tokens"
DECODER_LOSS_WEIGHTS = "decoder_loss_weights"
DECODER_SEGMENT_IDS = "decoder_segment_ids"
DECODER_POSITIONS = "decoder_positions"
DECODER_CAUSAL_ATTENTION = "decoder_causal_attention"

# The arrays whose positions are the model's tokens (the encoder's and the decoder's):
# what throughput, padding and FLOP counts are measured over.
TOKEN_KEYS = (ENCODER_INPUT_TOKENS, DECODER_TARGET_TOKENS)
SEGMENT_KEYS = (ENCODER_SEGMENT_IDS, DECODER_SEGMENT_IDS)


def token_positions(batch: Mapping[str, Any]) -> int:
    """Input and target positions of a batch (padding included)."""
    return sum(int(batch[k].size) for k in TOKEN_KEYS if k in batch)


def nonpadding_fraction(batch: Mapping[str, Any]) -> float:
    """Fraction of input and target positions holding real tokens."""
    real = sum(int((batch[k] != 0).sum()) for k in TOKEN_KEYS if k in batch)
    return real / max(token_positions(batch), 1)
