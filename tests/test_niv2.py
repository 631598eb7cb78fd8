"""Super-NaturalInstructions on the real sample (../shared/data/niv2): reading, the SuperNI
encodings as literal strings, the official split's mixtures, ROUGE-L per category through
the evaluator (best of several references), and malformed task files named."""

import dataclasses
import json

import numpy as np
import pytest
from flax import nnx

import flanjax.tasks  # noqa: F401  (registers niv2.*)
from flanjax.data import heldout, mixing, niv2, registry, stats
from flanjax.evaluation import evaluator, metrics, report
from flanjax.models.t5 import EncoderDecoder, T5Config
from flanjax.tasks import niv2 as niv2_tasks

TASK1152 = "test_tasks/task1152_bard_analogical_reasoning_causation.json"
DEF1152 = (
    "Task: Two analogies that relate actions with their consequences are given in the form "
    '"A : B. C : ?". The phrase "A : B" relates action A to consequence B. Your task is to '
    "replace the question mark (?) with the appropriate consquence of the given action C, "
    'following the "A : B" relation. Your answer should be a single verb, without further '
    "explanation."
)
POS1 = "Solved example 1:\nInput: throw : fly. aspire : ?\nOutput: attain"
POS2 = "Solved example 2:\nInput: listen : hear. drop : ?\nOutput: fall"
NEG1 = "Wrong example 1 (do not answer like this):\nInput: cut : bleed. crush : ?\nOutput: throw"
NEG2 = (
    "Wrong example 2 (do not answer like this):\nInput: nourish : grow. listen : ?\nOutput: break"
)
QUERY = "Now this one.\nInput: throw : fly. cut : ?\nOutput:"
EXPECTED_1152 = {
    "instance_only": "Input: throw : fly. cut : ?\nOutput:",
    "def": f"{DEF1152}\n\n{QUERY}",
    "pos2": f"{POS1}\n\n{POS2}\n\n{QUERY}",
    "def_pos1": f"{DEF1152}\n\n{POS1}\n\n{QUERY}",
    "def_pos2": f"{DEF1152}\n\n{POS1}\n\n{POS2}\n\n{QUERY}",
    "def_pos2_neg2": f"{DEF1152}\n\n{POS1}\n\n{POS2}\n\n{NEG1}\n\n{NEG2}\n\n{QUERY}",
    "def_pos2_neg2_expl": (
        f"{DEF1152}\n\n{POS1}\nWhy: Fly is a causation of throw. Hence, the inferred analogy "
        "being causation, attain is the causation of aspire.\n\n"
        f"{POS2}\nWhy: Hear is a causation of listen. Hence, the inferred analogy being "
        "causation, the causation of drop is fall.\n\n"
        f"{NEG1}\nWhy it is wrong: Bleed in a causation of cut. Hence, the analogy given is "
        "causation. But, throw is not a causation of crush.\n\n"
        f"{NEG2}\nWhy it is wrong: Grow is a causation of nourish. Hence, the analogy given is "
        f"causation. But, break is not a causation of listen\n\n{QUERY}"
    ),
}


def test_every_encoding_renders_as_specified(shared_data):
    task = niv2.read_task(shared_data / "niv2" / TASK1152)
    first = niv2.records(task)[0]
    assert first == {
        "id": "task1152-43a0232a708b4dda93feca216d38b340", "input": "throw : fly. cut : ?",
        "output": "bleed", "references": ["bleed"],
    }  # fmt: skip
    assert set(niv2.ENCODINGS) == set(EXPECTED_1152)
    for name, expected in EXPECTED_1152.items():
        template = niv2.encoding_template(task, niv2.get_encoding(name))
        ex = template.render(first, task=task.name)
        assert (ex.inputs, ex.targets, ex.references) == (expected, "bleed", ("bleed",)), name
        assert niv2.render_prompt(task, niv2.get_encoding(name), first["input"]) == expected
    kinds = {t.id: t.kind for t in niv2.task_templates(task, list(EXPECTED_1152))}
    assert kinds["def"] == "zero_shot" and kinds["def_pos2"] == "few_shot"


def test_braces_in_task_text_stay_literal(shared_data):
    task = niv2.read_task(shared_data / "niv2" / TASK1152)
    task = dataclasses.replace(task, definition="Answer {x} with {{y}}.")
    t = niv2.encoding_template(task, niv2.get_encoding("def"))
    ex = t.render({"id": "a", "input": "in {z}", "output": "o", "references": ["o"]})
    assert ex.inputs == "Task: Answer {x} with {{y}}.\n\nNow this one.\nInput: in {z}\nOutput:"


