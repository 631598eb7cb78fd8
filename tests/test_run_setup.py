"""run_setup.prepare: what a run refuses before anything runs or is written, and what it
takes from its checkpoint (architecture, vocabulary, prompt layout)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import pytest
from flax import nnx

import flanjax.tasks  # noqa: F401
from flanjax import checkpointing, run_setup, trainer
from flanjax.data.pipeline import DataConfig
from flanjax.models import DecoderConfig, T5Config, create_model

T5 = T5Config(
    vocab_size=384, d_model=32, num_heads=4, head_dim=8, d_ff=64,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip
# A tiny decoder with SmolLM2's vocabulary size, its eps as float32 stores it.
DECODER = DecoderConfig(
    vocab_size=49152, d_model=16, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8,
    d_ff=32, rms_norm_eps=9.999999747378752e-06,
)  # fmt: skip
BUILTIN = DataConfig(
    "builtin.parity", {"inputs": 32, "targets": 8}, batch_size=2, feature_converter="auto"
)


@pytest.fixture(scope="module")
def hf_checkpoint(smollm2_dir, tmp_path_factory) -> str:
    """A MODEL_DIR as `flanjax convert --from hf` writes it: checkpoint 0 of DECODER and
    SmolLM2's tokenizer in vocab/."""
    model_dir = tmp_path_factory.mktemp("converted")
    with nnx.use_eager_sharding(False):
        params = nnx.state(create_model(DECODER, nnx.Rngs(params=0)), nnx.Param)
    checkpointing.save_model(str(model_dir), DECODER, jax.device_get(params))
    vocab = model_dir / "vocab"
    vocab.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (smollm2_dir / name).exists():
            shutil.copyfile(smollm2_dir / name, vocab / name)
    return str(model_dir)


def _cfg(tmp_path, model, data=BUILTIN, **kw) -> trainer.TrainConfig:
    return trainer.TrainConfig(str(tmp_path / "run"), data, model, 2, **kw)


def test_the_model_comes_from_the_checkpoint_with_the_runs_choices(tmp_path, hf_checkpoint):
    cfg = _cfg(tmp_path, None, initial_checkpoint_path=hf_checkpoint)
    assert run_setup.prepare(cfg).model == DECODER
    chosen = dataclasses.replace(
        cfg, model_overrides={"attention": "prefix", "dtype": "bfloat16", "remat_policy": "full"}
    )
    got = run_setup.prepare(chosen).model
    assert (got.attention, got.dtype, got.remat_policy) == ("prefix", "bfloat16", "full")
    with pytest.raises(ValueError, match=r"model_overrides \['d_model'\] would change"):
        run_setup.prepare(dataclasses.replace(cfg, model_overrides={"d_model": 8}))
    assert not os.path.exists(cfg.model_dir)  # nothing written


def test_an_explicit_model_matches_within_float32_and_may_choose_prefix(tmp_path, hf_checkpoint):
    model = dataclasses.replace(DECODER, rms_norm_eps=1e-5, attention="prefix", scan_layers=True)
    out = run_setup.prepare(_cfg(tmp_path, model, initial_checkpoint_path=hf_checkpoint))
    assert out.model == model
    other = dataclasses.replace(DECODER, num_layers=2)
    with pytest.raises(ValueError) as e:
        run_setup.prepare(_cfg(tmp_path, other, initial_checkpoint_path=hf_checkpoint))
    message = str(e.value)
    assert "'num_layers': (1, 2)" in message and "'attention'" in message
    assert "rms_norm_eps" not in message.split("only")[0]


