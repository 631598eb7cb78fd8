"""T5 v1.1 / Flan-T5 encoder-decoder in Flax NNX (and the original T5 variant).

T5 v1.1: RMSNorm before each sublayer, relative position bias (shared by all
layers of a stack, bidirectional in the encoder, causal in the decoder), gated
GELU MLP, no biases, no 1/sqrt(K) attention scaling (folded into the init),
untied output projection. Original T5: ReLU MLP and tied embeddings (logits
scaled by D**-0.5). Shapes follow the legend in `layers.py`.

Packing: `segment_ids` (0 = padding) mask attention to within one example, so a
packed row computes exactly what its examples would unpacked. Relative positions
are taken from the row's index, which within a contiguous segment equals the
per-example position difference.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from flanjax.data import batch as bk
from flanjax.models import layer_stack, layers, lora, remat
from flanjax.models.layers import RMSNorm, normal, param
from flanjax.models.lora import LoraConfig
from flanjax.partitioning import constrain


@dataclasses.dataclass(frozen=True)
class T5Config:
    """Architecture and dtype policy of an encoder-decoder (T5 v1.1 defaults)."""

    vocab_size: int = 32128
    d_model: int = 512
    num_heads: int = 6
    head_dim: int = 64
    d_ff: int = 1024
    num_encoder_layers: int = 8
    num_decoder_layers: int = 8
    mlp_activation: str = "gated-gelu"  # or "relu" (original T5)
    tie_embeddings: bool = False  # True for original T5
    relative_buckets: int = 32
    relative_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_eps: float = 1e-6
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    remat_policy: str = "none"  # none | full | dots | dots_no_batch (models/remat.py)
    attention_impl: str = "xla"  # xla | fused | cudnn (layers.dot_attention)
    scan_layers: bool = False  # stacked layers run by jax.lax.scan (models/layer_stack.py)

    def __post_init__(self) -> None:
        remat.check(self.remat_policy, "T5Config")
        layers.check_attention_impl(self.attention_impl, "T5Config")
        if self.mlp_activation not in ("gated-gelu", "relu"):
            raise ValueError(
                f"T5Config.mlp_activation {self.mlp_activation!r}: use gated-gelu or relu"
            )


def relative_position_bucket(
    rel_TxS: jax.Array, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> jax.Array:
    """T5's log-spaced buckets of (key position - query position)."""
    bucket = jnp.zeros_like(rel_TxS)
    if bidirectional:
        num_buckets //= 2
        bucket += (rel_TxS > 0).astype(rel_TxS.dtype) * num_buckets
        n = jnp.abs(rel_TxS)
    else:
        n = -jnp.minimum(rel_TxS, 0)
    max_exact = num_buckets // 2
    log_ratio = jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / max_exact)
    large = max_exact + (
        log_ratio / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).astype(rel_TxS.dtype)
    large = jnp.minimum(large, num_buckets - 1)
    return bucket + jnp.where(n < max_exact, n, large)


