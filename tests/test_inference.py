"""Scoring and rank classification for both families; the score and generate commands.

The SmolLM2 tests (slow) convert the real SmolLM2-135M-Instruct folder prepared by
scripts/prepare_smollm2.py and compare `flanjax generate` / `flanjax score` with
transformers; they skip when the folder is absent.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio
from flax import nnx

from flanjax import checkpointing, cli, inference, model_loading
from flanjax.conversion import hf
from flanjax.models import DecoderConfig, T5Config, create_model

TINY_DECODER = DecoderConfig(
    vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, d_ff=48
)
TINY_T5 = T5Config(
    vocab_size=64, d_model=32, num_heads=4, head_dim=8, d_ff=48,
    num_encoder_layers=2, num_decoder_layers=2,
)  # fmt: skip


def make_model(cfg, seed: int = 0) -> nnx.Module:
    with nnx.use_eager_sharding(False):
        return create_model(cfg, nnx.Rngs(params=seed))


def full_sequence_scores(model, prompts, continuations) -> np.ndarray:
    """log p(continuation | prompt) from one plain forward pass per row (no cache)."""
    out = []
    for prompt, cont in zip(prompts, continuations, strict=True):
        tokens = jnp.asarray([list(prompt) + list(cont)])
        inputs_mask = jnp.asarray([[1] * len(prompt) + [0] * len(cont)])
        logp = jax.nn.log_softmax(model(tokens, None, None, inputs_mask)[0], axis=-1)
        positions = np.arange(len(prompt) - 1, len(prompt) + len(cont) - 1)
        out.append(float(np.asarray(logp)[positions, cont].sum()))
    return np.asarray(out)


@pytest.mark.parametrize("attention", ["causal", "prefix"])
def test_decoder_only_rank_classification_equals_full_sequence_scoring(attention: str) -> None:
    model = make_model(dataclasses.replace(TINY_DECODER, attention=attention))
    rng = np.random.RandomState(0)
    prompt_lengths, c = (4, 9, 1), 3
    choice_lengths = ((1, 3, 5), (2, 2, 4), (5, 1, 3))
    prompts = [rng.randint(1, 64, n) for n in prompt_lengths]
    choices = [[rng.randint(1, 64, n) for n in row] for row in choice_lengths]
    inputs = inference.pad_rows([list(p) for p in prompts], 12)
    flat = inference.pad_rows([list(ch) for row in choices for ch in row], 6)
    got = np.asarray(inference.score_choices(model, inputs, flat, num_choices=c))
    want = full_sequence_scores(
        model, [p for p in prompts for _ in range(c)], [ch for row in choices for ch in row]
    ).reshape(-1, c)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # `score` is the one-choice case, here with explicit lengths.
    single = inference.score(
        model, inputs, flat[::c], np.asarray(prompt_lengths), (flat[::c] != 0).sum(-1)
    )
    np.testing.assert_allclose(np.asarray(single), want[:, 0], rtol=1e-5, atol=1e-5)


def test_t5_rank_classification_equals_repeated_scoring() -> None:
    model = make_model(TINY_T5)
    rng = np.random.RandomState(1)
    inputs = inference.pad_rows([list(rng.randint(2, 64, n)) + [1] for n in (3, 7)], 8)
    flat = inference.pad_rows([list(rng.randint(2, 64, n)) + [1] for n in (1, 4, 2, 3)], 5)
    got = np.asarray(inference.score_choices(model, inputs, flat, num_choices=2))
    logits = model(jnp.repeat(inputs, 2, axis=0), inference.shift_right(jnp.asarray(flat)))
    logp = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    want = [logp[i, np.arange(5), flat[i]][flat[i] > 0].sum() for i in range(4)]
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(inference.score(model, np.repeat(inputs, 2, 0), flat)),
        want,
        rtol=1e-5,
        atol=1e-5,
    )


def test_encode_example_layouts() -> None:
    byte = seqio.ByteVocabulary()
    hi, yo = list(byte.encode("hi")), list(byte.encode("yo"))
    assert inference.encode_example(byte, "hi", "yo", encoder_decoder=True) == (hi + [1], yo + [1])
    assert inference.encode_example(byte, "hi", "yo", encoder_decoder=False) == (
        [0, *hi, 1], yo + [1]
    )  # fmt: skip

    @dataclasses.dataclass
    class Hf:  # what a Hugging Face tokenizer would add around a text
        prefix_ids: tuple = (7,)
        suffix_ids: tuple = ()
        eos_id: int = 1

        def encode(self, s: str) -> list[int]:
            return byte.encode(s)

    assert inference.encode_example(Hf(), "hi", "yo", encoder_decoder=False) == ([7, *hi], yo)


# --- the commands, on tiny random checkpoints ---------------------------------------
def _model_dir(tmp_path: Path, cfg) -> Path:
    """A MODEL_DIR holding checkpoint 0 of a tiny random model (byte vocabulary)."""
    model_dir = tmp_path / type(cfg).__name__
    checkpointing.save_model(str(model_dir), cfg, nnx.state(make_model(cfg), nnx.Param))
    return model_dir


def _write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


RECORDS = [
    {"inputs": "What is 2+2?", "targets": "4", "id": "a"},
    {"inputs": "Say hi", "targets": "hi there"},
    {"inputs": "x", "targets": ""},
]


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_score_and_generate_commands(family: str, tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY_T5 if family == "t5" else TINY_DECODER, vocab_size=260)
    model_dir = _model_dir(tmp_path, cfg)
    data = _write(tmp_path / "in.jsonl", RECORDS)
    flags = ["--checkpoint", str(model_dir), "--input", str(data), "--vocabulary", "byte"]
    assert (
        cli.main(["score", *flags, "--output", str(tmp_path / "s.jsonl"), "--batch_size", "2"]) == 0
    )
    scored = _read(tmp_path / "s.jsonl")
    assert [r["id"] for r in scored[:1]] == ["a"] and len(scored) == 3
    model, _ = model_loading.load_model(str(model_dir))
    vocab = seqio.ByteVocabulary()
    for record, out in zip(RECORDS, scored, strict=True):
        ids, tgt = inference.encode_example(
            vocab, record["inputs"], record["targets"], encoder_decoder=family == "t5"
        )
        want = inference.score(model, np.asarray([ids]), np.asarray([tgt]))
        assert out["num_target_tokens"] == len(tgt)
        np.testing.assert_allclose(out["log_likelihood"], float(want[0]), rtol=1e-5, atol=1e-5)
    out_path = tmp_path / "g.jsonl"
    sample = ["--temperature", "1.0", "--top_p", "0.9", "--seed", "3", "--max_new_tokens", "5"]
    for extra in ([], ["--beam_size", "3"], sample):
        assert cli.main(["generate", *flags, "--output", str(out_path), *extra]) == 0
        generated = _read(out_path)
        assert len(generated) == 3 and all(isinstance(r["output"], str) for r in generated)
        assert generated[0]["id"] == "a"


def test_commands_report_malformed_lines(tmp_path: Path, capsys) -> None:
    model_dir = _model_dir(tmp_path, dataclasses.replace(TINY_DECODER, vocab_size=260))
    flags = ["--checkpoint", str(model_dir), "--output", str(tmp_path / "o.jsonl")]
    bad_json = _write(tmp_path / "bad.jsonl", [RECORDS[0], "{not json"])
    assert cli.main(["score", *flags, "--input", str(bad_json), "--vocabulary", "byte"]) == 2
    assert f"{bad_json}:2: invalid JSON" in capsys.readouterr().err
    no_targets = _write(tmp_path / "nt.jsonl", [RECORDS[0], RECORDS[1], {"inputs": "a"}])
    assert cli.main(["score", *flags, "--input", str(no_targets), "--vocabulary", "byte"]) == 2
    assert f"{no_targets}:3: field 'targets' must be a string (missing)" in capsys.readouterr().err
    assert cli.main(["generate", *flags, "--input", str(no_targets)]) == 2
    assert "no saved vocabulary; pass --vocabulary" in capsys.readouterr().err


# --- the real SmolLM2 against transformers -------------------------------------------
PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time, there was a",
    "The three primary colors are",
    "import numpy as np\n\n# compute the mean of a list\ndef mean(xs):",
    "<|im_start|>user\nWhat is 12 times 12?<|im_end|>\n<|im_start|>assistant\n",
    "Water boils at",
    "The largest planet in our solar system is",
    "<|im_start|>user\nTranslate 'good morning' into French.<|im_end|>\n<|im_start|>assistant\n",
    "Q: What color is the sky on a clear day?\nA:",
    "My favourite food is",
)
CONTINUATIONS = (" Paris.", "return n", "Red, blue and green.", " little girl", " red",
                 "\n    return sum(xs) / len(xs)", "144", " 100 degrees Celsius.",
                 " Jupiter.", "Bonjour.", " Blue.", " pizza")  # fmt: skip


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path):
    """(HF folder, converted MODEL_DIR, transformers tokenizer, transformers model)."""
    import torch
    import transformers

    model_dir = tmp_path_factory.mktemp("smollm2") / "model_dir"
    hf.convert_from_hf(str(smollm2_dir), str(model_dir))
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir)
    reference = transformers.AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    return model_dir, tokenizer, reference.eval()


@pytest.mark.slow
def test_smollm2_generate_matches_transformers_greedy(smollm2, tmp_path: Path) -> None:
    import torch

    model_dir, tokenizer, reference = smollm2
    n = 20
    data = _write(tmp_path / "in.jsonl", [{"inputs": p} for p in PROMPTS])
    out = tmp_path / "out.jsonl"
    flags = ["--checkpoint", str(model_dir), "--input", str(data), "--output", str(out)]
    assert cli.main(["generate", *flags, "--max_new_tokens", str(n), "--batch_size", "6"]) == 0
    got = [r["output"] for r in _read(out)]
    for prompt, text in zip(PROMPTS, got, strict=True):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            want_ids = reference.generate(
                ids, do_sample=False, max_new_tokens=n, pad_token_id=tokenizer.eos_token_id
            )[0, ids.shape[1] :].tolist()
        want = tokenizer.decode(want_ids, skip_special_tokens=True)
        print(f"{prompt!r} -> {text!r}")
        assert text == want


@pytest.mark.slow
def test_smollm2_score_matches_transformers(smollm2, tmp_path: Path) -> None:
    import torch

    model_dir, tokenizer, reference = smollm2
    records = [{"inputs": p, "targets": c} for p, c in zip(PROMPTS, CONTINUATIONS, strict=True)]
    data = _write(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    flags = ["--checkpoint", str(model_dir), "--input", str(data), "--output", str(out)]
    assert cli.main(["score", *flags, "--batch_size", "4"]) == 0
    for record, scored in zip(records, _read(out), strict=True):
        prompt = tokenizer(record["inputs"]).input_ids
        cont = tokenizer(record["targets"], add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = reference(torch.tensor([prompt + cont])).logits[0]
        logp = torch.log_softmax(logits.double(), -1)
        want = float(sum(logp[len(prompt) - 1 + i, t] for i, t in enumerate(cont)))
        assert scored["num_target_tokens"] == len(cont)
        print(f"{record['targets']!r}: flanjax {scored['log_likelihood']:.5f} hf {want:.5f}")
        assert abs(scored["log_likelihood"] - want) <= 1e-3
