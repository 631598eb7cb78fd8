"""Analytic training FLOPs per step, device peak FLOP/s, and model FLOPs utilization.

Counts are of a training step (forward and backward: 3x the forward's matmul
FLOPs, a matmul of an M x K by a K x N matrix being 2MKN), matmuls only: norms,
activations, softmax, the loss and the optimizer update are left out (under 2%
for real model sizes; see tests/test_flops.py for the agreement with XLA's own
count).

Decoder-only (PaLM's appendix B), per token of a row of length S:
    6 * N + 12 * L * A * S * c
where N counts the matmul parameters (attention projections, MLP, and the
output projection D x V, tied or not; the embedding lookup is no matmul), A =
heads x head_dim, L the layers. The second term is attention's scores (Q K^T)
and weighted values (P V): 4 * A * S per token and layer forward. `c` is the
causal factor: 1.0 (the default) counts the full S x S score matrix, which is
what flanjax computes (masked, not skipped), so MFU reflects the hardware's
work; 0.5 counts only the causally useful half (a FlashAttention-style kernel
that skips masked blocks would do only that).

Encoder-decoder (T5), per row of input length Li and target length Lt, with A,
D, F as above, E / Dl encoder / decoder layers and m = 3DF (gated MLP) or 2DF:
    6 * [E (4DA + m) Li + Dl ((4DA + 2DA + m) Lt + 2DA Li) + D V Lt]
  + 12 * A * [E Li^2 + Dl (c Lt^2 + Lt Li)]
the decoder's cross-attention projecting queries/outputs on the Lt targets
(2DA) and keys/values on the Li encoder states (2DA). Packed rows count as one
example of the feature lengths: attention spans the whole row.

MFU = analytic FLOPs per step / step time / (peak FLOP/s x devices), with the
dense bf16 peak of `PEAK_FLOPS`; devices not in the table (CPUs) have no MFU.
"""

from __future__ import annotations

import jax

from flanjax.data import batch as batch_keys
from flanjax.models import DecoderConfig, ModelConfig, T5Config, family_of

# Dense bf16 peak FLOP/s per device, by substring of `device.device_kind`, first match.
# The one table of peaks: `perf.tpu_topologies.CHIPS` takes its chips' peaks from here.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("A100", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),  # v5e
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),  # v5p reports "TPU v5"
    ("TPU v6 lite", 918e12),  # v6e (Trillium)
    ("TPU v6e", 918e12),
)


def peak_flops(device: jax.Device | None = None) -> float | None:
    """Dense bf16 peak FLOP/s of `device` (default: the first device), or None."""
    device = device or jax.devices()[0]
    return device_kind_peak_flops(getattr(device, "device_kind", ""))


def device_kind_peak_flops(device_kind: str) -> float | None:
    """Dense bf16 peak FLOP/s of a `device.device_kind` string (`PEAK_FLOPS`), or None."""
    return next((v for k, v in PEAK_FLOPS if k in device_kind), None)


def decoder_matmul_params(cfg: DecoderConfig) -> int:
    d, h, g, k, f = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.d_ff
    per_layer = d * k * (2 * h + 2 * g) + 3 * d * f
    return cfg.num_layers * per_layer + d * cfg.vocab_size


def decoder_flops_per_token(cfg: DecoderConfig, seq_len: int, causal_factor: float = 1.0) -> float:
    """Training FLOPs per token of a row of `seq_len` tokens (module docstring)."""
    attn = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq_len * causal_factor
    return 6 * decoder_matmul_params(cfg) + attn


def t5_flops_per_example(
    cfg: T5Config, input_len: int, target_len: int, causal_factor: float = 1.0
) -> float:
    """Training FLOPs of one row of `input_len` inputs and `target_len` targets."""
    d, a = cfg.d_model, cfg.num_heads * cfg.head_dim
    e, dl, li, lt = cfg.num_encoder_layers, cfg.num_decoder_layers, input_len, target_len
    mlp = (3 if cfg.mlp_activation == "gated-gelu" else 2) * d * cfg.d_ff
    encoder = e * (4 * d * a + mlp) * li
    decoder = dl * ((6 * d * a + mlp) * lt + 2 * d * a * li)
    head = d * cfg.vocab_size * lt
    attention = a * (e * li * li + dl * (causal_factor * lt * lt + lt * li))
    return 6 * (encoder + decoder + head) + 12 * attention


def train_step_flops(
    cfg: ModelConfig,
    batch_size: int,
    target_len: int,
    input_len: int = 0,
    causal_factor: float = 1.0,
) -> float:
    """Training FLOPs of one step on `batch_size` rows (global batch)."""
    if family_of(cfg).encoder_decoder:
        return batch_size * t5_flops_per_example(cfg, input_len, target_len, causal_factor)
    per_token = decoder_flops_per_token(cfg, target_len, causal_factor)
    return batch_size * target_len * per_token


def batch_flops(cfg: ModelConfig, batch_shapes: dict[str, tuple[int, ...]]) -> float:
    """`train_step_flops` for a feature-converted global batch, from its array shapes."""
    b, t = batch_shapes[batch_keys.DECODER_TARGET_TOKENS]
    enc = batch_shapes.get(batch_keys.ENCODER_INPUT_TOKENS)
    li = enc[1] if enc else 0
    return train_step_flops(cfg, b, t, li)


def mfu(flops_per_sec: float, device: jax.Device | None = None) -> float | None:
    """Model FLOPs utilization over all devices, or None without a known peak."""
    peak = peak_flops(device)
    return flops_per_sec / (peak * jax.device_count()) if peak else None
