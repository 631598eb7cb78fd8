"""The model-family interface: everything the rest of flanjax may ask of a family.

A family is a config dataclass, an nnx module built from it, and one `Family` record
in `FAMILIES`. Callers look the record up with `family_of(config or model)` and ask
it; nothing outside flanjax/models tests config types or batch keys to tell the
families apart.

What a family provides:
  name                the family's name in checkpoint metadata (checkpointing.py)
  config_cls          its frozen config dataclass; module_cls(config, rngs=, lora_cfg=)
  feature_converters  the seqio converters (data/pipeline.py) whose batches it reads,
                      the default first
  task_features       the task features that are separate arrays of its batches (a
                      decoder-only row holds inputs and targets in one "targets" row)
  batch_logits        (model, feature-converted batch, rngs) -> logits BxTxV
  encoder_decoder     the layout its scoring and decoding use (inference.py,
                      decoding.py): an encoder run once and a cross-attending decoder,
                      or one decoder over prompt and continuation. The module provides
                      the methods of that layout: encode / init_cache(encoded, ...) /
                      decode_step, or init_cache(batch, length) / decode_step /
                      output_logits.
  depth_fields        the config fields holding each layer stack's depth
  layer_stacks        the module attributes holding those stacks (models/layer_stack.py)
  hf_auto_class       the transformers Auto class of its Hugging Face checkpoints
  peft_task_type      its PEFT task type (conversion/peft.py)
FLOP counts (flops.py) follow `encoder_decoder` too: the two layouts' formulas.

A new family: its module file in flanjax/models/ (config, module, `batch_logits`) and
one entry in FAMILIES below; its Hugging Face conversion rules in conversion/hf.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flanjax.models import layer_stack, llama, t5


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    config_cls: type
    module_cls: type
    feature_converters: tuple[str, ...]
    task_features: tuple[str, ...]
    batch_logits: Callable[..., Any]
    encoder_decoder: bool
    depth_fields: tuple[str, ...]
    layer_stacks: tuple[str, ...]
    hf_auto_class: str
    peft_task_type: str

    def check_feature_converter(self, converter: str) -> None:
        """Refuses a converter whose batches this family cannot read (an
        encoder-decoder batch into a decoder-only model, or the reverse)."""
        if converter not in self.feature_converters:
            raise ValueError(
                f"a {self.config_cls.__name__} model reads DataConfig.feature_converter "
                f"{' or '.join(repr(c) for c in self.feature_converters)}, not {converter!r}"
                + (" (an encoder-decoder batch)" if converter == "enc_dec" else "")
            )


FAMILIES: tuple[Family, ...] = (
    Family(
        name="t5",
        config_cls=t5.T5Config,
        module_cls=t5.EncoderDecoder,
        feature_converters=("enc_dec",),
        task_features=("inputs", "targets"),
        batch_logits=t5.batch_logits,
        encoder_decoder=True,
        depth_fields=("num_encoder_layers", "num_decoder_layers"),
        layer_stacks=layer_stack.STACK_NAMES,
        hf_auto_class="AutoModelForSeq2SeqLM",
        peft_task_type="SEQ_2_SEQ_LM",
    ),
    Family(
        name="llama",
        config_cls=llama.DecoderConfig,
        module_cls=llama.Decoder,
        feature_converters=("prefix_lm", "lm"),
        task_features=("targets",),
        batch_logits=llama.batch_logits,
        encoder_decoder=False,
        depth_fields=("num_layers",),
        layer_stacks=("decoder_layers",),
        hf_auto_class="AutoModelForCausalLM",
        peft_task_type="CAUSAL_LM",
    ),
)


def family_of(config_or_model: Any) -> Family:
    """The family of a model config or of a model (module) instance."""
    for family in FAMILIES:
        if isinstance(config_or_model, (family.config_cls, family.module_cls)):
            return family
    raise ValueError(
        f"{type(config_or_model).__name__} is no model family's config or module "
        f"(families: {', '.join(f.name for f in FAMILIES)})"
    )


def family_named(name: str) -> Family:
    """The family called `name` in checkpoint metadata."""
    for family in FAMILIES:
        if family.name == name:
            return family
    raise ValueError(
        f"unknown model family {name!r} (known: {', '.join(f.name for f in FAMILIES)})"
    )
