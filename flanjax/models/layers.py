"""Building blocks shared by flanjax's models, each parameter with logical axes.

Shape legend, used in every model module:
  B batch, L encoder (input) length, T decoder (target) length, S attended
  (key) length, D d_model, H query heads, G key/value heads, K head dim,
  F d_ff, V vocabulary, N relative-position buckets.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from flanjax import partitioning
from flanjax.partitioning import constrain

NEG_INF = -1e10  # additive mask value; finite so fully masked rows stay NaN-free


def param(
    rngs: nnx.Rngs,
    init: nnx.initializers.Initializer,
    shape: tuple[int, ...],
    axes: tuple[str | None, ...],
    dtype: jnp.dtype,
) -> nnx.Param:
    """A parameter carrying its logical axis names as sharding metadata."""
    return nnx.Param(init(rngs.params(), shape, dtype), out_sharding=axes)


def normal(stddev: float) -> nnx.initializers.Initializer:
    return nnx.initializers.normal(stddev=stddev)


class RMSNorm(nnx.Module):
    """T5's LayerNorm: scale only, no mean subtraction, computed in float32."""

    def __init__(self, dim: int, *, eps: float, param_dtype: jnp.dtype, rngs: nnx.Rngs):
        self.eps = eps
        self.scale = param(rngs, nnx.initializers.ones, (dim,), ("embed",), param_dtype)

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        x = x_BxLxD.astype(jnp.float32)
        var = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        y = x * jax.lax.rsqrt(var + self.eps) * self.scale[...].astype(jnp.float32)
        return y.astype(x_BxLxD.dtype)


class Embed(nnx.Module):
    """Token embedding table, also usable as a tied output projection."""

    def __init__(self, vocab: int, dim: int, *, param_dtype: jnp.dtype, rngs: nnx.Rngs):
        self.embedding = param(rngs, normal(1.0), (vocab, dim), ("vocab", "embed"), param_dtype)

    def __call__(self, ids_BxL: jax.Array, dtype: jnp.dtype) -> jax.Array:
        x_BxLxD = jnp.take(self.embedding[...], ids_BxL, axis=0).astype(dtype)
        return constrain(x_BxLxD, ("act_batch", "act_length", "act_embed"))

    def attend(self, x_BxLxD: jax.Array) -> jax.Array:
        table_VxD = self.embedding[...].astype(x_BxLxD.dtype)
        return jnp.einsum("bld,vd->blv", x_BxLxD, table_VxD)


def project(x: jax.Array, w: jax.Array, contract: int = 1) -> jax.Array:
    """x's last `contract` axes times w's first ones (a dense projection), with x's
    leading (batch, length) axes flattened into one for the matmul: the weight
    gradient then contracts a single axis, which XLA's CPU backend computes without
    transposing the output gradient first (two contracted axes cost a transposing
    copy per projection: BENCHMARKS.md, "T5 projections on flattened activations")."""
    lead, inner = x.shape[: x.ndim - contract], x.shape[x.ndim - contract :]
    dims = ((tuple(range(1, 1 + contract)), tuple(range(contract))), ((), ()))
    y = jax.lax.dot_general(x.reshape(-1, *inner), w, dims)
    return y.reshape(*lead, *w.shape[contract:])


ATTENTION_IMPLS = ("xla", "fused", "cudnn")


@jax.custom_vjp
def add_over_batch(x_BxN: jax.Array, shared_N: jax.Array) -> jax.Array:
    """`x + shared`, one `shared` (all axes but x's first) added to every row of the
    batch. Its gradient sums the rows as a matmul with a vector of ones: the same sum
    as XLA's reduction over a leading axis, which XLA CPU runs 3x slower (a third of
    T5's attention backward), and it shards as any matmul over the batch does."""
    return x_BxN + shared_N


def _add_over_batch_fwd(x_BxN, shared_N):
    return x_BxN + shared_N, None


def _add_over_batch_bwd(_, dy_BxN):
    ones_B = jnp.ones(dy_BxN.shape[:1], dy_BxN.dtype)
    return dy_BxN, jnp.einsum("b,b...->...", ones_B, dy_BxN)


add_over_batch.defvjp(_add_over_batch_fwd, _add_over_batch_bwd)


def check_attention_impl(impl: str, owner: str) -> None:
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"{owner}.attention_impl {impl!r}: use one of {ATTENTION_IMPLS}")