def test_read_task_caps_instances_keeps_metadata_and_references(shared_data):
    path = shared_data / "niv2" / "test_tasks" / "task121_zest_text_modification.json"
    task = niv2.read_task(path)
    assert (task.name, task.num_instances, len(task.instances)) == (
        "task121_zest_text_modification", 127, 100)  # fmt: skip
    assert task.metadata == {
        "Categories": ("Question Rewriting",), "Domains": ("Government and Politics",),
        "Source": ("zest",), "Reasoning": (), "Input_language": ("English",),
        "Output_language": ("English",), "Instruction_language": ("English",),
    }  # fmt: skip
    assert task.category == "question_rewriting"
    assert niv2.read_task(path).instances == task.instances  # the seeded sample is stable
    assert len(niv2.read_task(path, max_instances=None).instances) == 127
    multi = [r for r in niv2.records(task) if len(r["references"]) > 1]
    assert len(multi) == 4
    assert multi[0]["references"] == [
        "What are the names of the children of this president?",
        "What are the first names of the daughters of this president?",
    ]
    assert multi[0]["output"] == multi[0]["references"][0]  # training: the first reference


def test_official_split_registers_train_and_test_mixtures(shared_data):
    names = niv2_tasks.TASK_NAMES
    assert (len(names["train"]), len(names["test"])) == (19, 4)
    assert sorted(registry.tasks_of("niv2.test")) == sorted(names["test"])
    assert sorted(registry.tasks_of("niv2.train")) == sorted(names["train"])
    clusters = {registry.get_task_info(t).cluster for t in names["test"]}
    assert clusters == {"word_analogy", "question_rewriting", "cause_effect_classification"}
    info = registry.get_task_info("niv2.task1146_country_capital")
    assert (info.num_examples, info.cluster, info.metric) == (
        {"train": 100}, "misc", "rougeL_exact_match")  # fmt: skip
    assert registry.get_task_info("niv2.task062_bigbench_repeat_copy_logic").num_examples == {
        "train": 29}  # fmt: skip
    props = mixing.effective_proportions("niv2.train")
    assert props["niv2.task1146_country_capital"] == pytest.approx(100 / 1829)
    assert sorted(registry.tasks_of("niv2.eval_program_execution")) == [
        "niv2.task062_bigbench_repeat_copy_logic", "niv2.task1088_array_of_products",
        "niv2.task1148_maximum_ascii_value", "niv2.task1189_check_char_in_string",
        "niv2.task1404_date_conversion",
    ]  # fmt: skip
    report_ = heldout.find_contamination(names["train"], names["test"])
    assert not report_.contaminated and report_.eval_examples == 400


def test_stats_cover_niv2_per_source(shared_data):
    mixing.register_rated("test.niv2_and_rte", {"niv2.train": 1.0, "flan.rte": 1.0})
    try:
        st = stats.mixture_stats(
            "test.niv2_and_rte", 10, 8, {"inputs": 512, "targets": 64}, sample=10
        )
    finally:
        registry.unregister("test.niv2_and_rte")
    assert len(st.tasks) == 20
    sources = st.by_source()
    assert [(k, v[:2]) for k, v in sources.items()] == [("flan", (1, 2490)), ("niv2", (19, 1829))]
    assert sources["niv2"][2] == pytest.approx(sum(t.examples for t in st.tasks) / 2)
    assert "few_shot/no_options" in st.by_type()
    assert "niv2                                 19     1,829" in stats.format_stats(st)


def test_best_reference_scoring_literal_numbers():
    targets = [["the cat sat on the mat", "dog"], ["something else", "a red fox"]]
    got = metrics.rouge_l_exact_match(targets, ["cat on mat", "the red fox"])
    # 1: LCS 3 of 3 predicted / 6 reference words -> F 2/3 (the "dog" reference: 0);
    # 2: "a red fox" vs "the red fox": F 2/3; exact match after dropping articles.
    assert got == pytest.approx({"rougeL": 200 / 3, "exact_match": 50.0})
    only_first = metrics.rouge_l_exact_match([t[0] for t in targets], ["cat on mat", "the red fox"])
    assert only_first == pytest.approx({"rougeL": 100 / 3, "exact_match": 0.0})
    assert next(iter(metrics.get_metric("rougeL_exact_match")(["a"], ["a"]))) == "rougeL"


