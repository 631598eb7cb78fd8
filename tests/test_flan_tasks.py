"""The real-data tasks `flan.<dataset>`: templates, rendering, registration, seqio."""

from __future__ import annotations

import logging

import pytest
import seqio

import flanjax.tasks  # noqa: F401  (registers flan.* when ../shared/data is there)
from flanjax.data import catalog, few_shot, registry
from flanjax.evaluation.metrics import METRICS
from flanjax.tasks import flan, flan_templates

NAMES = sorted(catalog.CATALOG)
# Datasets where an inverted template makes no sense (WSC: a pronoun and a
# candidate referent; nothing to generate from the label).
NO_INVERTED = {"wsc"}
CLASSIFICATION = {"rte", "cb", "copa", "wsc", "boolq", "multirc", "sst2", "trec", "agnews"}
COT_SETS = {"gsm8k"} | {n for n in NAMES if n.startswith("cot_")}


def eval_split(name: str) -> str:
    splits = catalog.CATALOG[name].splits
    return next(s for s in ("validation", "test", "train") if s in splits)


def render(name: str, split: str, template_id: str) -> tuple[str, str]:
    info = registry.get_task_info(f"flan.{name}")
    template = next(t for t in info.templates if t.id == template_id)
    example = template.render(info.records(split).head(1)[0], info.name)
    return example.inputs, example.targets


def test_every_catalog_dataset_is_a_task_in_its_cluster(shared_data):
    assert sorted(flan.TASK_NAMES) == [f"flan.{n}" for n in NAMES]
    for name in NAMES:
        assert registry.get_task_info(f"flan.{name}").cluster == catalog.CATALOG[name].cluster
    assert len(registry.tasks_of("flan.all")) == len(NAMES)
    assert sorted(registry.tasks_of("flan.eval_entailment")) == ["flan.cb", "flan.rte"]
    assert "flan.rte" not in registry.tasks_of("flan.train_without_entailment")


@pytest.mark.parametrize("name", NAMES)
def test_templates_of_each_dataset(name):
    templates = flan_templates.templates_for(name)
    assert len(templates) >= 10
    assert len({t.id for t in templates}) == len(templates)
    for t in templates:
        assert t.metric in METRICS, (t.id, t.metric)
        assert (t.metric == "accuracy") == t.has_choices, t.id
    assert any(t.inverted for t in templates) == (name not in NO_INVERTED)
    if name in CLASSIFICATION:
        with_options = {t.options_in_prompt for t in templates if t.has_choices}
        assert with_options == {True, False}
    if name in COT_SETS:
        cot = [t for t in templates if t.kind == "cot"]
        assert len(cot) >= 4 and all("{rationale}" in t.targets for t in cot)
        assert not any(t.is_cot for t in flan_templates.templates_for(name, cot=False))


def test_metrics_per_kind_of_dataset():
    def metrics(name: str) -> set[str]:
        return {t.metric for t in flan_templates.templates_for(name) if not t.inverted}

    assert metrics("nq_open") == {"squad"}
    assert metrics("e2e") == {"bleu"}
    assert {t.metric for t in flan_templates.templates_for("gsm8k") if t.is_cot} == {
        "gsm8k_answer_accuracy"
    }
    assert {t.metric for t in flan_templates.templates_for("e2e") if t.inverted} == {"rouge"}


@pytest.mark.parametrize("name", NAMES)
def test_every_template_renders_the_first_records(shared_data, name):
    info = registry.get_task_info(f"flan.{name}")
    records = info.records(eval_split(name)).head(20)
    assert len(records) == 20
    for template in info.templates:
        for record in records:
            example = template.render(record, info.name)
            assert example.inputs.strip() and example.targets.strip()


EXPECTED = [
    ("rte", "validation", "t0",
     "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, "
     "according to the Christopher Reeve Foundation.\n\nBased on the text above, is it true "
     'that "Christopher Reeve had an accident."?\nOptions: yes, no', "no"),
    ("rte", "validation", "t8",
     "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, "
     "according to the Christopher Reeve Foundation.\n\nWrite a sentence that does not follow "
     "from the text above.", "Christopher Reeve had an accident."),
    ("copa", "validation", "t0",
     "The man turned on the faucet so...\n(A) the toilet filled with water. (B) water flowed "
     "from the spout.", "water flowed from the spout."),
    ("sst2", "validation", "t1",
     'Movie review: "one long string of cliches ."\nDid the reviewer like the movie?', "no"),
    ("trec", "test", "t7",
     "Label the question with its TREC class, written COARSE:fine (for example NUM:date).\n"
     "How far is it from Denver to Aspen ?", "NUM:dist"),
    ("nq_open", "validation", "t0",
     "When was the last time anyone was on the moon?", "14 December 1972 UTC"),
    ("nq_open", "validation", "t8",
     'Write a trivia question whose answer is "14 December 1972 UTC".',
     "When was the last time anyone was on the moon?"),
    ("e2e", "validation", "t9",
     "Sentence: There is a place in the city centre, Alimentum, that is not family-friendly.\n"
     "List the restaurant attributes it mentions, in the form key[value], separated by commas.",
     "name[Alimentum], area[city centre], familyFriendly[no]"),
    ("gsm8k", "train", "t3",
     "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
     "in May. How many clips did Natalia sell altogether in April and May?\nLet's think step "
     "by step.",
     "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April "
     "and May. So the answer is 72."),
    ("cot_strategyqa", "train", "c0",
     "Are more people today related to Genghis Khan than Julius Caesar?\nLet's think step by "
     "step.",
     "Julius Caesar had three children. Genghis Khan had sixteen children. Modern geneticists "
     "have determined thatout of every 200 men today has DNA that can be traced to Genghis "
     "Khan. So the answer is yes."),
    ("cot_aqua", "train", "t0",
     "Rs. 5600 is divided into three parts A, B and C. How much A is more than C if their "
     "ratio is 1/7:1/7:1/14?\nOptions:\n(A) 300\n(B) 992\n(C) 1120\n(D) 552\n(E) 312", "(C)"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "split", "tid", "inputs", "targets"), EXPECTED)
