"""Held-out cluster splits: FLAN's 17 clusters, exclusion rules, shared datasets, contamination."""

from __future__ import annotations

import json

import pytest
import seqio

import flanjax.tasks  # noqa: F401  (registers builtin.* and, with data, flan.*)
from flanjax.data import heldout, mixing, registry
from flanjax.data.heldout import ClusterSuite, ContaminationError, HeldOutError
from flanjax.data.templates import Template

BUILTIN = [n for n in registry.task_infos() if n.startswith("builtin.") and n.count(".") == 1]


def test_all_17_flan_clusters_get_a_split(shared_data):
    suite = heldout.load_flan_suite(shared_data)
    splits = suite.splits()
    assert len(splits) == 17 and len(suite.tasks) == 69
    for cluster, split in splits.items():
        assert split.eval == suite.clusters[cluster]
        assert split.train_mixture == f"flan.train_without_{cluster}"
        dropped = {t for c in split.excluded for t in suite.clusters.get(c, ())}
        assert set(split.train) == set(suite.tasks) - dropped  # nothing else is dropped
        assert not {split.cluster_of[t] for t in split.train} & set(split.excluded)
    # Hand counts from flan_clusters.json: 69 datasets, summarization has 11.
    assert len(splits["summarization"].train) == 58
    assert len(splits["entailment"].train) == 69 - 10 - 4  # and paraphrase's 4
    assert len(splits["read_comp_and_common_sense"].train) == 69 - 2 - 6 - 4
    assert splits["question_classification"].eval == ("trec",)


def test_exclusion_rules(shared_data):
    splits = heldout.load_flan_suite(shared_data).splits()
    rc, cs, both = "reading_comprehension", "common_sense", "read_comp_and_common_sense"
    assert splits[rc].excluded == (rc, both)
    assert splits[cs].excluded == (cs, both)
    assert splits[both].excluded == (both, rc, cs)
    assert splits["paraphrase"].excluded == ("paraphrase", "entailment")
    assert splits["entailment"].excluded == ("entailment", "paraphrase")
    assert splits["sentiment"].excluded == ("sentiment",)
    # Not transitive: holding out reading comprehension keeps common sense.
    assert "copa" in splits[rc].train and "record" not in splits[rc].train
    assert "bool_q" in splits[cs].train and "cosmos_qa" not in splits[cs].train
    assert "rte" not in splits["paraphrase"].train and "glue_qqp" not in splits["entailment"].train


def test_a_training_list_with_an_excluded_cluster_is_refused(shared_data):
    suite = heldout.load_flan_suite(shared_data)
    with pytest.raises(HeldOutError) as e:
        suite.split("paraphrase", train=["sst2", "rte"])
    assert str(e.value) == (
        "training task 'rte' (dataset 'rte') is in cluster 'entailment', "
        "which is excluded with 'paraphrase'"
    )
    with pytest.raises(
        HeldOutError, match=r"task 'copa' is both trained on and held out \('common_sense'\)"
    ):
        suite.split("common_sense", train=["copa"])
    with pytest.raises(HeldOutError, match="unknown cluster 'sentiments'"):
        suite.split("sentiments")


def test_rules_naming_a_cluster_the_file_lacks_are_refused(tmp_path):
    path = tmp_path / "clusters.json"
    path.write_text(json.dumps({"clusters": {"entailment": ["rte"], "sentiment": ["sst2"]}}))
    with pytest.raises(HeldOutError, match=r"unknown clusters \['common_sense', 'para"):
        ClusterSuite.from_cluster_file(path)
    suite = ClusterSuite.from_cluster_file(path, related=())
    assert suite.split("entailment").train == ("sst2",)


def test_shared_datasets_are_dropped_or_refused():
    suite = ClusterSuite(
        "toy",
        {"math": ("gsm8k",), "cot": ("cot_gsm8k", "cot_aqua"), "sentiment": ("sst2",)},
        {t: heldout.canonical_dataset(t) for t in ("gsm8k", "cot_gsm8k", "cot_aqua", "sst2")},
    )
    assert suite.datasets["cot_gsm8k"] == "gsm8k"
    assert suite.split("math").train == ("cot_aqua", "sst2")  # cot_gsm8k holds GSM8K
    assert suite.split("cot").train == ("sst2",)
    with pytest.raises(HeldOutError) as e:
        suite.split("math", train=["sst2", "cot_gsm8k"])
    assert str(e.value) == (
        "training task 'cot_gsm8k' shares dataset 'gsm8k' with evaluation task 'gsm8k' "
        "of held-out cluster 'math'"
    )