def test_the_checkpoints_vocabulary_and_plain_layout_are_the_default(tmp_path, hf_checkpoint):
    out = run_setup.prepare(_cfg(tmp_path, None, initial_checkpoint_path=hf_checkpoint))
    vocab_dir = os.path.join(hf_checkpoint, "vocab")
    assert out.data.vocabulary == vocab_dir
    assert (out.data.feature_converter, out.data.prompt_format) == ("prefix_lm", "plain")
    run_setup.write_run_files(out)
    written = os.path.join(out.model_dir, "vocab")
    assert sorted(os.listdir(written)) == sorted([*os.listdir(vocab_dir), "layout.json"])
    with open(os.path.join(written, "layout.json")) as f:
        assert json.load(f) == {"layout": "plain"}
    chat = dataclasses.replace(out.data, prompt_format="chat", chat_template=None, vocabulary=None)
    out = run_setup.prepare(dataclasses.replace(out, data=chat))
    assert (out.data.prompt_format, out.data.chat_template) == ("chat", vocab_dir)


def test_a_mixture_in_another_vocabulary_is_refused_by_name(tmp_path, hf_checkpoint):
    data = dataclasses.replace(BUILTIN, vocabulary="task")
    with pytest.raises(ValueError) as e:
        run_setup.prepare(_cfg(tmp_path, None, data, initial_checkpoint_path=hf_checkpoint))
    message = str(e.value)
    assert "vocabulary mismatch: 'builtin.parity'" in message
    assert "ByteVocabulary" in message and "HfTokenizerVocabulary" in message
    assert hf_checkpoint in message
    data = dataclasses.replace(BUILTIN, vocabulary="byte")
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        run_setup.prepare(_cfg(tmp_path, None, data, initial_checkpoint_path=hf_checkpoint))
    assert not os.path.exists(tmp_path / "run")


def test_a_vocabulary_larger_than_the_embedding_table_is_refused(tmp_path):
    small = dataclasses.replace(T5, vocab_size=200)  # the byte vocabulary has 259 ids
    with pytest.raises(ValueError, match=r"ByteVocabulary .*259 ids.*embedding table \(200"):
        run_setup.prepare(_cfg(tmp_path, small))


def test_a_family_that_does_not_read_the_converters_batches_is_refused(tmp_path):
    with pytest.raises(ValueError, match="T5Config model reads .*'enc_dec', not 'prefix_lm'"):
        run_setup.prepare(
            _cfg(tmp_path, T5, dataclasses.replace(BUILTIN, feature_converter="prefix_lm"))
        )
    small = dataclasses.replace(DECODER, vocab_size=384)
    enc_dec = dataclasses.replace(BUILTIN, feature_converter="enc_dec")
    with pytest.raises(ValueError, match="not 'enc_dec' \\(an encoder-decoder batch\\)"):
        run_setup.prepare(_cfg(tmp_path, small, enc_dec))
    auto = dataclasses.replace(BUILTIN, feature_converter="auto")
    assert run_setup.prepare(_cfg(tmp_path, small, auto)).data.feature_converter == "prefix_lm"
    assert run_setup.prepare(_cfg(tmp_path, T5, auto)).data.feature_converter == "enc_dec"
    chat = dataclasses.replace(BUILTIN, prompt_format="chat")
    with pytest.raises(ValueError, match="lays out decoder-only prompts"):
        run_setup.prepare(_cfg(tmp_path, T5, chat))


def test_no_model_and_no_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no model: pass a model file"):
        run_setup.prepare(_cfg(tmp_path, None))


def test_flan_tasks_in_t5_vocabulary_are_refused_for_a_smollm2_checkpoint(
    tmp_path, hf_checkpoint, shared_data
):
    data = DataConfig(
        "flan.train_without_entailment", {"inputs": 64, "targets": 8}, 2, vocabulary="task",
        feature_converter="auto",
    )  # fmt: skip
    with pytest.raises(ValueError) as e:
        run_setup.prepare(_cfg(tmp_path, None, data, initial_checkpoint_path=hf_checkpoint))
    message = str(e.value)
    assert "'flan.train_without_entailment'" in message and "t5_spiece.model" in message
    assert "tokenizer.json" in message
