"""promptsource templates.yaml as flanjax templates, checked against plain Jinja on real records."""

from __future__ import annotations

import functools
import re

import jinja2
import pytest
import seqio

from flanjax.data import catalog, registry
from flanjax.data import promptsource as ps
from flanjax.data.templates import RenderedExample, Template, TemplateError


def _templates(shared_data, dataset: str) -> dict[str, ps.PromptsourceTemplate]:
    folder = shared_data / "templates" / "promptsource" / ps.HF_SCHEMAS[dataset][0]
    return {t.name: t for t in ps.load_templates(folder / "templates.yaml")}


def _records(shared_data, dataset: str, split: str = "validation") -> list[dict]:
    return [ps.hf_record(dataset, r) for r in catalog.load_records(dataset, split, shared_data)]


@functools.cache
def _plain(source: str) -> jinja2.Template:
    return jinja2.Environment().from_string(source)


def _plain_jinja(t: ps.PromptsourceTemplate, record: dict) -> list[str]:
    """The template rendered by an ordinary jinja2 Environment, as promptsource splits it."""
    choices = None
    if t.answer_choices_jinja is not None:
        text = _plain(t.answer_choices_jinja).render(**record)
        choices = [c.strip() for c in text.split("|||")]
    out = _plain(t.jinja).render(**record, answer_choices=choices)
    return [part.strip() for part in out.split("|||")]


def test_every_file_loads_with_its_metadata(shared_data):
    files = ps.find_template_files(shared_data / "templates" / "promptsource")
    counts = {k: len(ps.load_templates(p)) for k, p in files.items()}
    assert counts == {
        "ag_news": 7, "anli": 15, "e2e_nlg_cleaned": 12, "glue/mrpc": 7, "glue/sst2": 5,
        "hellaswag": 11, "nq_open": 6, "piqa": 11, "super_glue/boolq": 10, "super_glue/cb": 15,
        "super_glue/copa": 12, "super_glue/multirc": 10, "super_glue/rte": 10,
        "super_glue/wic": 10, "super_glue/wsc.fixed": 10, "trec": 18,
        "winogrande/winogrande_xl": 6,
    }  # fmt: skip
    rte = _templates(shared_data, "rte")["MNLI crowdsource"]
    assert isinstance(rte, Template)
    assert rte.id == "2b52a83c-0021-41fe-b44c-5aaa076d71a2"
    assert rte.dataset == "super_glue/rte"
    assert (rte.original_task, rte.choices_in_prompt, rte.metrics) == (True, True, ("Accuracy",))
    assert (rte.has_choices, rte.options_in_prompt, rte.metric) == (True, True, "accuracy")
    assert rte.required_fields() == ("hypothesis", "label", "premise")
    nq = _templates(shared_data, "nq_open")["formal_description"]
    assert (nq.has_choices, nq.answer_choices_jinja, nq.metric) == (False, None, "accuracy")


@pytest.mark.parametrize("dataset", ["rte", "cb", "copa"])
def test_rendering_equals_plain_jinja_on_every_validation_record(shared_data, dataset):
    templates = list(_templates(shared_data, dataset).values())
    records = _records(shared_data, dataset)
    assert len(records) == catalog.get_spec(dataset).num_examples["validation"]
    rendered = skipped = 0
    for rec in records:
        for t in templates:
            parts = _plain_jinja(t, rec)
            if len(parts) != 2 or not parts[0]:  # a branch this record does not take
                assert not t.applies_to(rec)
                with pytest.raises(ps.NotApplicableError, match=re.escape(t.name)):
                    t.render(rec, task=dataset)
                skipped += 1
                continue
            ex = t.render(rec, task=dataset)
            assert [ex.inputs, ex.targets] == parts
            assert ex.choices[ex.answer_index] == ex.targets
            rendered += 1
    # COPA: 4 of its 12 templates cover only "cause" or only "effect" questions.
    expected = {"rte": (2770, 0), "cb": (840, 0), "copa": (1000, 200)}[dataset]
    assert (rendered, skipped) == expected