MODEL = T5Config(
    vocab_size=32128, d_model=16, num_heads=2, head_dim=8, d_ff=32,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip
CFG = evaluator.EvalConfig(
    "unused", "niv2.test", {"inputs": 128, "targets": 4}, batch_size=2, max_examples_per_task=2
)


def test_test_mixture_evaluates_rouge_l_per_category(shared_data):
    with nnx.use_eager_sharding(False):
        model = EncoderDecoder(MODEL, rngs=nnx.Rngs(0))
    result = evaluator.evaluate_model(model, CFG)
    assert result["clusters"].keys() == {
        "word_analogy", "question_rewriting", "cause_effect_classification"}  # fmt: skip
    assert result["clusters"]["question_rewriting"]["num_tasks"] == 2
    assert result["overall"]["num_tasks"] == 4
    assert result["overall"]["mean"] == pytest.approx(
        np.mean([t["mean"] for t in result["tasks"].values()]))  # fmt: skip
    for t in result["tasks"].values():
        (template,) = t["templates"].values()
        assert (t["split"], template["metric"], template["num_examples"]) == ("test", "rougeL", 2)
        assert set(template["metrics"]) == {"rougeL", "exact_match"}
        assert 0.0 <= template["score"] <= 100.0
    md = report.render([{"step": 0, "mixture": "niv2.test", "split": "test", **result}])
    assert "| all tasks |" in md and "| question_rewriting |" in md


def test_evaluator_scores_against_the_best_reference(shared_data, monkeypatch):
    """A model that always answers with an instance's last reference scores 100, though
    the training target (the first reference) differs on the multi-reference records."""
    info = registry.get_task_info("niv2.task121_zest_text_modification")
    records = [r for r in info.records("test") if len(r["references"]) > 1][:2]
    template = info.templates[0]
    examples = [template.render(r, task=info.name) for r in records]
    monkeypatch.setattr(
        evaluator, "generate", lambda m, tt, *a: [e.references[-1] for e in tt.examples]
    )
    with nnx.use_eager_sharding(False):
        model = EncoderDecoder(MODEL, rngs=nnx.Rngs(0))
    layout = evaluator.task_layout(info, model, None, CFG)
    got = evaluator.score_template(model, examples, template, niv2.METRIC, layout, CFG)
    assert got["metrics"] == {"rougeL": 100.0, "exact_match": 100.0}
    assert all(e.targets != e.references[-1] for e in examples)


def _task_json(shared_data) -> dict:
    return json.loads((shared_data / "niv2" / TASK1152).read_text())


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: "{\"Definition\": [", r"bad\.json: not valid JSON: line 1 column"),
        (lambda d: {k: v for k, v in d.items() if k != "Definition"}, r"field 'Definition'"),
        (lambda d: d | {"Instances": [*d["Instances"][:3], {"id": "x", "input": "y"}]},
         r"Instances\[3\]\.output: missing"),
        (lambda d: d | {"Positive Examples": [{"input": "a"}]},
         r"Positive Examples\[0\]\.output: missing"),
        (lambda d: d | {"Categories": []}, r"field 'Categories': missing or empty"),
    ],
)  # fmt: skip
def test_malformed_task_file_is_named(shared_data, tmp_path, break_it, message):
    broken = break_it(_task_json(shared_data))
    path = tmp_path / "bad.json"
    path.write_text(broken if isinstance(broken, str) else json.dumps(broken))
    with pytest.raises(niv2.NIv2Error, match=message) as e:
        niv2.read_task(path)
    assert str(path) in str(e.value)


def test_register_names_the_malformed_file(shared_data, tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "task_bad.json").write_text('{"Definition": ["x"], "Instances": [')
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train_tasks.txt").write_text("task_bad\n")
    (tmp_path / "splits" / "test_tasks.txt").write_text("task_missing\n")
    with pytest.raises(niv2.NIv2Error, match=r"task_bad\.json: not valid JSON"):
        niv2_tasks.register([tmp_path / "tasks"], tmp_path / "splits", data_dir=shared_data)


def test_a_full_checkout_is_found_by_env_var(tmp_path, monkeypatch):
    """FLANJAX_NIV2_TASKS names a checkout's tasks/; the splits are its ../splits/default."""
    checkout = tmp_path / "natural-instructions"
    monkeypatch.setenv(niv2_tasks.TASKS_ENV, str(checkout / "tasks"))
    monkeypatch.delenv(niv2_tasks.SPLITS_ENV, raising=False)
    dirs, splits = niv2_tasks.locations()
    assert (dirs, splits.resolve()) == ([checkout / "tasks"], checkout / "splits" / "default")
    assert niv2_tasks.locations(checkout / "tasks", "s")[0] == [checkout / "tasks"]
    monkeypatch.setenv(niv2_tasks.ENCODINGS_ENV, "def, def_pos2_neg2_expl")
    assert niv2_tasks.encodings_from_env() == ("def", "def_pos2_neg2_expl")
