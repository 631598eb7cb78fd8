"""Evaluator: rank classification against a direct computation (and the encoder run once
per example); aggregation, few-shot beside zero-shot, the baseline; results and report."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import flanjax.tasks
from flanjax import checkpointing, inference
from flanjax.data import registry
from flanjax.evaluation import aggregate, evaluator, report
from flanjax.evaluation.encoding import Layout, TokenizedTemplate
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
    tt = TokenizedTemplate(examples, Layout(vocab, True), CFG.task_feature_lengths)
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
    layout = Layout(flanjax.tasks.builtin.VOCABULARY, True)
    tt = TokenizedTemplate([ex, short], layout, CFG.task_feature_lengths)
    ll = evaluator.rank_classify(model, tt, batch_size=4)
    assert np.isfinite(ll[0]).all() and ll[1, 1] == -np.inf


def test_evaluate_model_aggregates_templates_tasks_clusters(model):
    cfg = dataclasses.replace(CFG, few_shot=(2,))
    result = evaluator.evaluate_model(model, cfg)
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
    two_shot = result["few_shot"]["2"]  # beside zero-shot, same shape, "<id>.2shot" templates
    assert set(two_shot["tasks"]) == set(tasks) and set(two_shot["clusters"]) == {"comparison"}
    for name, t in two_shot["tasks"].items():
        assert set(t["templates"]) == {f"{tid}.2shot" for tid in tasks[name]["templates"]}
        assert t["split"] == "validation" and t["exemplar_split"] == "train"


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


def test_rank_classification_runs_the_encoder_once_per_example(model, monkeypatch):
    """Encoder rows = examples (padded to whole batches), not examples x choices; the
    decoder sees every choice. The naive way (`inference.score` on inputs repeated per
    choice) encodes C times as many rows."""
    calls = {"encode": [], "decode_step": []}
    for name in calls:
        original = getattr(EncoderDecoder, name)

        def counted(self, tokens, *args, _name=name, _original=original, **kwargs):
            calls[_name].append(tokens.shape[0])
            return _original(self, tokens, *args, **kwargs)

        monkeypatch.setattr(EncoderDecoder, name, counted)
    info = registry.get_task_info("builtin.parity")
    template = info.templates[1]
    examples = [template.render(r, task=info.name) for r in info.records("validation")[:6]]
    layout = Layout(flanjax.tasks.builtin.VOCABULARY, True)
    tt = TokenizedTemplate(examples, layout, CFG.task_feature_lengths)
    c = tt.num_choices
    assert c == 2
    with jax.disable_jit():  # every call runs in Python, so each one is counted
        ll = evaluator.rank_classify(model, tt, batch_size=4)
        assert calls == {"encode": [4, 4], "decode_step": [4 * c, 4 * c]}  # 2 batches
        calls["encode"].clear()
        naive = inference.score(model, np.repeat(tt.inputs[:4], c, 0), tt.choices[: 4 * c])
    assert calls["encode"] == [4 * c]
    np.testing.assert_allclose(ll[:4].reshape(-1), np.asarray(naive), rtol=1e-5, atol=1e-5)


def test_aggregate_with_literal_numbers():
    per_template = {
        "a.x": {"t0": {"score": 50.0}, "t1": {"score": 70.0}, "t2": {"score": 60.0}},
        "a.y": {"t0": {"score": 20.0}},
        "b.z": {"t0": {"score": 90.0}, "t1": {"score": 80.0}},
    }
    out = aggregate.aggregate(
        per_template, {"a.x": "A", "a.y": "A", "b.z": "B"}, {"a.x": {"split": "test"}}
    )
    x = out["tasks"]["a.x"]
    assert (x["mean"], x["min"], x["max"], x["split"]) == (60.0, 50.0, 70.0, "test")
    assert x["std"] == pytest.approx(8.16496580927726)  # population std over templates
    assert out["tasks"]["a.y"] | {"templates": None} == {
        "cluster": "A", "mean": 20.0, "std": 0.0, "min": 20.0, "max": 20.0, "templates": None
    }  # fmt: skip
    assert out["tasks"]["b.z"]["std"] == 5.0
    assert out["clusters"] == {
        "A": {"mean": 40.0, "std": 20.0, "min": 20.0, "max": 60.0, "num_tasks": 2},
        "B": {"mean": 85.0, "std": 0.0, "min": 85.0, "max": 85.0, "num_tasks": 1},
    }
    result = {**out, "few_shot": {"3": aggregate.aggregate(
        {"a.x": {"t0.3shot": {"score": 75.0}}}, {"a.x": "A"})}}  # fmt: skip
    assert aggregate.side_by_side(result, "clusters", "A") == {"0": 40.0, "3": 75.0}
    assert aggregate.side_by_side(result, "tasks", "a.y") == {"0": 20.0}
    with pytest.raises(ValueError, match="no scores"):
        aggregate.spread([])


def _result(step, cluster_score, template_scores, few_shot=None):
    res = {
        "step": step, "mixture": "builtin.eval_comparison", "split": "validation",
        **aggregate.aggregate(
            {"builtin.parity": {t: {"score": v, "metric": "accuracy"}
                                for t, v in template_scores.items()}},
            {"builtin.parity": "comparison"}, {"builtin.parity": {"split": "validation"}}),
    }  # fmt: skip
    res["clusters"]["comparison"]["mean"] = cluster_score
    if few_shot:
        res["few_shot"] = {"2": _result(step, few_shot, {"t0.2shot": few_shot})}
    return res


def test_report_baseline_gain_and_few_shot_side_by_side():
    baseline = {**_result(0, 30.0, {"t0": 30.0, "t1": 30.0}), "baseline": "/runs/init"}
    results = [
        _result(0, 40.0, {"t0": 40.0, "t1": 40.0}),
        _result(100, 55.5, {"t0": 51.0, "t1": 60.0}, few_shot=61.0),
    ]
    text = report.render(results, baseline=baseline)
    assert "Baseline: /runs/init (step 0)" in text
    assert "| cluster | baseline | step 0 | step 100 | gain |" in text
    assert "| comparison | 30.0 | 40.0 | 55.5 | +25.5 |" in text  # gain over the baseline
    assert "| builtin.parity/t1 | accuracy | 30.0 | 40.0 | 60.0 | +30.0 |" in text
    assert "| cluster | 0-shot | 2-shot |" in text and "| comparison | 55.5 | 61.0 |" in text
    assert "| builtin.parity | validation | 0-shot | 55.5 | 4.5 | 51.0 | 60.0 |" in text
    assert "| builtin.parity | validation | 2-shot | 61.0 | 0.0 | 61.0 | 61.0 |" in text
    without = report.render(results)  # no baseline: the gain is over the first checkpoint
    assert "**gain** is over step 0" in without
    assert "| comparison | 40.0 | 55.5 | +15.5 |" in without


def _tiny_model_dir(path, seed):
    with nnx.use_eager_sharding(False):
        params = nnx.state(EncoderDecoder(MODEL, rngs=nnx.Rngs(seed)), nnx.Param)
    checkpointing.save_model(str(path), MODEL, params)
    return str(path)


def test_baseline_checkpoint_is_evaluated_once_and_reported(tmp_path):
    init = _tiny_model_dir(tmp_path / "init", seed=1)
    run = _tiny_model_dir(tmp_path / "run", seed=2)
    cfg = evaluator.EvalConfig(
        run, "builtin.parity", {"inputs": 64, "targets": 8}, batch_size=4,
        max_examples_per_task=4, baseline_checkpoint_path=init, vocabulary="byte",
    )  # fmt: skip
    base = evaluator.evaluate_baseline(cfg)
    path = evaluator.results_path(run, cfg.mixture_or_task_name, evaluator.BASELINE)
    stamp = os.stat(path).st_mtime_ns
    assert base["baseline"] == init and base["step"] == 0
    assert evaluator.evaluate_baseline(cfg) == base and os.stat(path).st_mtime_ns == stamp
    result = evaluator.evaluate_checkpoint(cfg, 0)
    _, text = report.write_report(run, cfg.mixture_or_task_name)
    b, s = base["clusters"]["comparison"]["mean"], result["clusters"]["comparison"]["mean"]
    assert f"| comparison | {b:.1f} | {s:.1f} | {s - b:+.1f} |" in text
    assert (
        evaluator.evaluate_baseline(dataclasses.replace(cfg, baseline_checkpoint_path=None)) is None
    )