def test_literal_renderings_of_two_templates(shared_data):
    rte = _templates(shared_data, "rte")["MNLI crowdsource"]
    assert rte.render(_records(shared_data, "rte")[0]) == RenderedExample(
        inputs="Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at "
        "age 44, according to the Christopher Reeve Foundation. Using only the above "
        'description and what you know about the world, is "Christopher Reeve had an '
        'accident." definitely correct? Yes or no?',
        targets="No",
        choices=("Yes", "No"),
        answer_index=1,
    )
    copa = _templates(shared_data, "copa")["exercise"]
    assert copa.render(_records(shared_data, "copa")[0]) == RenderedExample(
        inputs="Exercise: choose the most plausible alternative.\n\nThe man turned on the "
        "faucet.  so... \n- The toilet filled with water.\n- Water flowed from the spout.",
        targets="Water flowed from the spout.",
        choices=("The toilet filled with water.", "Water flowed from the spout."),
        answer_index=1,
    )


def test_hf_record_restores_integer_labels_and_field_names(shared_data):
    assert _records(shared_data, "copa")[0] == {
        "id": "copa/validation/0",
        "premise": "The man turned on the faucet.",
        "choice1": "The toilet filled with water.",
        "choice2": "Water flowed from the spout.",
        "question": "effect",
        "label": 1,
        "idx": 0,
    }
    cb = _records(shared_data, "cb")[0]
    assert (cb["label"], cb["idx"]) == (1, 0)  # "contradiction" in HF's class order
    with pytest.raises(ValueError, match="no Hugging Face schema for 'trec'"):
        ps.hf_record("trec", {})


def test_choice_filter_is_deterministic_per_record(shared_data):
    t = _templates(shared_data, "nq_open")["formal_description"]
    rec = {"question": "who wrote it", "answer": ["Ann", "Bob", "Cy", "Dee"]}
    first = t.render(rec).targets
    assert all(t.render(rec).targets == first for _ in range(5))
    picks = {t.render({**rec, "question": f"q{i}"}).targets for i in range(40)}
    assert picks == {"Ann", "Bob", "Cy", "Dee"}


def _inline(jinja: str, choices: str | None = None) -> ps.PromptsourceTemplate:
    return ps.PromptsourceTemplate(
        id="x", inputs=jinja, targets="", jinja=jinja, answer_choices_jinja=choices, name="x"
    )


def test_pipes_in_records_truncation_and_sandbox():
    t = _inline("Q: {{ q }} ||| {{ answer_choices[label] }}", "a|||b ||| c")
    ex = t.render({"q": "x ||| y", "label": 1})
    assert ex == RenderedExample("Q: x ||| y", "b", ("a", "b", "c"), 1)
    long = _inline("{{ text }} ||| ok")
    # jinja's truncate: 2048 - len("...") characters, cut back to a word boundary.
    assert long.render({"text": "w " * 2000}).inputs == ("w " * 1022).strip() + "..."
    with pytest.raises(TemplateError, match="reserved field 'answer_choices'"):
        t.render({"q": "x", "label": 0, "answer_choices": []})
    with pytest.raises(TemplateError, match="no field 'label'"):
        t.render({"q": "x"})
    evil = _inline("{{ q.__class__.__mro__ }} ||| x")
    with pytest.raises(TemplateError, match="SecurityError|unsafe"):
        evil.render({"q": "x"})


def test_promptsource_templates_drive_a_seqio_task(shared_data):
    templates = tuple(_templates(shared_data, "rte").values())
    records = {s: _records(shared_data, "rte", s)[:20] for s in ("train", "validation")}
    registry.register_templated_task(
        "test_promptsource.rte",
        cluster="entailment",
        templates=templates,
        records=records.__getitem__,
        splits=("train", "validation"),
        vocabulary=seqio.ByteVocabulary(),
    )
    ds = seqio.get_mixture_or_task("test_promptsource.rte").get_dataset(
        {"inputs": 512, "targets": 8}, split="validation", shuffle=False
    )
    ex = next(ds.as_numpy_iterator())
    assert ex["targets_pretokenized"].decode() in ("Yes", "No", "True", "False")
    assert "Christopher Reeve had an accident." in ex["inputs_pretokenized"].decode()
