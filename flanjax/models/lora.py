"""LoRA (low-rank adaptation) of a model's projections: config, adapters, merge.

A targeted projection y = x W (W: I... x O..., the input dimensions first, as every
flanjax projection stores it) gains y += scale * dropout(x) A B with A: I... x R
(random) and B: R x O... (zeros), scale = alpha / rank (Hugging Face PEFT's
convention), so at initialization the adapted model computes exactly the base
model. Adapters are `LoraParam`s (a subclass of nnx.Param) named `<weight>_lora`
beside the weight they adapt (`decoder_layers/3/attn/query_lora/{a,b}`), with the
weight's logical axes and the rank axis "lora_rank" (replicated by the rules table
in flanjax/partitioning.py). Training differentiates only the `LoraParam`s
(flanjax/lora_state.py); the merged weight is W + scale * A B (`merge_params`).

Targets name projections: "q", "k", "v", "o" (self-attention; Llama's only
attention), "cross_q", "cross_k", "cross_v", "cross_o" (T5's cross-attention), T5's
MLP "wi_0", "wi_1" (gated-GELU; "wi" = both, or the ReLU MLP's one) and "wo",
Llama's MLP "gate", "up", "down". `stacks` picks T5's "encoder" and/or "decoder"
layers (a decoder-only model has only the decoder stack).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

RANK_AXIS = "lora_rank"  # logical axis of the rank dimension (replicated)
SUFFIX = "_lora"  # an adapter's attribute: the adapted weight's name + SUFFIX
T5_TARGETS = ("q", "k", "v", "o", "cross_q", "cross_k", "cross_v", "cross_o", "wi", "wi_0")
T5_TARGETS += ("wi_1", "wo")
LLAMA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
STACKS = ("encoder", "decoder")
ATTENTION_WEIGHTS = {"q": "query", "k": "key", "v": "value", "o": "out"}


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """LoRA fine-tuning (`TrainConfig.lora`); rank 0 (the default) trains every weight.

    rank: the adapters' rank R. alpha: scale = alpha / rank. dropout: on the
    adapters' input during training. targets / stacks: see the module docstring.
    """

    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q", "v")
    stacks: tuple[str, ...] = STACKS

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ValueError(f"LoraConfig.rank {self.rank}: use 0 (off) or a positive rank")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoraConfig.dropout {self.dropout}: use a rate in [0, 1)")
        unknown = sorted(set(self.targets) - set(T5_TARGETS) - set(LLAMA_TARGETS))
        if unknown or not self.targets:
            raise ValueError(
                f"LoraConfig.targets {self.targets}: unknown {unknown}; T5 takes {T5_TARGETS}, "
                f"Llama-family decoders {LLAMA_TARGETS}"
            )
        bad_stacks = sorted(set(self.stacks) - set(STACKS))
        if bad_stacks or not self.stacks:
            raise ValueError(f"LoraConfig.stacks {self.stacks}: use some of {STACKS}")

    @property
    def enabled(self) -> bool:
        return self.rank > 0

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def check_family(self, family_targets: Sequence[str], family: str) -> None:
        """Refuses targets the model family does not have (e.g. "gate" on T5)."""
        wrong = sorted(set(self.targets) - set(family_targets))
        if wrong:
            raise ValueError(
                f"LoraConfig.targets {wrong} do not exist in a {family} model; it takes "
                f"{tuple(family_targets)}"
            )

    def for_stack(self, stack: str) -> LoraConfig | None:
        """This config for the layers of `stack` ("encoder"/"decoder"), None if not adapted."""
        return self if self.enabled and stack in self.stacks else None

    def to_json(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "targets": list(self.targets),
            "stacks": list(self.stacks),
        }

    @classmethod
    def from_json(cls, d: dict) -> LoraConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)


class LoraParam(nnx.Param):
    """An adapter's parameter: the only trainable kind in a LoRA run."""


class Adapter(nnx.Module):
    """scale * dropout(x) A B for a projection with inputs I... and outputs O...."""

    def __init__(
        self,
        cfg: LoraConfig,
        in_shape: tuple[int, ...],
        in_axes: tuple[str | None, ...],
        out_shape: tuple[int, ...],
        out_axes: tuple[str | None, ...],
        param_dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ):
        r, n_in = cfg.rank, len(in_shape)
        # PEFT's default A: kaiming-uniform(a=sqrt(5)), i.e. uniform(+-1/sqrt(fan_in)).
        init_a = nnx.initializers.variance_scaling(
            1.0 / 3.0, "fan_in", "uniform", in_axis=tuple(range(n_in)), out_axis=-1
        )
        a = init_a(rngs.params(), (*in_shape, r), param_dtype)
        self.a = LoraParam(a, out_sharding=(*in_axes, RANK_AXIS))
        b = jnp.zeros((r, *out_shape), param_dtype)
        self.b = LoraParam(b, out_sharding=(RANK_AXIS, *out_axes))
        self.n_in, self.scale = n_in, cfg.scale
        self.dropout = nnx.Dropout(cfg.dropout)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        dt = x.dtype
        x = self.dropout(x, deterministic=rngs is None, rngs=rngs)
        h_BxTxR = jnp.tensordot(x, self.a[...].astype(dt), axes=self.n_in)
        return jnp.tensordot(h_BxTxR * jnp.asarray(self.scale, dt), self.b[...].astype(dt), axes=1)


def adapter(
    cfg: LoraConfig | None,
    target: str,
    in_shape: tuple[int, ...],
    in_axes: tuple[str | None, ...],
    out_shape: tuple[int, ...],
    out_axes: tuple[str | None, ...],
    param_dtype: jnp.dtype,
    rngs: nnx.Rngs,
) -> Adapter | None:
    """An adapter if `cfg` targets `target`, else None (the projection stays as it is)."""
    if cfg is None or not cfg.enabled or target not in cfg.targets:
        return None
    return Adapter(cfg, in_shape, in_axes, out_shape, out_axes, param_dtype, rngs)


def add(y: jax.Array, adapter_: Adapter | None, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
    """y (= x W) plus the adapter's term, or y unchanged without an adapter."""
    return y if adapter_ is None else y + adapter_(x, rngs).astype(y.dtype)


# --- merged weights -------------------------------------------------------------------
def merge_params(base: dict, adapters: dict, scale: float) -> dict:
    """Pure parameter dicts (`nnx.State.to_pure_dict`): the base with every adapted
    weight W replaced by W + scale * A B (float32 product, cast to W's dtype). Works
    on either layer layout (a stacked weight's adapters are stacked the same way)."""
    out = dict(base)
    for key, sub in adapters.items():
        if isinstance(key, str) and key.endswith(SUFFIX):
            name = key[: -len(SUFFIX)]
            out[name] = merged_weight(base[name], sub["a"], sub["b"], scale)
        elif isinstance(sub, dict):
            out[key] = merge_params(base[key], sub, scale)
    return out


def delta(a: jax.Array, b: jax.Array, scale: float, weight_ndim: int) -> jax.Array:
    """scale * A B in float32: A (lead..., I..., R), B (lead..., R, O...) -> (lead..., I..., O...)
    for `lead` stacked (layer) dimensions."""
    lead = a.ndim + b.ndim - 2 - weight_ndim
    product = lambda a_, b_: jnp.tensordot(a_, b_, axes=1)  # noqa: E731
    for _ in range(lead):
        product = jax.vmap(product)
    return scale * product(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))


def merged_weight(w: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    merged = jnp.asarray(w, jnp.float32) + delta(a, b, scale, w.ndim)
    return merged.astype(w.dtype)
