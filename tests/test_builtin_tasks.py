"""The built-in suite: seqio registration, determinism, mixtures and held-out splits."""

import numpy as np
import pytest
import seqio

import flanjax.tasks  # noqa: F401  (registers the suite)
from flanjax.data import mixing, registry, synthetic
from flanjax.data.templates import Template, TemplateError

CLUSTERS = {"arithmetic", "strings", "comparison", "passage_qa"}


def test_registered_in_seqio_registries():
    infos = {n: i for n, i in registry.task_infos().items() if n.startswith("builtin.")}
    assert len(infos) == 12
    assert {i.cluster for i in infos.values()} == CLUSTERS
    for name, info in infos.items():
        assert name in seqio.TaskRegistry.names()
        assert len(info.templates) >= 3
    assert any(i.has_choices for i in infos.values())
    for c in CLUSTERS:
        train = registry.tasks_of(f"builtin.train_without_{c}")
        held = registry.tasks_of(f"builtin.eval_{c}")
        assert len(train) == 9 and len(held) == 3
        assert not set(train) & set(held)
        assert {registry.get_task_info(t).cluster for t in held} == {c}


def test_generated_records_are_literal_and_deterministic():
    recs = synthetic.make_records("addition", "train", 2)
    assert recs == synthetic.make_records("addition", "train", 2)
    assert recs[0]["id"] == "addition/train/0"
    assert recs[0]["answer"] == str(recs[0]["a"] + recs[0]["b"])
    assert synthetic.parity(__import__("random").Random(0)) == {
        "n": 864,
        "choices": ["even", "odd"],
        "answer": "even",
    }


def test_train_and_validation_never_overlap():
    info = registry.get_task_info("builtin.larger_number")
    key = synthetic.content_key
    train = {key(r) for r in info.records("train")}
    assert not train & {key(r) for r in info.records("validation")}


def test_seqio_get_dataset_yields_rendered_tokenized_examples():
    ds = seqio.get_dataset(
        "builtin.addition",
        task_feature_lengths={"inputs": 64, "targets": 8},
        dataset_split="validation",
        shuffle=False,
        feature_converter=seqio.EncDecFeatureConverter(pack=False),
    )
    ex = next(ds.as_numpy_iterator())
    task = seqio.get_mixture_or_task("builtin.addition")
    raw = next(
        task.get_dataset(
            {"inputs": 64, "targets": 8}, "validation", shuffle=False
        ).as_numpy_iterator()
    )
    rec = registry.get_task_info("builtin.addition").records("validation")[0]
    assert raw["targets_pretokenized"].decode() == rec["answer"]
    assert str(rec["a"]) in raw["inputs_pretokenized"].decode()
    vocab = task.output_features["inputs"].vocabulary
    n = len(raw["inputs"])
    assert list(ex["encoder_input_tokens"][:n]) == list(raw["inputs"])
    assert vocab.decode(list(raw["inputs"][:-1])) == raw["inputs_pretokenized"].decode()
    assert raw["inputs"][-1] == 1  # EOS appended
    assert ex["decoder_input_tokens"][0] == 0  # targets shifted right


def test_mixture_rates_are_examples_proportional_with_cap():
    mix = seqio.get_mixture_or_task("builtin.train_without_comparison")
    rates = {t.name: mix.get_rate(t) for t in mix.tasks}
    assert set(rates.values()) == {2000.0}
    assert mixing.task_rates(["builtin.addition"], cap=500) == {"builtin.addition": 500.0}
    assert mixing.task_rates(["builtin.addition"], cap=500, temperature=2.0) == pytest.approx(
        {"builtin.addition": np.sqrt(500.0)}
    )


def test_unknown_task_or_mixture_names_it_and_suggests():
    with pytest.raises(
        ValueError, match=r"unknown task or mixture 'builtin.adition'.*builtin.addition"
    ):
        registry.get_mixture_or_task("builtin.adition")


def test_template_with_missing_field_fails_at_registration():
    bad = [Template("t0", "What is {a} plus {c}?", "{answer}")]
    with pytest.raises(TemplateError, match=r"task 'test.bad', template 't0'.*no field 'c'"):
        registry.register_templated_task(
            "test.bad",
            cluster="x",
            templates=bad,
            records=lambda split: synthetic.make_records("addition", split, 2),
            splits=("train",),
            vocabulary=seqio.ByteVocabulary(),
        )
    assert "test.bad" not in seqio.TaskRegistry.names()
