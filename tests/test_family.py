"""The model-family interface (flanjax/models/family.py)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import flanjax.tasks  # noqa: F401  (registers builtin.parity)
from flanjax import checkpointing, trainer
from flanjax.data import batch as bk
from flanjax.data.pipeline import DataConfig
from flanjax.models import FAMILIES, DecoderConfig, T5Config, create_model, family_named, family_of
from flanjax.train_step import model_logits

T5 = T5Config(
    vocab_size=64, d_model=16, num_heads=2, head_dim=8, d_ff=32,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip
DECODER = DecoderConfig(
    vocab_size=64, d_model=16, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8, d_ff=32
)


def test_every_family_is_found_by_config_module_and_name():
    assert [f.name for f in FAMILIES] == ["t5", "llama"]
    for cfg in (T5, DECODER):
        family = family_of(cfg)
        with nnx.use_eager_sharding(False):
            model = create_model(cfg, nnx.Rngs(params=0))
        assert type(model) is family.module_cls
        assert family_of(model) is family is family_named(family.name)
        assert family.feature_converters[0] in ("enc_dec", "prefix_lm")
        assert all(hasattr(cfg, f) for f in family.depth_fields)
        assert all(hasattr(model, s) for s in family.layer_stacks)
        # the checkpoint meta names the family; the config comes back from it
        saved = checkpointing.model_config_to_json(cfg)
        assert saved["family"] == family.name
        assert checkpointing.model_config_from_json(saved) == cfg
    assert family_of(T5).encoder_decoder and not family_of(DECODER).encoder_decoder


def test_an_unknown_config_or_family_name_is_named():
    with pytest.raises(ValueError, match="dict is no model family's config or module"):
        family_of({})
    with pytest.raises(ValueError, match="unknown model family 'gpt' \\(known: t5, llama\\)"):
        family_named("gpt")


def test_batch_logits_read_the_families_feature_converted_batches():
    rng = np.random.default_rng(0)
    tok = lambda: jnp.asarray(rng.integers(2, 64, (2, 6)), jnp.int32)  # noqa: E731
    with nnx.use_eager_sharding(False):
        t5 = create_model(T5, nnx.Rngs(params=0))
        dec = create_model(dataclasses.replace(DECODER, attention="prefix"), nnx.Rngs(params=0))
    enc_in, dec_in = tok(), tok()
    batch = {bk.ENCODER_INPUT_TOKENS: enc_in, bk.DECODER_INPUT_TOKENS: dec_in}
    np.testing.assert_array_equal(model_logits(t5, batch, None), t5(enc_in, dec_in))
    prefix = jnp.asarray([[1, 1, 1, 0, 0, 0]] * 2, jnp.int32)
    batch = {bk.DECODER_INPUT_TOKENS: dec_in, bk.DECODER_CAUSAL_ATTENTION: prefix}
    got = model_logits(dec, batch, None)
    np.testing.assert_array_equal(got, dec(dec_in, None, None, prefix))
    assert not np.allclose(got, dec(dec_in))  # the prefix is read: bidirectional inputs


def test_the_trainer_refuses_a_model_converter_mismatch_before_writing(tmp_path):
    data = DataConfig(
        "builtin.parity", {"inputs": 16, "targets": 4}, 2, feature_converter="enc_dec"
    )
    cfg = trainer.TrainConfig(str(tmp_path / "run"), data, DECODER, train_steps=1)
    with pytest.raises(ValueError, match="DecoderConfig model reads .*not 'enc_dec'"):
        trainer.train(cfg)
    assert not (tmp_path / "run").exists()  # nothing was written
