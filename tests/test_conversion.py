"""Hugging Face <-> flanjax conversion: logit parity of tiny random models, both ways.

Every model is built offline from a transformers config (float32, fixed torch
seed), saved with save_pretrained, converted into a MODEL_DIR, loaded with the
evaluator's `load_model`, and compared with transformers' logits; then exported
back and reloaded with from_pretrained.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from flanjax import cli
from flanjax.conversion import convert_from_hf, convert_to_hf, hf
from flanjax.evaluation import evaluator
from flanjax.models import DecoderConfig, T5Config

FROM_HF_ATOL = 1e-4
ROUND_TRIP_ATOL = 1e-5


@dataclasses.dataclass(frozen=True)
class Case:
    """A tiny Hugging Face model and the token ids to run it on."""

    build: Callable[[], transformers.PreTrainedModel]
    length: int
    encoder_decoder: bool = False


def _llama(**kw) -> transformers.PreTrainedModel:
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(initializer_range=0.3, **kw))


def _qwen2(**kw) -> transformers.PreTrainedModel:
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(initializer_range=0.3, **kw))
    with torch.no_grad():  # HF initializes biases to zero; make them matter
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.3)
    return model


def _t5(untie_head: bool = False, **kw) -> transformers.PreTrainedModel:
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**kw))
    if untie_head:  # as in real T5 v1.1 / Flan-T5 checkpoints: a separate output matrix
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 0.2)
    return model


CASES = {
    "llama_gqa_small": Case(
        lambda: _llama(
            vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2,
        ),
        length=13,
    ),
    "llama_gqa_tied_headdim": Case(
        lambda: _llama(
            vocab_size=120, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
            num_attention_heads=6, num_key_value_heads=2, head_dim=16, rope_theta=500.0,
            tie_word_embeddings=True, rms_norm_eps=1e-5,
        ),
        length=24,
    ),
    "qwen2_bias_small": Case(
        lambda: _qwen2(
            vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2,
        ),
        length=13,
    ),
    "qwen2_bias_tied": Case(
        lambda: _qwen2(
            vocab_size=120, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
            num_attention_heads=6, num_key_value_heads=3, tie_word_embeddings=True,
            rope_theta=1000.0,
        ),
        length=24,
    ),
    "t5_v1_1_small": Case(
        lambda: _t5(
            vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        ),
        length=13,
        encoder_decoder=True,
    ),
    "t5_v1_1_untied_head": Case(
        lambda: _t5(
            untie_head=True, vocab_size=120, d_model=24, d_kv=12, d_ff=40, num_layers=2,
            num_decoder_layers=3, num_heads=3, feed_forward_proj="gated-gelu",
            tie_word_embeddings=False, relative_attention_num_buckets=16,
            relative_attention_max_distance=20,
        ),
        length=24,
        encoder_decoder=True,
    ),
    "t5_original_relu_tied": Case(
        lambda: _t5(
            vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            feed_forward_proj="relu", tie_word_embeddings=True,
        ),
        length=13,
        encoder_decoder=True,
    ),
    "t5_original_relu_tied_deeper": Case(
        lambda: _t5(
            vocab_size=120, d_model=24, d_kv=12, d_ff=40, num_layers=3, num_decoder_layers=2,
            num_heads=3, feed_forward_proj="relu", tie_word_embeddings=True,
            relative_attention_num_buckets=16, relative_attention_max_distance=20,
        ),
        length=24,
        encoder_decoder=True,
    ),
}  # fmt: skip


def _ids(case: Case, vocab_size: int) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(0)
    ids = {"input_ids": rng.randint(1, vocab_size, (2, case.length))}  # 0 is T5's padding
    if case.encoder_decoder:
        ids["decoder_input_ids"] = rng.randint(1, vocab_size, (2, case.length - 3))
        ids["decoder_input_ids"][:, 0] = 0  # the decoder start token
    return ids


def hf_logits(model: transformers.PreTrainedModel, ids: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(**{k: torch.tensor(v) for k, v in ids.items()}).logits.numpy()


def flanjax_logits(model: nnx.Module, ids: dict[str, np.ndarray]) -> np.ndarray:
    args = [jnp.asarray(ids["input_ids"])]
    if "decoder_input_ids" in ids:
        args.append(jnp.asarray(ids["decoder_input_ids"]))
    return np.asarray(model(*args))


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


SCANNED = ("t5_v1_1_small",)  # also converted with scan_layers (two stacks)


@pytest.mark.parametrize(
    "name,scan_layers", [(n, False) for n in CASES] + [(n, True) for n in SCANNED]
)
def test_from_hf_parity_and_round_trip(name: str, scan_layers: bool, tmp_path: Path) -> None:
    """With scan_layers the MODEL_DIR holds stacked layers (N x ... per parameter)
    and the export unstacks them."""
    case = CASES[name]
    torch.manual_seed(0)
    reference = case.build().eval()
    ids = _ids(case, reference.config.vocab_size)
    expected = hf_logits(reference, ids)
    assert np.abs(expected).max() > 1.0  # logits large enough for the tolerance to bite
    reference.save_pretrained(tmp_path / "hf")

    cfg = convert_from_hf(
        str(tmp_path / "hf"), str(tmp_path / "model_dir"), scan_layers=scan_layers
    )
    model, _ = evaluator.load_model(str(tmp_path / "model_dir"), 0)
    assert model.cfg.scan_layers == cfg.scan_layers == scan_layers
    if scan_layers:  # one stacked module, each parameter N x ...
        n = cfg.num_layers if isinstance(cfg, DecoderConfig) else cfg.num_decoder_layers
        assert model.decoder_layers.mlp_norm.scale.shape == (n, cfg.d_model)
    from_hf = _max_diff(flanjax_logits(model, ids), expected)
    print(f"{name}: max |flanjax - transformers| = {from_hf:.2e}")
    assert from_hf <= FROM_HF_ATOL

    convert_to_hf(str(tmp_path / "model_dir"), str(tmp_path / "export"))
    exported = type(reference).from_pretrained(tmp_path / "export", dtype=torch.float32).eval()
    round_trip = _max_diff(hf_logits(exported, ids), expected)
    print(f"{name}: max |exported - transformers| = {round_trip:.2e}")
    assert round_trip <= ROUND_TRIP_ATOL


def _save_word_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "the", "cat", "sat", "on", "a", "mat"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(
        folder
    )


def test_cli_sharded_bf16_checkpoint_with_tokenizer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _llama(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1,
    )  # fmt: skip
    model.to(torch.bfloat16).save_pretrained(tmp_path / "hf", max_shard_size="8KB")
    _save_word_tokenizer(tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists()
    reference = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    ids = {"input_ids": np.random.RandomState(1).randint(0, 64, (2, 9))}
    expected = hf_logits(reference.eval(), ids)

    src, model_dir, export = (str(tmp_path / n) for n in ("hf", "model_dir", "export"))
    assert cli.main(["convert", "--from", "hf", "--src", src, "--dst", model_dir]) == 0
    assert (tmp_path / "model_dir" / "vocab" / "tokenizer.json").exists()
    loaded, _ = evaluator.load_model(model_dir, 0)
    assert _max_diff(flanjax_logits(loaded, ids), expected) <= FROM_HF_ATOL

    assert (
        cli.main(["convert", "--to", "hf", "--src", model_dir, "--dst", export, "--step", "0"]) == 0
    )
    exported = transformers.LlamaForCausalLM.from_pretrained(export, dtype=torch.float32)
    assert _max_diff(hf_logits(exported.eval(), ids), expected) <= ROUND_TRIP_ATOL
    tokenizer = transformers.AutoTokenizer.from_pretrained(export)
    assert tokenizer("the cat sat").input_ids == [1, 2, 3]
    # Converting into a MODEL_DIR that already holds checkpoints is refused.
    assert cli.main(["convert", "--from", "hf", "--src", src, "--dst", model_dir]) == 2


def test_unsupported_configs_are_refused(tmp_path: Path) -> None:
    base = {"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2}  # fmt: skip
    with pytest.raises(ValueError, match="RoPE type 'yarn'"):
        hf.config_from_hf({**base, "rope_parameters": {"rope_type": "yarn", "factor": 8.0}})
    with pytest.raises(ValueError, match="llama3 RoPE scaling without"):
        hf.config_from_hf({**base, "rope_parameters": {"rope_type": "llama3", "factor": 8.0}})
    with pytest.raises(ValueError, match="biases"):
        hf.config_from_hf({**base, "attention_bias": True})
    with pytest.raises(ValueError, match="model_type"):
        hf.config_from_hf({**base, "model_type": "gpt2"})
    with pytest.raises(ValueError, match="prefix-LM"):
        hf.config_to_hf(DecoderConfig(attention="prefix"))


def test_param_rules_cover_every_parameter() -> None:
    """Each flanjax parameter has exactly one rule, and no rule names a missing one."""
    from flanjax import train_state

    configs = [
        DecoderConfig(num_layers=2, qkv_bias=True, tie_embeddings=False),
        DecoderConfig(num_layers=1),
        T5Config(num_encoder_layers=1, num_decoder_layers=2),
        T5Config(num_encoder_layers=1, num_decoder_layers=1, mlp_activation="relu",
                 tie_embeddings=True),
    ]  # fmt: skip
    for cfg in configs:
        params = train_state.abstract_params(cfg)
        flat = nnx.to_flat_state(params)
        paths = {".".join(str(k) for k in path) for path, _ in flat}
        rules = [r.path for r in hf.param_rules(cfg)]
        assert len(rules) == len(set(rules))
        assert paths == set(rules), cfg


def test_config_json_round_trip() -> None:
    for cfg in (
        DecoderConfig(num_kv_heads=1, qkv_bias=True, tie_embeddings=False, rope_theta=1e6),
        DecoderConfig(),
        T5Config(),
        T5Config(mlp_activation="relu", tie_embeddings=True, num_decoder_layers=3),
    ):
        assert hf.config_from_hf(json.loads(json.dumps(hf.config_to_hf(cfg)))) == cfg


def test_llama3_rope_scaling_equals_transformers() -> None:
    """Llama 3.1 / 3.2's RoPE frequencies: converted from the config, equal to what
    transformers computes for the same config."""
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from flanjax.models.llama import rope_frequencies

    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}  # fmt: skip
    hf_cfg = {"model_type": "llama", "vocab_size": 8, "hidden_size": 256,
              "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4,
              "rope_parameters": rope}  # fmt: skip
    cfg = hf.config_from_hf(hf_cfg)
    assert cfg.rope_scaling == (32.0, 1.0, 4.0, 8192.0) and cfg.rope_theta == 500000.0
    ours = np.asarray(rope_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling))
    theirs, _ = ROPE_INIT_FUNCTIONS["llama3"](transformers.LlamaConfig(**hf_cfg), "cpu")
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6)
    assert hf.config_to_hf(cfg)["rope_parameters"] == rope
