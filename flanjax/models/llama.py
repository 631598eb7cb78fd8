"""Llama-family decoder-only language model in Flax NNX (Llama, Qwen2, SmolLM2).

Pre-norm decoder: RMSNorm (Hugging Face Llama semantics, weight * x * rsqrt(mean
x^2 + eps)), rotary position embeddings, grouped-query attention scaled by
1/sqrt(K), SwiGLU MLP, no biases except optional query/key/value biases
(Qwen2), and an output projection that may be tied to the embedding table (no
rescaling, unlike original T5). Shapes follow the legend in `layers.py`.

RoPE uses the rotate-half convention of Hugging Face's Llama: a head's first
K/2 dimensions pair with its last K/2 (not interleaved), so converted q/k
projection weights copy over without a permutation.

Attention modes: "causal", or "prefix" (prefix-LM): the tokens flagged by
`inputs_mask_BxT` (seqio's `decoder_causal_attention`: the inputs plus the
first target position) attend to each other bidirectionally, the others
causally. A "causal" model ignores `inputs_mask_BxT`.

Packing: `segment_ids_BxT` (0 = padding) confine attention to one example, and
RoPE takes per-example positions (`positions_BxT`, derived from the segment ids
when not given), so a packed row computes exactly what its examples would
unpacked.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flanjax.data import batch as bk
from flanjax.models import layer_stack, layers, lora, remat
from flanjax.models.layers import RMSNorm, normal, param
from flanjax.models.lora import LoraConfig
from flanjax.partitioning import constrain

ATTENTION_MODES = ("causal", "prefix")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Architecture and dtype policy of a decoder-only model (SmolLM2-135M defaults)."""

    vocab_size: int = 49152
    d_model: int = 576
    num_layers: int = 30
    num_heads: int = 9
    num_kv_heads: int = 3  # < num_heads: grouped-query attention
    head_dim: int = 64
    d_ff: int = 1536
    rope_theta: float = 100000.0
    # Llama 3.1's RoPE frequency scaling: (factor, low_freq_factor, high_freq_factor,
    # original_max_position_embeddings); () for none.
    rope_scaling: tuple[float, ...] = ()
    rms_norm_eps: float = 1e-5
    tie_embeddings: bool = True
    qkv_bias: bool = False  # Qwen2-style biases on the q, k, v projections
    attention: str = "causal"  # or "prefix" (prefix-LM)
    dropout_rate: float = 0.0
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    remat_policy: str = "none"  # none | full | dots | dots_no_batch (models/remat.py)
    attention_impl: str = "xla"  # xla | fused | cudnn (layers.dot_attention)
    scan_layers: bool = False  # stacked layers run by jax.lax.scan (models/layer_stack.py)

    def __post_init__(self) -> None:
        remat.check(self.remat_policy, "DecoderConfig")
        layers.check_attention_impl(self.attention_impl, "DecoderConfig")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"DecoderConfig.attention {self.attention!r}: use causal or prefix")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"DecoderConfig: num_heads {self.num_heads} is not a multiple of "
                f"num_kv_heads {self.num_kv_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"DecoderConfig.head_dim {self.head_dim}: RoPE needs an even size")
        if len(self.rope_scaling) not in (0, 4):
            raise ValueError(
                f"DecoderConfig.rope_scaling {self.rope_scaling}: () or (factor, "
                "low_freq_factor, high_freq_factor, original_max_position_embeddings)"
            )


def rope_frequencies(head_dim: int, theta: float, scaling: tuple[float, ...] = ()) -> jax.Array:
    """The K/2 inverse frequencies; with `scaling`, Llama 3.1's: long wavelengths divided
    by the factor, short ones kept, a smooth blend between."""
    if not scaling:
        return 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    factor, low, high, original = scaling
    wavelen = 2 * np.pi / inv_freq
    scaled = np.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= original / high) & (wavelen <= original / low)
    return jnp.asarray(np.where(medium, blended, scaled), jnp.float32)