class Attention(nnx.Module):
    """Multi-head attention; `lora` adapts the projections it targets (`prefix` "cross_"
    for the decoder's cross-attention, models/lora.py)."""

    def __init__(
        self, cfg: T5Config, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None, prefix=""
    ):
        d, h, k, pd = cfg.d_model, cfg.num_heads, cfg.head_dim, jnp.dtype(cfg.param_dtype)
        self.query = param(rngs, normal((d * k) ** -0.5), (d, h, k), ("embed", "heads", "kv"), pd)
        self.key = param(rngs, normal(d**-0.5), (d, h, k), ("embed", "heads", "kv"), pd)
        self.value = param(rngs, normal(d**-0.5), (d, h, k), ("embed", "heads", "kv"), pd)
        self.out = param(rngs, normal((h * k) ** -0.5), (h, k, d), ("heads", "kv", "embed"), pd)
        self.impl = cfg.attention_impl
        proj = ((d,), ("embed",), (h, k), ("heads", "kv"))
        self.query_lora = lora.adapter(lora_cfg, prefix + "q", *proj, pd, rngs)
        self.key_lora = lora.adapter(lora_cfg, prefix + "k", *proj, pd, rngs)
        self.value_lora = lora.adapter(lora_cfg, prefix + "v", *proj, pd, rngs)
        out = ((h, k), ("heads", "kv"), (d,), ("embed",))
        self.out_lora = lora.adapter(lora_cfg, prefix + "o", *out, pd, rngs)

    def __call__(
        self,
        x_BxTxD: jax.Array,
        kv_BxSxD: jax.Array,
        mask_BxTxS: jax.Array,
        bias_HxTxS: jax.Array | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        k_BxSxHxK, v_BxSxHxK = self.project_kv(kv_BxSxD, rngs)
        return self.attend(x_BxTxD, k_BxSxHxK, v_BxSxHxK, mask_BxTxS, bias_HxTxS, rngs)

    def project_kv(
        self, kv_BxSxD: jax.Array, rngs: nnx.Rngs | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Keys and values BxSxHxK of a source, as `__call__` computes them."""
        dt = kv_BxSxD.dtype
        act = ("act_batch", "act_length", "act_heads", "act_kv")
        k_BxSxHxK = layers.project(kv_BxSxD, self.key[...].astype(dt))
        k_BxSxHxK = constrain(lora.add(k_BxSxHxK, self.key_lora, kv_BxSxD, rngs), act)
        v_BxSxHxK = layers.project(kv_BxSxD, self.value[...].astype(dt))
        v_BxSxHxK = constrain(lora.add(v_BxSxHxK, self.value_lora, kv_BxSxD, rngs), act)
        return k_BxSxHxK, v_BxSxHxK

    def attend(
        self,
        x_BxTxD: jax.Array,
        k_BxSxHxK: jax.Array,
        v_BxSxHxK: jax.Array,
        mask_BxTxS: jax.Array,
        bias_HxTxS: jax.Array | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Queries of `x_BxTxD` against given keys and values (`project_kv`'s, or a
        KV cache), through the output projection."""
        dt = x_BxTxD.dtype
        act = ("act_batch", "act_length", "act_heads", "act_kv")
        q_BxTxHxK = layers.project(x_BxTxD, self.query[...].astype(dt))
        q_BxTxHxK = constrain(lora.add(q_BxTxHxK, self.query_lora, x_BxTxD, rngs), act)
        o_BxTxHxK = layers.dot_attention(
            q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask_BxTxS, bias_HxTxS, impl=self.impl
        )
        y_BxTxD = layers.project(o_BxTxHxK, self.out[...].astype(dt), 2)
        y_BxTxD = lora.add(y_BxTxD, self.out_lora, o_BxTxHxK, rngs)
        return constrain(y_BxTxD, ("act_batch", "act_length", "act_embed"))


class Mlp(nnx.Module):
    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        d, f, pd = cfg.d_model, cfg.d_ff, jnp.dtype(cfg.param_dtype)
        self.gated = cfg.mlp_activation == "gated-gelu"
        self.wi_0 = param(rngs, normal(d**-0.5), (d, f), ("embed", "mlp"), pd)
        if self.gated:
            self.wi_1 = param(rngs, normal(d**-0.5), (d, f), ("embed", "mlp"), pd)
        self.wo = param(rngs, normal(f**-0.5), (f, d), ("mlp", "embed"), pd)
        wide = ((d,), ("embed",), (f,), ("mlp",))
        wi = lora_cfg is not None and "wi" in lora_cfg.targets
        self.wi_0_lora = lora.adapter(lora_cfg, "wi" if wi else "wi_0", *wide, pd, rngs)
        wi_1 = lora.adapter(lora_cfg, "wi" if wi else "wi_1", *wide, pd, rngs)
        self.wi_1_lora = wi_1 if self.gated else None
        narrow = ((f,), ("mlp",), (d,), ("embed",))
        self.wo_lora = lora.adapter(lora_cfg, "wo", *narrow, pd, rngs)

    def __call__(self, x_BxTxD: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        dt = x_BxTxD.dtype
        h_BxTxF = layers.project(x_BxTxD, self.wi_0[...].astype(dt))
        h_BxTxF = lora.add(h_BxTxF, self.wi_0_lora, x_BxTxD, rngs)
        if self.gated:
            lin_BxTxF = layers.project(x_BxTxD, self.wi_1[...].astype(dt))
            lin_BxTxF = lora.add(lin_BxTxF, self.wi_1_lora, x_BxTxD, rngs)
            h_BxTxF = jax.nn.gelu(h_BxTxF, approximate=True) * lin_BxTxF
        else:
            h_BxTxF = jax.nn.relu(h_BxTxF)
        h_BxTxF = constrain(h_BxTxF, ("act_batch", "act_length", "act_mlp"))
        y_BxTxD = layers.project(h_BxTxF, self.wo[...].astype(dt))
        return lora.add(y_BxTxD, self.wo_lora, h_BxTxF, rngs)


class EncoderLayer(nnx.Module):
    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        pd = jnp.dtype(cfg.param_dtype)
        self.attn_norm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=pd, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs, lora_cfg=lora_cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=pd, rngs=rngs)
        self.mlp = Mlp(cfg, rngs=rngs, lora_cfg=lora_cfg)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(self, x_BxLxD, mask_BxLxL, bias_HxLxL, rngs: nnx.Rngs | None):
        det = rngs is None
        h = self.attn_norm(x_BxLxD)
        x_BxLxD = x_BxLxD + self.dropout(
            self.attn(h, h, mask_BxLxL, bias_HxLxL, rngs), deterministic=det, rngs=rngs
        )
        h = self.mlp(self.mlp_norm(x_BxLxD), rngs)
        return x_BxLxD + self.dropout(h, deterministic=det, rngs=rngs)


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        pd = jnp.dtype(cfg.param_dtype)
        self.self_attn_norm = RMSNorm(
            cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=pd, rngs=rngs
        )
        self.self_attn = Attention(cfg, rngs=rngs, lora_cfg=lora_cfg)
        self.cross_attn_norm = RMSNorm(
            cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=pd, rngs=rngs
        )
        self.cross_attn = Attention(cfg, rngs=rngs, lora_cfg=lora_cfg, prefix="cross_")
        self.mlp_norm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=pd, rngs=rngs)
        self.mlp = Mlp(cfg, rngs=rngs, lora_cfg=lora_cfg)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(self, y_BxTxD, enc_BxLxD, self_mask_BxTxT, cross_mask_BxTxL, bias_HxTxT, rngs):
        det = rngs is None
        h = self.self_attn_norm(y_BxTxD)
        h = self.self_attn(h, h, self_mask_BxTxT, bias_HxTxT, rngs=rngs)
        y_BxTxD = y_BxTxD + self.dropout(h, deterministic=det, rngs=rngs)
        h = self.cross_attn(self.cross_attn_norm(y_BxTxD), enc_BxLxD, cross_mask_BxTxL, rngs=rngs)
        y_BxTxD = y_BxTxD + self.dropout(h, deterministic=det, rngs=rngs)
        h = self.mlp(self.mlp_norm(y_BxTxD), rngs)
        return y_BxTxD + self.dropout(h, deterministic=det, rngs=rngs)

    def cached(
        self,
        y_BxTxD: jax.Array,
        index: jax.Array,
        cache: dict[str, jax.Array],
        self_mask_BxTxS: jax.Array,
        cross_mask_BxTxL: jax.Array,
        bias_HxTxS: jax.Array,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The layer on T new decoder tokens at positions index.. (the same in every
        row), with a cache {"k", "v": BxSxHxK self-attention; "cross_k", "cross_v":
        BxLxHxK of the encoder states, computed once}. Inference: no dropout."""
        h_BxTxD = self.self_attn_norm(y_BxTxD)
        k_BxTxHxK, v_BxTxHxK = self.self_attn.project_kv(h_BxTxD)
        start = (0, index, 0, 0)
        k_BxSxHxK = jax.lax.dynamic_update_slice(
            cache["k"], k_BxTxHxK.astype(cache["k"].dtype), start
        )
        v_BxSxHxK = jax.lax.dynamic_update_slice(
            cache["v"], v_BxTxHxK.astype(cache["v"].dtype), start
        )
        h_BxTxD = self.self_attn.attend(h_BxTxD, k_BxSxHxK, v_BxSxHxK, self_mask_BxTxS, bias_HxTxS)
        y_BxTxD = y_BxTxD + h_BxTxD
        h_BxTxD = self.cross_attn.attend(
            self.cross_attn_norm(y_BxTxD), cache["cross_k"], cache["cross_v"], cross_mask_BxTxL
        )
        y_BxTxD = y_BxTxD + h_BxTxD
        y_BxTxD = y_BxTxD + self.mlp(self.mlp_norm(y_BxTxD))
        return y_BxTxD, {**cache, "k": k_BxSxHxK, "v": v_BxSxHxK}


class EncoderDecoder(nnx.Module):
    """T5 encoder-decoder. `rngs=None` at call time means deterministic (no dropout).
    `lora_cfg`: LoRA adapters on the projections it targets (models/lora.py)."""

    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs, lora_cfg: LoraConfig | None = None):
        self.cfg = cfg
        if lora_cfg is not None:
            lora_cfg.check_family(lora.T5_TARGETS, "T5")
        enc_lora = None if lora_cfg is None else lora_cfg.for_stack("encoder")
        dec_lora = None if lora_cfg is None else lora_cfg.for_stack("decoder")
        pd = jnp.dtype(cfg.param_dtype)
        n, h = cfg.relative_buckets, cfg.num_heads
        self.token_embed = layers.Embed(cfg.vocab_size, cfg.d_model, param_dtype=pd, rngs=rngs)
        self.encoder_rel_bias = param(rngs, normal(1.0), (n, h), ("relpos_buckets", "heads"), pd)
        self.decoder_rel_bias = param(rngs, normal(1.0), (n, h), ("relpos_buckets", "heads"), pd)
        self.encoder_layers = layer_stack.build(
            lambda r: EncoderLayer(cfg, rngs=r, lora_cfg=enc_lora),
            cfg.num_encoder_layers,
            cfg.scan_layers,
            rngs,
        )
        self.decoder_layers = layer_stack.build(
            lambda r: DecoderLayer(cfg, rngs=r, lora_cfg=dec_lora),
            cfg.num_decoder_layers,
            cfg.scan_layers,
            rngs,
        )
        self.encoder_norm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=pd, rngs=rngs)
        self.decoder_norm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=pd, rngs=rngs)
        if not cfg.tie_embeddings:
            init = normal(cfg.d_model**-0.5)
            self.lm_head = param(rngs, init, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), pd)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def _bias(self, table_NxH: jax.Array, t: int, s: int, bidirectional: bool) -> jax.Array:
        rel_TxS = jnp.arange(s)[None, :] - jnp.arange(t)[:, None]
        bucket_TxS = relative_position_bucket(
            rel_TxS,
            bidirectional=bidirectional,
            num_buckets=self.cfg.relative_buckets,
            max_distance=self.cfg.relative_max_distance,
        )
        # A one-hot matmul rather than a gather: its gradient is a matmul too, where a
        # gather's is a scatter-add of T*S rows into N, slow on CPUs and GPUs alike.
        onehot_TxSxN = jax.nn.one_hot(bucket_TxS, table_NxH.shape[0], dtype=table_NxH.dtype)
        return jnp.einsum("tsn,nh->hts", onehot_TxSxN, table_NxH)

    def encode(
        self,
        tokens_BxL: jax.Array,
        segments_BxL: jax.Array | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Encoder states; `segments_BxL` defaults to (tokens != 0)."""
        if segments_BxL is None:
            segments_BxL = (tokens_BxL != 0).astype(jnp.int32)
        length = tokens_BxL.shape[1]
        x_BxLxD = self.token_embed(tokens_BxL, jnp.dtype(self.cfg.dtype))
        x_BxLxD = self.dropout(x_BxLxD, deterministic=rngs is None, rngs=rngs)
        mask_BxLxL = layers.segment_mask(segments_BxL, segments_BxL)
        bias_HxLxL = self._bias(self.encoder_rel_bias[...], length, length, True)
        x_BxLxD = layer_stack.run(
            self.encoder_layers, x_BxLxD, (mask_BxLxL, bias_HxLxL), rngs, self.cfg.remat_policy
        )
        x_BxLxD = self.encoder_norm(x_BxLxD)
        return self.dropout(x_BxLxD, deterministic=rngs is None, rngs=rngs)

    def decode(
        self,
        encoded_BxLxD: jax.Array,
        enc_segments_BxL: jax.Array,
        dec_tokens_BxT: jax.Array,
        dec_segments_BxT: jax.Array | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Logits BxTxV for decoder inputs (targets shifted right, 0 = start)."""
        t = dec_tokens_BxT.shape[1]
        if dec_segments_BxT is None:
            dec_segments_BxT = jnp.ones_like(dec_tokens_BxT)
        y_BxTxD = self.token_embed(dec_tokens_BxT, jnp.dtype(self.cfg.dtype))
        y_BxTxD = self.dropout(y_BxTxD, deterministic=rngs is None, rngs=rngs)
        self_mask_BxTxT = layers.segment_mask(
            dec_segments_BxT, dec_segments_BxT
        ) & layers.causal_mask(t)
        cross_mask_BxTxL = layers.segment_mask(dec_segments_BxT, enc_segments_BxL)
        bias_HxTxT = self._bias(self.decoder_rel_bias[...], t, t, False)
        args = (encoded_BxLxD, self_mask_BxTxT, cross_mask_BxTxL, bias_HxTxT)
        y_BxTxD = layer_stack.run(self.decoder_layers, y_BxTxD, args, rngs, self.cfg.remat_policy)
        y_BxTxD = self.decoder_norm(y_BxTxD)
        y_BxTxD = self.dropout(y_BxTxD, deterministic=rngs is None, rngs=rngs)
        return self.output_logits(y_BxTxD)

    def output_logits(self, y_BxTxD: jax.Array) -> jax.Array:
        """Logits BxTxV of the final decoder states: the tied embedding, scaled by
        D**-0.5 (original T5), or the separate output head (T5 v1.1)."""
        if self.cfg.tie_embeddings:
            logits_BxTxV = self.token_embed.attend(y_BxTxD * self.cfg.d_model**-0.5)
        else:
            logits_BxTxV = layers.project(y_BxTxD, self.lm_head[...].astype(y_BxTxD.dtype))
        return constrain(logits_BxTxV, ("act_batch", "act_length", "act_vocab"))

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        if encoder_segment_ids is None:
            encoder_segment_ids = (encoder_input_tokens != 0).astype(jnp.int32)
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, rngs)
        return self.decode(
            encoded, encoder_segment_ids, decoder_input_tokens, decoder_segment_ids, rngs
        )

    # --- KV-cache inference (flanjax/decoding.py) ------------------------------------
    def init_cache(
        self, encoded_BxLxD: jax.Array, enc_segments_BxL: jax.Array, length: int
    ) -> dict:
        """A decoding cache for `length` target positions: per layer the encoder
        states' cross-attention keys and values (computed here, once) and empty
        self-attention keys and values; and the cross-attention mask BxL. Every leaf
        has the batch first, so caches can be repeated or gathered per row."""
        b, k = encoded_BxLxD.shape[0], self.cfg.head_dim
        shape = (b, length, self.cfg.num_heads, k)
        dt = jnp.dtype(self.cfg.dtype)
        layer_caches = []
        for layer in layer_stack.layers(self.decoder_layers):
            cross_k, cross_v = layer.cross_attn.project_kv(encoded_BxLxD)
            kv = {"k": jnp.zeros(shape, dt), "v": jnp.zeros(shape, dt)}
            layer_caches.append({**kv, "cross_k": cross_k, "cross_v": cross_v})
        # `decode`'s default: decoder segment 1 attends to encoder segment 1.
        return {"layers": layer_caches, "cross_mask": enc_segments_BxL == 1}

    def decode_step(
        self, dec_tokens_BxT: jax.Array, index: jax.Array | int, cache: dict
    ) -> tuple[jax.Array, dict]:
        """Logits BxTxV of T decoder inputs at positions index..index+T-1 (the same in
        every row), attending to the cached earlier positions; and the new cache.
        `decode` on a whole shifted target equals `decode_step` at index 0."""
        b, t = dec_tokens_BxT.shape
        s = cache["layers"][0]["k"].shape[1]
        q_pos_T = index + jnp.arange(t)
        self_mask_BxTxS = jnp.broadcast_to(jnp.arange(s)[None, :] <= q_pos_T[:, None], (b, t, s))
        cross_mask_BxTxL = jnp.broadcast_to(
            cache["cross_mask"][:, None, :], (b, t, cache["cross_mask"].shape[1])
        )
        bucket_TxS = relative_position_bucket(
            jnp.arange(s)[None, :] - q_pos_T[:, None],
            bidirectional=False,
            num_buckets=self.cfg.relative_buckets,
            max_distance=self.cfg.relative_max_distance,
        )
        bias_HxTxS = jnp.take(self.decoder_rel_bias[...], bucket_TxS, axis=0).transpose(2, 0, 1)
        y_BxTxD = self.token_embed(dec_tokens_BxT, jnp.dtype(self.cfg.dtype))
        new_layers = []
        for layer, layer_cache in zip(
            layer_stack.layers(self.decoder_layers), cache["layers"], strict=True
        ):
            y_BxTxD, layer_cache = layer.cached(
                y_BxTxD, index, layer_cache, self_mask_BxTxS, cross_mask_BxTxL, bias_HxTxS
            )
            new_layers.append(layer_cache)
        logits_BxTxV = self.output_logits(self.decoder_norm(y_BxTxD))
        return logits_BxTxV, {**cache, "layers": new_layers}


def batch_logits(model: EncoderDecoder, batch: dict, rngs: nnx.Rngs | None = None) -> jax.Array:
    """Logits BxTxV of a feature-converted encoder-decoder batch (data/batch.py)."""
    return model(
        batch[bk.ENCODER_INPUT_TOKENS],
        batch[bk.DECODER_INPUT_TOKENS],
        batch.get(bk.ENCODER_SEGMENT_IDS),
        batch.get(bk.DECODER_SEGMENT_IDS),
        rngs=rngs,
    )