def dot_attention(
    q_BxTxHxK: jax.Array,
    k_BxSxHxK: jax.Array,
    v_BxSxHxK: jax.Array,
    mask_BxTxS: jax.Array,
    bias_HxTxS: jax.Array | None = None,
    scale: float = 1.0,
    impl: str = "xla",
) -> jax.Array:
    """Softmax attention (in float32) with a boolean mask and an additive bias.

    The key/value heads may be fewer than the query heads (grouped-query
    attention): each key/value head serves H / G query heads.

    `impl`: "xla" spells the attention out in einsums (any platform, any dtype);
    "fused" hands it to `jax.nn.dot_product_attention`, which runs cuDNN's flash
    attention on a GPU when dtype (bfloat16/float16), head size, mask and bias allow
    and XLA's own fused pattern otherwise; "cudnn" insists on cuDNN and fails at
    trace time where it cannot be used. The packed-segment mask and T5's relative
    position bias pass through as the mask and the bias.
    """
    if impl != "xla":
        return jax.nn.dot_product_attention(
            q_BxTxHxK,
            k_BxSxHxK,
            v_BxSxHxK,
            bias=None if bias_HxTxS is None else bias_HxTxS[None].astype(q_BxTxHxK.dtype),
            mask=mask_BxTxS[:, None],
            scale=scale,
            implementation="cudnn" if impl == "cudnn" else None,
        )
    if partitioning.target_platform() == "cpu":
        return _attention_heads_major(
            q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask_BxTxS, bias_HxTxS, scale
        )
    b, t, h, k = q_BxTxHxK.shape
    g = k_BxSxHxK.shape[2]
    q_BxTxGxRxK = q_BxTxHxK.reshape(b, t, g, h // g, k)
    s_BxGxRxTxS = jnp.einsum("btgrk,bsgk->bgrts", q_BxTxGxRxK, k_BxSxHxK)
    s_BxGxRxTxS = s_BxGxRxTxS.astype(jnp.float32) * scale
    if bias_HxTxS is not None:
        s_BxGxRxTxS += bias_HxTxS.reshape(g, h // g, *bias_HxTxS.shape[1:]).astype(jnp.float32)
    s_BxGxRxTxS = jnp.where(mask_BxTxS[:, None, None], s_BxGxRxTxS, NEG_INF)
    p_BxGxRxTxS = jax.nn.softmax(s_BxGxRxTxS, axis=-1).astype(v_BxSxHxK.dtype)
    out_BxTxGxRxK = jnp.einsum("bgrts,bsgk->btgrk", p_BxGxRxTxS, v_BxSxHxK)
    return out_BxTxGxRxK.reshape(b, t, h, k)


def _attention_heads_major(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask_BxTxS, bias_HxTxS, scale):
    """`dot_attention` for XLA CPU. Heads-major layouts before the two batched matmuls,
    the R query heads of a group stacked along the query axis (Q = R*T), so that each
    matmul has batch axes (B, G) leading both operands and runs without transposing
    copies; the bias's gradient summed over the batch as a matmul (`add_over_batch`).
    fwd+bwd of T5-small's encoder attention core 77 -> 38 ms, of SmolLM2's grouped
    attention 106 -> 79 ms. Not on TPUs, where XLA picks the layouts itself: there these
    explicit transposes cost Flan-T5-XXL's train step 22% more HBM traffic (compile-check,
    BENCHMARKS.md)."""
    b, t, h, k = q_BxTxHxK.shape
    s, g = k_BxSxHxK.shape[1], k_BxSxHxK.shape[2]
    r = h // g
    q_BxGxQxK = q_BxTxHxK.reshape(b, t, g, r, k).transpose(0, 2, 3, 1, 4).reshape(b, g, r * t, k)
    k_BxGxSxK = k_BxSxHxK.transpose(0, 2, 1, 3)
    v_BxGxSxK = v_BxSxHxK.transpose(0, 2, 1, 3)
    s_BxGxQxS = jnp.einsum("bgqk,bgsk->bgqs", q_BxGxQxK, k_BxGxSxK)
    s_BxGxQxS = s_BxGxQxS.astype(jnp.float32) * scale
    if bias_HxTxS is not None:
        bias_GxQxS = bias_HxTxS.reshape(g, r * t, s).astype(jnp.float32)
        s_BxGxQxS = add_over_batch(s_BxGxQxS, bias_GxQxS)
    mask_BxQxS = mask_BxTxS if r == 1 else jnp.tile(mask_BxTxS, (1, r, 1))
    s_BxGxQxS = jnp.where(mask_BxQxS[:, None], s_BxGxQxS, NEG_INF)
    p_BxGxQxS = jax.nn.softmax(s_BxGxQxS, axis=-1).astype(v_BxSxHxK.dtype)
    o_BxGxQxK = jnp.einsum("bgqs,bgsk->bgqk", p_BxGxQxS, v_BxGxSxK)
    return o_BxGxQxK.reshape(b, g, r, t, k).transpose(0, 3, 1, 2, 4).reshape(b, t, h, k)


def segment_mask(q_seg_BxT: jax.Array, k_seg_BxS: jax.Array) -> jax.Array:
    """True where query and key belong to the same packed segment."""
    return q_seg_BxT[:, :, None] == k_seg_BxS[:, None, :]


def causal_mask(t: int, s: int | None = None) -> jax.Array:
    s = t if s is None else s
    return jnp.arange(t)[:, None] >= jnp.arange(s)[None, :]