def rope_tables(
    positions_BxT: jax.Array, head_dim: int, theta: float, scaling: tuple[float, ...] = ()
) -> tuple[jax.Array, jax.Array]:
    """(cos, sin), each BxTxK in float32, in the rotate-half layout (frequencies repeated)."""
    inv_freq = rope_frequencies(head_dim, theta, scaling)  # K/2 frequencies
    angles = positions_BxT.astype(jnp.float32)[..., None] * inv_freq
    angles_BxTxK = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles_BxTxK), jnp.sin(angles_BxTxK)


def apply_rope(x_BxTxHxK: jax.Array, cos_BxTxK: jax.Array, sin_BxTxK: jax.Array) -> jax.Array:
    """x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1] for halves x1, x2."""
    x = x_BxTxHxK.astype(jnp.float32)
    x1, x2 = jnp.split(x, 2, axis=-1)
    rotated_BxTxHxK = jnp.concatenate([-x2, x1], axis=-1)
    y = x * cos_BxTxK[:, :, None] + rotated_BxTxHxK * sin_BxTxK[:, :, None]
    return y.astype(x_BxTxHxK.dtype)


def segment_positions(segment_ids_BxT: jax.Array) -> jax.Array:
    """Each token's position within its contiguous segment (0 at a segment's start)."""
    t = segment_ids_BxT.shape[1]
    index_BxT = jnp.broadcast_to(jnp.arange(t), segment_ids_BxT.shape)
    starts_BxT = jnp.concatenate(
        [
            jnp.ones_like(segment_ids_BxT[:, :1], bool),
            segment_ids_BxT[:, 1:] != segment_ids_BxT[:, :-1],
        ],
        axis=1,
    )
    start_index_BxT = jax.lax.cummax(jnp.where(starts_BxT, index_BxT, 0), axis=1)
    return index_BxT - start_index_BxT


def attention_mask(
    segment_ids_BxT: jax.Array, inputs_mask_BxT: jax.Array | None, prefix: bool
) -> jax.Array:
    """BxTxT: same segment, and causal, or (prefix-LM) both query and key in the inputs."""
    t = segment_ids_BxT.shape[1]
    allowed_BxTxT = jnp.broadcast_to(layers.causal_mask(t), (segment_ids_BxT.shape[0], t, t))
    if prefix and inputs_mask_BxT is not None:
        inputs_BxT = inputs_mask_BxT.astype(bool)
        allowed_BxTxT = allowed_BxTxT | (inputs_BxT[:, :, None] & inputs_BxT[:, None, :])
    return allowed_BxTxT & layers.segment_mask(segment_ids_BxT, segment_ids_BxT)