def test_literal_renderings(shared_data, name, split, tid, inputs, targets):
    assert render(name, split, tid) == (inputs, targets)


def test_seqio_dataset_is_tokenized(shared_data):
    ds = seqio.get_dataset(
        "flan.rte",
        {"inputs": 256, "targets": 16},
        dataset_split="validation",
        shuffle=False,
        feature_converter=seqio.EncDecFeatureConverter(pack=False),
    )
    examples = list(ds.take(2).as_numpy_iterator())
    assert len(examples) == 2
    first = examples[0]
    assert first["encoder_input_tokens"].shape == (256,)
    assert first["decoder_target_tokens"].shape == (16,)
    vocab = seqio.get_mixture_or_task("flan.rte").output_features["inputs"].vocabulary
    assert vocab.vocab_size == 32100
    # Record 0 is drawn to template t9 (pick_template, seed 0).
    assert vocab.decode(first["encoder_input_tokens"].tolist()) == (
        "Write a short passage from which one cannot conclude the following: Christopher "
        "Reeve had an accident."
    )


def test_registration_reads_one_record_per_dataset(shared_data, monkeypatch):
    read = []
    load = catalog.load_records

    def counting(spec, split, data_dir=None):
        for record in load(spec, split, data_dir):
            read.append(record["id"])
            yield record

    monkeypatch.setattr(catalog, "load_records", counting)
    names = flan.register(shared_data)
    assert len(names) == len(NAMES)
    assert sorted(read) == sorted(f"{n}/{next(iter(catalog.CATALOG[n].splits))}/0" for n in NAMES)


def test_without_data_nothing_is_registered(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger=flan.__name__):
        assert flan.register(tmp_path / "absent") == []
    assert "no data directory" in caplog.text


def test_cot_knob(monkeypatch):
    monkeypatch.setenv(flan.COT_ENV, "0")
    assert not flan.cot_enabled()
    monkeypatch.delenv(flan.COT_ENV)
    assert flan.cot_enabled()
    with_cot = flan_templates.templates_for("cot_ecqa")
    without = flan_templates.templates_for("cot_ecqa", cot=False)
    assert len(with_cot) - len(without) == 4


def test_few_shot_exemplars_come_from_train(shared_data):
    info = registry.get_task_info("flan.rte")
    vocab = seqio.get_mixture_or_task("flan.rte").output_features["inputs"].vocabulary
    config = few_shot.FewShotConfig(k=3, max_input_length=320)
    shots = few_shot.few_shot_examples(
        info, info.templates[0], "validation", config, lambda s: len(vocab.encode(s)), limit=4
    )
    assert len(shots) == 4
    for shot in shots:
        assert shot.exemplar_ids and all(i.startswith("rte/train/") for i in shot.exemplar_ids)
        assert shot.kind == "few_shot"
        assert len(vocab.encode(shot.example.inputs)) <= 320
    with pytest.raises(ValueError, match="no 'train' split"):
        few_shot.few_shot_examples(registry.get_task_info("flan.copa"), None, "validation")


def test_every_data_file_is_a_split_of_a_registered_task(shared_data):
    """Each file under train/ and eval/ feeds a flan task of >= 10 templates with a cluster."""
    by_file = {p: name for name, s in catalog.CATALOG.items() for p in s.splits.values()}
    label_lists = {"train/agnews/classes.txt"}  # AG News's class names, read by its normalizer
    files = {
        str(p.relative_to(shared_data))
        for d in ("train", "eval")
        for p in (shared_data / d).rglob("*")
        if p.is_file()
    }
    assert len(files) == 26  # SOURCES.md: 20 datasets, some with several splits
    assert files - label_lists == set(by_file)
    for name in set(by_file.values()):
        info = registry.get_task_info(f"flan.{name}")
        assert len(info.templates) >= 10 and info.cluster, name
