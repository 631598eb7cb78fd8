"""Evaluator: rank classification against a direct computation; results and report."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import flanjax.tasks
from flanjax import inference
from flanjax.data import registry
from flanjax.evaluation import evaluator, report
from flanjax.models.t5 import EncoderDecoder, T5Config

MODEL = T5Config(
    vocab_size=384, d_model=32, num_heads=4, head_dim=8, d_ff=64,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip
CFG = evaluator.EvalConfig(
    "unused", "builtin.eval_comparison", {"inputs": 128, "targets": 16}, batch_size=4,
    max_examples_per_task=6,
)  # fmt: skip


@pytest.fixture(scope="module")
def model():
    with nnx.use_eager_sharding(False):
        return EncoderDecoder(MODEL, rngs=nnx.Rngs(3))


def test_rank_classification_matches_direct_log_likelihoods(model):
    info = registry.get_task_info("builtin.parity")
    template = info.templates[1]
    records = info.records("validation")[:6]
    examples = [template.render(r, task=info.name) for r in records]
    vocab = flanjax.tasks.builtin.VOCABULARY
    tt = evaluator.TokenizedTemplate(examples, vocab, CFG.task_feature_lengths)
    ll = evaluator.rank_classify(model, tt, batch_size=4)  # encoder once per example
    for i, ex in enumerate(examples):
        inputs = inference.pad_rows([[*vocab.encode(ex.inputs), 1]], 128)
        direct = []
        for choice in ex.choices:  # the naive way: a full forward pass per choice
            tgt = inference.pad_rows([[*vocab.encode(choice), 1]], 16)
            logits = model(jnp.asarray(inputs), inference.shift_right(jnp.asarray(tgt)))
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[..., None], -1)[0, :, 0]
            direct.append(float(jnp.sum(jnp.where(tgt[0] > 0, logp, 0.0))))
        np.testing.assert_allclose(ll[i], direct, rtol=1e-5, atol=1e-5)
        assert int(np.argmax(ll[i])) == int(np.argmax(direct))


def test_padding_choices_are_never_picked(model):
    info = registry.get_task_info("builtin.parity")
    ex = info.templates[0].render(info.records("validation")[0], task=info.name)
    short = ex.__class__(ex.inputs, ex.targets, ex.choices[:1], 0)
    tt = evaluator.TokenizedTemplate(
        [ex, short], flanjax.tasks.builtin.VOCABULARY, CFG.task_feature_lengths
    )
    ll = evaluator.rank_classify(model, tt, batch_size=4)
    assert np.isfinite(ll[0]).all() and ll[1, 1] == -np.inf


def test_evaluate_model_aggregates_templates_tasks_clusters(model):
    result = evaluator.evaluate_model(model, CFG)
    assert set(result["clusters"]) == {"comparison"}
    tasks = result["tasks"]
    assert set(tasks) == {"builtin.larger_number", "builtin.parity", "builtin.alphabetical_first"}
    for t in tasks.values():
        scores = [v["score"] for v in t["templates"].values()]
        assert t["mean"] == pytest.approx(np.mean(scores))
        assert t["min"] == min(scores) and t["max"] == max(scores)
        assert all(
            v["metric"] == "accuracy" and v["num_examples"] == 6 for v in t["templates"].values()
        )
    assert result["clusters"]["comparison"]["mean"] == pytest.approx(
        np.mean([t["mean"] for t in tasks.values()])
    )


def test_report_compares_steps(tmp_path):
    mix = "builtin.eval_comparison"
    os.makedirs(evaluator.eval_dir(str(tmp_path), mix))
    for step, score in ((0, 40.0), (100, 55.5)):
        res = {
            "step": step, "mixture": mix, "split": "validation",
            "clusters": {"comparison": {"mean": score, "num_tasks": 1}},
            "tasks": {"builtin.parity": {"cluster": "comparison", "mean": score, "std": 0.0,
                      "min": score, "max": score,
                      "templates": {"t0": {"score": score, "metric": "accuracy"}}}},
        }  # fmt: skip
        with open(evaluator.results_path(str(tmp_path), mix, step), "w") as f:
            json.dump(res, f)
    path, text = report.write_report(str(tmp_path), mix)
    assert os.path.exists(path)
    assert "| comparison | 40.0 | 55.5 | +15.5 |" in text
    assert "| builtin.parity/t0 | accuracy | 40.0 | 55.5 | +15.5 |" in text


def test_report_png_holds_expected_series(tmp_path):
    from PIL import Image

    from flanjax.evaluation import plots

    test_report_compares_steps(tmp_path)  # writes two results and the report with plots
    d = evaluator.eval_dir(str(tmp_path), "builtin.eval_comparison")
    assert "![clusters.png](clusters.png)" in (tmp_path / d / "report.md").read_text()
    for name, expected in (
        ("clusters.png", {"comparison": [[0, 40.0], [100, 55.5]]}),
        ("tasks.png", {"builtin.parity": [[0, 40.0], [100, 55.5]]}),
        ("spread.png", {"builtin.parity": [55.5]}),
    ):
        with Image.open(os.path.join(d, name)) as img:
            img.load()
            assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 100
            assert json.loads(img.text[plots.SERIES_KEY]) == expected
            assert len(img.getcolors(maxcolors=1 << 16) or [0, 1]) > 2  # not blank
