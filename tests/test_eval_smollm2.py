"""The evaluator's rank classification on the real SmolLM2-135M-Instruct and FLAN data
equals, example by example, the same computation done directly with transformers.

The prompts are the evaluator's own (real RTE, CB, SST-2 and TREC records through
their templates), re-tokenized with the vocabulary a converted MODEL_DIR carries;
transformers (torch, float32) scores every answer option as the continuation of
the same prompt. Skips when the SmolLM2 folder (scripts/prepare_smollm2.py) or
../shared/data is absent.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from flanjax import partitioning, train_state
from flanjax.conversion import hf
from flanjax.data import registry
from flanjax.data.vocabularies import HfTokenizerVocabulary
from flanjax.evaluation import encoding, evaluator

pytestmark = pytest.mark.slow

TASKS = ("flan.rte", "flan.cb", "flan.sst2", "flan.trec")
NUM_EXAMPLES, NUM_TEMPLATES = 4, 2
LENGTHS = {"inputs": 256, "targets": 16}
ATOL = 2e-3


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path):
    """(model, MODEL_DIR holding the converted vocabulary, tokenizer, reference model)."""
    import torch
    import transformers

    import flanjax.tasks  # noqa: F401  (registers flan.* when ../shared/data is present)

    missing = [t for t in TASKS if t not in registry.task_infos()]
    if missing:
        pytest.skip(f"flan tasks not registered (no ../shared/data?): {missing}")
    cfg = hf.config_from_hf(hf.read_json(str(smollm2_dir / "config.json")))
    params = hf.params_from_hf(hf.SafetensorsReader(str(smollm2_dir)), cfg)
    with nnx.use_eager_sharding(False):
        model = nnx.merge(train_state.graphdef_of(cfg, partitioning.DEFAULT_RULES), params)
    # A MODEL_DIR's vocab/ as `flanjax convert --from hf` leaves it (no checkpoint needed).
    model_dir = tmp_path_factory.mktemp("smollm2")
    (model_dir / "vocab").mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(smollm2_dir / name, model_dir / "vocab" / name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir)
    reference = transformers.AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    return model, str(model_dir), tokenizer, reference.eval()


def transformers_log_likelihoods(tokenizer, reference, prompt: str, options) -> np.ndarray:
    """log p(option | prompt) per option, float32: one forward pass over the prompt, then
    one over all options (right-padded) after its KV cache, repeated per option."""
    import torch

    prompt_ids = tokenizer(prompt).input_ids
    option_ids = [tokenizer(o, add_special_tokens=False).input_ids for o in options]
    with torch.no_grad():
        out = reference(torch.tensor([prompt_ids]), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].double(), -1)  # predicts token 0
        lls = [float(first[ids[0]]) for ids in option_ids]
        rest = max(len(ids) for ids in option_ids) - 1
        if rest:  # option tokens 0..n-2 predict tokens 1..n-1
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(options))
            rows = [ids[:-1] + [0] * (rest + 1 - len(ids)) for ids in option_ids]
            mask = [[1] * len(prompt_ids) + [int(j < len(ids) - 1) for j in range(rest)]
                    for ids in option_ids]  # fmt: skip
            positions = torch.arange(len(prompt_ids), len(prompt_ids) + rest)[None]
            logits = reference(
                torch.tensor(rows), attention_mask=torch.tensor(mask),
                position_ids=positions.expand(len(options), -1), past_key_values=cache,
            ).logits  # fmt: skip
            logp = torch.log_softmax(logits.double(), -1)
            for c, ids in enumerate(option_ids):
                lls[c] += float(sum(logp[c, j, t] for j, t in enumerate(ids[1:])))
    return np.asarray(lls)


def test_rank_classification_choices_equal_transformers(smollm2) -> None:
    model, model_dir, tokenizer, reference = smollm2
    vocab = encoding.resolve_vocabulary(None, model_dir)  # MODEL_DIR/vocab by default
    assert isinstance(vocab, HfTokenizerVocabulary)
    cfg = evaluator.EvalConfig(model_dir, ",".join(TASKS), LENGTHS, batch_size=NUM_EXAMPLES)
    compared = 0
    for name in TASKS:
        info = registry.get_task_info(name)
        records = info.records(evaluator.eval_split(info, cfg))[:NUM_EXAMPLES]
        layout = evaluator.task_layout(info, model, vocab, cfg)
        assert layout.prompt_suffix == "\n" and not layout.encoder_decoder
        templates = [t for t in evaluator.eval_templates(info, cfg) if t.has_choices]
        for template in templates[:NUM_TEMPLATES]:
            _, examples = evaluator.render(info, template, records, 0, [], layout, cfg)
            tt = encoding.TokenizedTemplate(examples, layout, LENGTHS)
            start = time.process_time()
            ll = evaluator.rank_classify(model, tt, cfg.batch_size)
            print(f"{name}/{template.id}: flanjax {time.process_time() - start:.1f} s cpu")
            start = time.process_time()
            for i, ex in enumerate(examples):
                prompt = ex.inputs + "\n"
                assert tt.inputs[i, : tt.input_lengths[i]].tolist() == tokenizer(prompt).input_ids
                want = transformers_log_likelihoods(tokenizer, reference, prompt, ex.choices)
                got = ll[i, : len(ex.choices)]
                where = f"{name}/{template.id} example {i}: flanjax {got} transformers {want}"
                np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=where)
                assert int(np.argmax(got)) == int(np.argmax(want)), where
                lengths = tt.choice_lengths[i, : len(ex.choices)]
                assert int(np.argmax(got / lengths)) == int(np.argmax(want / lengths)), where
                compared += 1
            print(f"{name}/{template.id}: transformers {time.process_time() - start:.1f} s cpu")
    assert compared == len(TASKS) * NUM_TEMPLATES * NUM_EXAMPLES