def test_registered_flan_mixtures_follow_the_rules(shared_data):
    assert "flan.cot_gsm8k" not in registry.tasks_of("flan.train_without_math")
    assert "flan.gsm8k" not in registry.tasks_of("flan.train_without_cot")
    assert sorted(registry.tasks_of("flan.eval_entailment")) == ["flan.cb", "flan.rte"]
    names = [n for n in registry.tasks_of("flan.all")]
    suite = ClusterSuite.from_registry("flan", names)
    split = suite.check_mixture("flan.train_without_reading_comprehension", "reading_comprehension")
    assert set(split.eval) == {"flan.boolq", "flan.multirc"}
    mixing.register_mixture("test.leaky_flan", ["flan.sst2", "flan.boolq"])
    try:
        with pytest.raises(HeldOutError, match="task 'flan.boolq' is both trained on and held out"):
            suite.check_mixture("test.leaky_flan", "reading_comprehension")
    finally:
        registry.unregister("test.leaky_flan")


@pytest.fixture
def leaky_tasks():
    """Two training tasks in cluster "strings" built from held-out evaluation records.

    `leak.copy`: builtin.parity's validation records (the first of each number)
    under new ids, through its own templates: exact copies. `leak.passages`:
    builtin.passage_where's validation passages inside a new instruction (an
    n-gram match, never a whole-input one).
    """
    parity = registry.get_task_info("builtin.parity")
    where = registry.get_task_info("builtin.passage_where")

    def relabel(records, prefix):
        return [{**r, "id": f"{prefix}/train/{i}"} for i, r in enumerate(records)]

    seen: set[int] = set()
    firsts = [r for r in parity.records("validation") if not (r["n"] in seen or seen.add(r["n"]))]
    copies = relabel(firsts, "leak_copy")
    passages = relabel(where.records("validation"), "leak_passages")
    vocab = seqio.ByteVocabulary()
    registry.register_templated_task(
        "leak.copy", cluster="strings", templates=parity.templates,
        records=lambda split: copies, splits=("train",), vocabulary=vocab,
    )  # fmt: skip
    registry.register_templated_task(
        "leak.passages", cluster="strings",
        templates=[Template("t0", "Copy this text exactly:\n{passage}", "{passage}")],
        records=lambda split: passages, splits=("train",), vocabulary=vocab,
    )  # fmt: skip
    yield
    for name in ("leak.copy", "leak.passages", "leak.train_without_comparison"):
        registry.unregister(name)


def test_a_clean_split_passes_the_content_check():
    split = ClusterSuite.from_registry("builtin", BUILTIN).split("comparison")
    report = heldout.find_contamination(split.train, split.eval, max_records=200)
    assert not report.contaminated
    assert report.eval_examples == 3 * 64 * 3  # 3 tasks x 64 validation records x 3 templates
    # 9 training tasks of 3 templates, but addition and passage_where have 4.
    assert report.train_examples == 200 * (9 * 3 + 2)
    split.check_content(max_records=200)  # no error


def test_a_contaminated_mixture_is_refused(leaky_tasks):
    suite = ClusterSuite.from_registry("leak", [*BUILTIN, "leak.copy", "leak.passages"])
    split = suite.split("comparison")
    assert "leak.copy" in split.train  # a different dataset: the name check cannot see it
    with pytest.raises(ContaminationError) as e:
        split.register(check_content=True, max_records=300)
    msg = str(e.value)
    n = len(registry.get_task_info("leak.copy").records("train"))
    assert n == 52  # of the 64 validation records, 52 distinct numbers
    assert msg.startswith(
        "training mixture 'leak.train_without_comparison' contains evaluation examples of "
        "held-out cluster 'comparison':\n  training task 'leak.copy': 156 rendered examples "
        "(52 records) contain 52 evaluation records of 'builtin.parity' (156 exact, 0 by 13-gram)"
    )
    assert "first: training 'leak.copy' template 't0' record 'leak_copy/train/0' matches " in msg
    assert "evaluation 'builtin.parity' template 't0' record 'parity/validation/0'" in msg
    assert "leak.train_without_comparison" not in seqio.MixtureRegistry.names()  # refused

    report = heldout.find_contamination(["leak.passages"], suite.split("passage_qa").eval)
    pair = report.pairs[("leak.passages", "builtin.passage_where")]
    assert (pair.train_examples, pair.exact, pair.ngram, len(pair.eval_records)) == (64, 0, 64, 64)
    with pytest.raises(ContaminationError, match="'leak.passages': 64 rendered examples"):
        report.raise_if_contaminated("mixture 'x'", "passage_qa")


def test_template_wording_alone_is_not_contamination():
    words = ["please", "answer", "the", "following", "question", "about"]
    words += ["the", "text", "given", "below", "with", "care"]
    train = heldout.Rendered("a", "t0", "a/0", " ".join(words) + " What is two plus two?")
    evals = [
        heldout.Rendered("b", "t0", f"b/{i}", " ".join(words) + f" Case {i}: is {i} odd?")
        for i in range(10)
    ]
    index = heldout.EvalIndex(evals, n=13)
    assert index.matches(train.inputs) == {}  # the 13-grams recur in every eval render
    leaked = "Case 4: IS 4 odd?! " + " ".join(words)
    assert heldout.EvalIndex(evals[4:5], n=5).matches(leaked)["b"][1] == "ngram"
    exact = index.matches(evals[4].inputs.upper())["b"]
    assert exact == (4, "exact", " ".join(words) + " case 4 is 4 odd")