class Attention(nnx.Module):
    """Grouped-query self-attention with RoPE; G = num_kv_heads key/value heads;
    `lora_cfg` adapts the projections it targets (models/lora.py)."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        d, h, g, k = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        pd = jnp.dtype(cfg.param_dtype)
        self.scale = k**-0.5
        self.impl = cfg.attention_impl
        self.query = param(rngs, normal(d**-0.5), (d, h, k), ("embed", "heads", "kv"), pd)
        # Key/value heads get their own logical axis: G (3 for SmolLM2) rarely divides
        # the tensor axis the query heads shard over.
        self.key = param(rngs, normal(d**-0.5), (d, g, k), ("embed", "kv_heads", "kv"), pd)
        self.value = param(rngs, normal(d**-0.5), (d, g, k), ("embed", "kv_heads", "kv"), pd)
        self.out = param(rngs, normal((h * k) ** -0.5), (h, k, d), ("heads", "kv", "embed"), pd)
        self.qkv_bias = cfg.qkv_bias
        if cfg.qkv_bias:
            zeros = nnx.initializers.zeros
            self.query_bias = param(rngs, zeros, (h, k), ("heads", "kv"), pd)
            self.key_bias = param(rngs, zeros, (g, k), ("kv_heads", "kv"), pd)
            self.value_bias = param(rngs, zeros, (g, k), ("kv_heads", "kv"), pd)
        self.query_lora = lora.adapter(
            lora_cfg, "q", (d,), ("embed",), (h, k), ("heads", "kv"), pd, rngs
        )
        kv = ((d,), ("embed",), (g, k), ("kv_heads", "kv"))
        self.key_lora = lora.adapter(lora_cfg, "k", *kv, pd, rngs)
        self.value_lora = lora.adapter(lora_cfg, "v", *kv, pd, rngs)
        self.out_lora = lora.adapter(
            lora_cfg, "o", (h, k), ("heads", "kv"), (d,), ("embed",), pd, rngs
        )

    def _project(
        self,
        x_BxTxD: jax.Array,
        w_DxHxK: nnx.Param,
        b_HxK: nnx.Param | None,
        heads_axis: str = "act_heads",
        adapter: lora.Adapter | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        dt = x_BxTxD.dtype
        y_BxTxHxK = jnp.einsum("btd,dhk->bthk", x_BxTxD, w_DxHxK[...].astype(dt))
        y_BxTxHxK = lora.add(y_BxTxHxK, adapter, x_BxTxD, rngs)
        if b_HxK is not None:
            y_BxTxHxK = y_BxTxHxK + b_HxK[...].astype(dt)
        return constrain(y_BxTxHxK, ("act_batch", "act_length", heads_axis, "act_kv"))

    def _qkv(
        self,
        x_BxTxD: jax.Array,
        cos_BxTxK: jax.Array,
        sin_BxTxK: jax.Array,
        rngs: nnx.Rngs | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries BxTxHxK and keys, values BxTxGxK, RoPE applied to queries and keys."""
        bias = self.qkv_bias
        q_BxTxHxK = self._project(
            x_BxTxD, self.query, self.query_bias if bias else None, "act_heads",
            self.query_lora, rngs,
        )  # fmt: skip
        k_BxTxGxK = self._project(
            x_BxTxD, self.key, self.key_bias if bias else None, "act_kv_heads",
            self.key_lora, rngs,
        )  # fmt: skip
        v_BxTxGxK = self._project(
            x_BxTxD, self.value, self.value_bias if bias else None, "act_kv_heads",
            self.value_lora, rngs,
        )  # fmt: skip
        q_BxTxHxK = apply_rope(q_BxTxHxK, cos_BxTxK, sin_BxTxK)
        k_BxTxGxK = apply_rope(k_BxTxGxK, cos_BxTxK, sin_BxTxK)
        return q_BxTxHxK, k_BxTxGxK, v_BxTxGxK

    def __call__(
        self,
        x_BxTxD: jax.Array,
        mask_BxTxT: jax.Array,
        cos_BxTxK: jax.Array,
        sin_BxTxK: jax.Array,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        q_BxTxHxK, k_BxTxGxK, v_BxTxGxK = self._qkv(x_BxTxD, cos_BxTxK, sin_BxTxK, rngs)
        o_BxTxHxK = layers.dot_attention(
            q_BxTxHxK, k_BxTxGxK, v_BxTxGxK, mask_BxTxT, scale=self.scale, impl=self.impl
        )
        y_BxTxD = self._output(o_BxTxHxK, rngs)
        return constrain(y_BxTxD, ("act_batch", "act_length", "act_embed"))

    def _output(self, o_BxTxHxK: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        y_BxTxD = jnp.einsum("bthk,hkd->btd", o_BxTxHxK, self.out[...].astype(o_BxTxHxK.dtype))
        return lora.add(y_BxTxD, self.out_lora, o_BxTxHxK, rngs)

    def cached(
        self,
        x_BxTxD: jax.Array,
        mask_BxTxS: jax.Array,
        cos_BxTxK: jax.Array,
        sin_BxTxK: jax.Array,
        positions_BxT: jax.Array,
        cache: dict[str, jax.Array],
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """T new tokens against a KV cache {"k", "v"}, each BxSxGxK: their keys and
        values are written at `positions_BxT` (per row), then the queries attend to
        the whole cache under `mask_BxTxS`. Same projections as `__call__`."""
        q_BxTxHxK, k_BxTxGxK, v_BxTxGxK = self._qkv(x_BxTxD, cos_BxTxK, sin_BxTxK)
        rows_Bx1 = jnp.arange(x_BxTxD.shape[0])[:, None]
        dt = cache["k"].dtype
        k_BxSxGxK = cache["k"].at[rows_Bx1, positions_BxT].set(k_BxTxGxK.astype(dt))
        v_BxSxGxK = cache["v"].at[rows_Bx1, positions_BxT].set(v_BxTxGxK.astype(dt))
        o_BxTxHxK = layers.dot_attention(
            q_BxTxHxK, k_BxSxGxK, v_BxSxGxK, mask_BxTxS, scale=self.scale, impl=self.impl
        )
        y_BxTxD = constrain(self._output(o_BxTxHxK), ("act_batch", "act_length", "act_embed"))
        return y_BxTxD, {"k": k_BxSxGxK, "v": v_BxSxGxK}


class Mlp(nnx.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        d, f, pd = cfg.d_model, cfg.d_ff, jnp.dtype(cfg.param_dtype)
        self.gate = param(rngs, normal(d**-0.5), (d, f), ("embed", "mlp"), pd)
        self.up = param(rngs, normal(d**-0.5), (d, f), ("embed", "mlp"), pd)
        self.down = param(rngs, normal(f**-0.5), (f, d), ("mlp", "embed"), pd)
        wide = ((d,), ("embed",), (f,), ("mlp",))
        self.gate_lora = lora.adapter(lora_cfg, "gate", *wide, pd, rngs)
        self.up_lora = lora.adapter(lora_cfg, "up", *wide, pd, rngs)
        self.down_lora = lora.adapter(lora_cfg, "down", (f,), ("mlp",), (d,), ("embed",), pd, rngs)

    def __call__(self, x_BxTxD: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        dt = x_BxTxD.dtype
        gate_BxTxF = jnp.einsum("btd,df->btf", x_BxTxD, self.gate[...].astype(dt))
        gate_BxTxF = lora.add(gate_BxTxF, self.gate_lora, x_BxTxD, rngs)
        up_BxTxF = jnp.einsum("btd,df->btf", x_BxTxD, self.up[...].astype(dt))
        up_BxTxF = lora.add(up_BxTxF, self.up_lora, x_BxTxD, rngs)
        h_BxTxF = constrain(
            jax.nn.silu(gate_BxTxF) * up_BxTxF, ("act_batch", "act_length", "act_mlp")
        )
        y_BxTxD = jnp.einsum("btf,fd->btd", h_BxTxF, self.down[...].astype(dt))
        y_BxTxD = lora.add(y_BxTxD, self.down_lora, h_BxTxF, rngs)
        return constrain(y_BxTxD, ("act_batch", "act_length", "act_embed"))


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        pd = jnp.dtype(cfg.param_dtype)
        self.attn_norm = RMSNorm(cfg.d_model, eps=cfg.rms_norm_eps, param_dtype=pd, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs, lora_cfg=lora_cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, eps=cfg.rms_norm_eps, param_dtype=pd, rngs=rngs)
        self.mlp = Mlp(cfg, rngs=rngs, lora_cfg=lora_cfg)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(
        self,
        x_BxTxD: jax.Array,
        mask_BxTxT: jax.Array,
        cos_BxTxK: jax.Array,
        sin_BxTxK: jax.Array,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        det = rngs is None
        h_BxTxD = self.attn(self.attn_norm(x_BxTxD), mask_BxTxT, cos_BxTxK, sin_BxTxK, rngs)
        x_BxTxD = x_BxTxD + self.dropout(h_BxTxD, deterministic=det, rngs=rngs)
        h_BxTxD = self.mlp(self.mlp_norm(x_BxTxD), rngs)
        return x_BxTxD + self.dropout(h_BxTxD, deterministic=det, rngs=rngs)

    def cached(
        self,
        x_BxTxD: jax.Array,
        mask_BxTxS: jax.Array,
        cos_BxTxK: jax.Array,
        sin_BxTxK: jax.Array,
        positions_BxT: jax.Array,
        cache: dict[str, jax.Array],
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The layer on T new tokens with a KV cache (inference: no dropout)."""
        h_BxTxD, cache = self.attn.cached(
            self.attn_norm(x_BxTxD), mask_BxTxS, cos_BxTxK, sin_BxTxK, positions_BxT, cache
        )
        x_BxTxD = x_BxTxD + h_BxTxD
        return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD)), cache


class Decoder(nnx.Module):
    """Decoder-only LM. `rngs=None` at call time means deterministic (no dropout).
    `lora_cfg`: LoRA adapters on the projections it targets (models/lora.py)."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        self.cfg = cfg
        if lora_cfg is not None:
            lora_cfg.check_family(lora.LLAMA_TARGETS, "Llama-family")
        layer_lora = None if lora_cfg is None else lora_cfg.for_stack("decoder")
        d, v, pd = cfg.d_model, cfg.vocab_size, jnp.dtype(cfg.param_dtype)
        # A tied table is also the output projection: initialized small so that
        # the initial logits (normalized states times the table) are O(1).
        embed_std = d**-0.5 if cfg.tie_embeddings else 1.0
        self.embedding = param(rngs, normal(embed_std), (v, d), ("vocab", "embed"), pd)
        self.decoder_layers = layer_stack.build(
            lambda r: DecoderLayer(cfg, rngs=r, lora_cfg=layer_lora),
            cfg.num_layers,
            cfg.scan_layers,
            rngs,
        )
        self.final_norm = RMSNorm(d, eps=cfg.rms_norm_eps, param_dtype=pd, rngs=rngs)
        if not cfg.tie_embeddings:
            self.lm_head = param(rngs, normal(d**-0.5), (d, v), ("embed", "vocab"), pd)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def _logits(self, x_BxTxD: jax.Array) -> jax.Array:
        if self.cfg.tie_embeddings:
            table_VxD = self.embedding[...].astype(x_BxTxD.dtype)
            logits_BxTxV = jnp.einsum("btd,vd->btv", x_BxTxD, table_VxD)
        else:
            head_DxV = self.lm_head[...].astype(x_BxTxD.dtype)
            logits_BxTxV = jnp.einsum("btd,dv->btv", x_BxTxD, head_DxV)
        return constrain(logits_BxTxV, ("act_batch", "act_length", "act_vocab"))

    def __call__(
        self,
        tokens_BxT: jax.Array,
        segment_ids_BxT: jax.Array | None = None,
        positions_BxT: jax.Array | None = None,
        inputs_mask_BxT: jax.Array | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Logits BxTxV. Without segment ids every token is real and in one example;
        without positions they count from 0 at each segment's start."""
        if segment_ids_BxT is None:
            segment_ids_BxT = jnp.ones_like(tokens_BxT, jnp.int32)
        if positions_BxT is None:
            positions_BxT = segment_positions(segment_ids_BxT)
        det = rngs is None
        mask_BxTxT = attention_mask(
            segment_ids_BxT, inputs_mask_BxT, prefix=self.cfg.attention == "prefix"
        )
        cos_BxTxK, sin_BxTxK = rope_tables(
            positions_BxT, self.cfg.head_dim, self.cfg.rope_theta, self.cfg.rope_scaling
        )
        x_BxTxD = jnp.take(self.embedding[...], tokens_BxT, axis=0).astype(self.cfg.dtype)
        x_BxTxD = constrain(x_BxTxD, ("act_batch", "act_length", "act_embed"))
        x_BxTxD = self.dropout(x_BxTxD, deterministic=det, rngs=rngs)
        args = (mask_BxTxT, cos_BxTxK, sin_BxTxK)
        x_BxTxD = layer_stack.run(self.decoder_layers, x_BxTxD, args, rngs, self.cfg.remat_policy)
        x_BxTxD = self.final_norm(x_BxTxD)
        x_BxTxD = self.dropout(x_BxTxD, deterministic=det, rngs=rngs)
        return self._logits(x_BxTxD)

    # --- KV-cache inference (flanjax/decoding.py) ------------------------------------
    def init_cache(self, batch: int, length: int) -> list[dict[str, jax.Array]]:
        """An empty KV cache: per layer {"k", "v"}, each B x length x G x K."""
        shape = (batch, length, self.cfg.num_kv_heads, self.cfg.head_dim)
        dt = jnp.dtype(self.cfg.dtype)
        return [
            {"k": jnp.zeros(shape, dt), "v": jnp.zeros(shape, dt)}
            for _ in range(layer_stack.num_layers(self.decoder_layers))
        ]

    def decode_step(
        self,
        tokens_BxT: jax.Array,
        positions_BxT: jax.Array,
        cache: list[dict[str, jax.Array]],
        prefix_lengths_B: jax.Array | None = None,
    ) -> tuple[jax.Array, list[dict[str, jax.Array]]]:
        """Final (normalized) hidden states BxTxD of T new tokens, and the new cache.

        Cache slot = position: a row's tokens fill slots 0, 1, ... contiguously, so a
        query at position p attends to slots <= p, all written by then (this call
        writes its own tokens first). Prefix-LM: queries at positions below
        `prefix_lengths_B` (the prompt) also see the later prompt slots, as
        `inputs_mask_BxT` does in `__call__`. `output_logits` maps states to logits,
        so callers project only the positions they need.
        """
        slots_S = jnp.arange(cache[0]["k"].shape[1])
        mask_BxTxS = slots_S[None, None, :] <= positions_BxT[:, :, None]
        if self.cfg.attention == "prefix" and prefix_lengths_B is not None:
            q_in_BxT = positions_BxT < prefix_lengths_B[:, None]
            k_in_BxS = slots_S[None, :] < prefix_lengths_B[:, None]
            mask_BxTxS = mask_BxTxS | (q_in_BxT[:, :, None] & k_in_BxS[:, None, :])
        cos_BxTxK, sin_BxTxK = rope_tables(
            positions_BxT, self.cfg.head_dim, self.cfg.rope_theta, self.cfg.rope_scaling
        )
        x_BxTxD = jnp.take(self.embedding[...], tokens_BxT, axis=0).astype(self.cfg.dtype)
        x_BxTxD = constrain(x_BxTxD, ("act_batch", "act_length", "act_embed"))
        new_cache = []
        for layer, layer_cache in zip(layer_stack.layers(self.decoder_layers), cache, strict=True):
            x_BxTxD, layer_cache = layer.cached(
                x_BxTxD, mask_BxTxS, cos_BxTxK, sin_BxTxK, positions_BxT, layer_cache
            )
            new_cache.append(layer_cache)
        return self.final_norm(x_BxTxD), new_cache

    def output_logits(self, x_BxTxD: jax.Array) -> jax.Array:
        """Logits BxTxV of final (normalized) hidden states."""
        return self._logits(x_BxTxD)


def batch_logits(model: Decoder, batch: dict, rngs: nnx.Rngs | None = None) -> jax.Array:
    """Logits BxTxV of a feature-converted decoder-only batch (data/batch.py): seqio's
    DecoderFeatureConverter or PrefixLMFeatureConverter, with `decoder_positions` when
    packed and, for prefix-LM, `decoder_causal_attention` (1 on the inputs prefix)."""
    return model(
        batch[bk.DECODER_INPUT_TOKENS],
        batch.get(bk.DECODER_SEGMENT_IDS),
        batch.get(bk.DECODER_POSITIONS),
        batch.get(bk.DECODER_CAUSAL_ATTENTION),
        rngs=rngs,
    )
