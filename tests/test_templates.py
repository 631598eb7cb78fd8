"""Template rendering: literal outputs, option formats and errors that name the culprit."""

import pytest

from flanjax.data.templates import Template, TemplateError, format_options, pick_template

RECORD = {"id": "t/train/0", "a": 3, "b": 4, "answer": "7"}
CHOICE_RECORD = {"id": "p/validation/5", "n": 12, "choices": ["even", "odd"], "answer": "even"}


def test_render_generation_template():
    ex = Template("t0", "What is {a} plus {b}?", "{answer}").render(RECORD, task="arith")
    assert (ex.inputs, ex.targets, ex.choices, ex.answer_index) == (
        "What is 3 plus 4?",
        "7",
        (),
        -1,
    )


def test_render_with_options_in_prompt():
    t = Template("t1", "Is {n} even or odd?\n{options}", "{answer}", choices_field="choices")
    ex = t.render(CHOICE_RECORD, task="parity")
    assert ex.targets == "even"
    assert ex.choices == ("even", "odd")
    assert ex.answer_index == 0
    assert t.options_in_prompt
    # The option style is fixed by the record id: one of the three formats.
    assert ex.inputs in {
        "Is 12 even or odd?\nOPTIONS:\n- even\n- odd",
        "Is 12 even or odd?\nOptions: even, odd",
        "Is 12 even or odd?\n(A) even (B) odd",
    }
    assert t.render(CHOICE_RECORD, task="parity") == ex  # deterministic


def test_option_styles_literal():
    assert format_options(["yes", "no"], "dash_list") == "OPTIONS:\n- yes\n- no"
    assert format_options(["yes", "no"], "inline") == "Options: yes, no"
    assert format_options(["yes", "no"], "lettered") == "(A) yes (B) no"
    with pytest.raises(ValueError, match="unknown option style 'fancy'"):
        format_options(["yes"], "fancy")


def test_option_styles_all_used_across_records():
    t = Template("t1", "{options}", "{answer}", choices_field="choices")
    firsts = {
        t.render({**CHOICE_RECORD, "id": f"r{i}"}, task="p").inputs.split()[0] for i in range(60)
    }
    assert firsts == {"OPTIONS:", "Options:", "(A)"}


def test_literal_choices_and_integer_label():
    t = Template("t2", "{n}?", "{answer}", choices=("even", "odd"))
    assert t.render({"id": "x", "n": 3, "answer": 1}).targets == "odd"
    assert not t.options_in_prompt


def test_missing_field_names_task_template_and_field():
    t = Template("t3", "What is {a} plus {c}?", "{answer}")
    with pytest.raises(TemplateError, match=r"task 'arith', template 't3'.*no field 'c'"):
        t.render(RECORD, task="arith")


def test_label_outside_choices_is_refused():
    t = Template("t4", "{n}", "{answer}", choices_field="choices")
    with pytest.raises(TemplateError, match=r"template 't4'.*label 'maybe'.*not among"):
        t.render({**CHOICE_RECORD, "answer": "maybe"}, task="parity")


def test_required_fields_and_inverted_template():
    t = Template("t5", "Who lives in {answer}?", "{person}", inverted=True)
    assert t.required_fields() == ("answer", "person")
    ex = t.render({"id": "i", "answer": "Oslo", "person": "Ada"})
    assert (ex.inputs, ex.targets) == ("Who lives in Oslo?", "Ada")


def test_pick_template_is_deterministic_and_uniform():
    ts = [Template(f"t{i}", "x", "y") for i in range(3)]
    picks = [pick_template(ts, f"r{i}", seed=0).id for i in range(300)]
    assert picks == [pick_template(ts, f"r{i}", seed=0).id for i in range(300)]
    assert all(80 < picks.count(f"t{i}") < 120 for i in range(3))
