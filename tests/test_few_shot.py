"""Few-shot rendering: exemplars from the pool only, deterministic, pruned to a budget."""

from __future__ import annotations

import pytest

from flanjax.data import few_shot as fs
from flanjax.data.templates import Template

QA = Template("t0", "Q: {q}", "{a}")
WORDS = ("one", "two", "three", "four", "five")
POOL = [{"id": f"train/{i}", "q": w, "a": str(i + 1)} for i, w in enumerate(WORDS)]
QUERY = {"id": "val/0", "q": "six", "a": "6"}


def words(text: str) -> int:
    return len(text.split())


def test_exemplars_come_before_the_query():
    got = fs.render_few_shot(QA, QUERY, POOL, fs.FewShotConfig(k=2))
    assert got.example.inputs == "Q: three\n3\n\nQ: two\n2\n\nQ: six"
    assert got.example.targets == "6"
    assert got.exemplar_ids == ("train/2", "train/1")
    assert got.kind == "few_shot"


def test_draw_depends_on_seed_and_is_repeatable():
    config = fs.FewShotConfig(k=2, seed=1)
    got = fs.render_few_shot(QA, QUERY, POOL, config)
    assert got.example.inputs == "Q: three\n3\n\nQ: four\n4\n\nQ: six"
    assert fs.render_few_shot(QA, QUERY, POOL, config) == got


def test_the_query_is_never_its_own_exemplar():
    got = fs.render_few_shot(QA, POOL[2], POOL, fs.FewShotConfig(k=4))
    assert got.exemplar_ids == ("train/1", "train/3", "train/4", "train/0")
    assert got.example.inputs == "Q: two\n2\n\nQ: four\n4\n\nQ: five\n5\n\nQ: one\n1\n\nQ: three"
    for record in POOL:  # whatever the query, k = pool size - 1 leaves it out
        ids = fs.render_few_shot(QA, record, POOL, fs.FewShotConfig(k=4)).exemplar_ids
        assert len(ids) == 4 and record["id"] not in ids


def test_budget_drops_the_last_drawn_exemplars():
    config = fs.FewShotConfig(k=3, max_input_length=8)
    got = fs.render_few_shot(QA, QUERY, POOL, config, length_fn=words)
    assert got.example.inputs == "Q: three\n3\n\nQ: two\n2\n\nQ: six"  # 8 words; k=3 has 11
    assert got.exemplar_ids == ("train/2", "train/1")


def test_budget_too_small_for_any_exemplar_gives_zero_shot():
    config = fs.FewShotConfig(k=3, max_input_length=1)
    got = fs.render_few_shot(QA, QUERY, POOL, config, length_fn=words)
    assert (got.example.inputs, got.exemplar_ids, got.kind) == ("Q: six", (), "zero_shot")


def test_budget_needs_a_length_function():
    with pytest.raises(ValueError, match="length_fn"):
        fs.render_few_shot(QA, QUERY, POOL, fs.FewShotConfig(max_input_length=10))


def test_choices_and_cot_kind_are_kept():
    choices = Template("c", "Q: {q}", "{answer}", choices=tuple("123456"), answer_field="a")
    got = fs.render_few_shot(choices, QUERY, POOL, fs.FewShotConfig(k=1))
    assert got.example.inputs == "Q: three\n3\n\nQ: six"
    assert (got.example.choices, got.example.answer_index) == (tuple("123456"), 5)
    cot = Template("k", "Q: {q}", "Because. So the answer is {a}.", kind="cot")
    config = fs.FewShotConfig(k=1, answer_separator=" A: ")
    got = fs.render_few_shot(cot, QUERY, POOL, config)
    assert got.example.inputs == "Q: three A: Because. So the answer is 3.\n\nQ: six"
    assert got.kind == "few_shot_cot"


def test_few_shot_kinds_and_template():
    assert [fs.few_shot_kind(k) for k in ("zero_shot", "cot")] == ["few_shot", "few_shot_cot"]
    marked = fs.few_shot_template(QA, 3)
    assert (marked.id, marked.kind, marked.is_few_shot, QA.is_few_shot) == (
        "t0.3shot",
        "few_shot",
        True,
        False,
    )
    with pytest.raises(ValueError, match="kind"):
        Template("x", "a", "b", kind="two_shot")
