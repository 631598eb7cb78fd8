"""Tests for flanjax.evaluation.metrics; expected values are worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flanjax.evaluation import metrics
from flanjax.evaluation.metrics import (
    METRICS,
    accuracy,
    bleu,
    exact_match,
    extract_final_number,
    get_metric,
    gsm8k_answer_accuracy,
    macro_f1,
    normalize_answer,
    rouge,
    squad,
    token_f1,
)

# Six examples, labels a/b/c:
#   targets      a a b b c c
#   predictions  a b b b c a
# a: TP=1 FP=1 FN=1 -> F1 = 2/(2+1+1) = 1/2
# b: TP=2 FP=1 FN=0 -> F1 = 4/(4+1+0) = 4/5
# c: TP=1 FP=0 FN=1 -> F1 = 2/(2+0+1) = 2/3
# macro = (1/2 + 4/5 + 2/3) / 3 = (15 + 24 + 20) / 90 = 59/90
SIX_TARGETS = ["a", "a", "b", "b", "c", "c"]
SIX_PREDICTIONS = ["a", "b", "b", "b", "c", "a"]


def test_accuracy() -> None:
    assert accuracy(SIX_TARGETS, SIX_PREDICTIONS) == {"accuracy": pytest.approx(100 * 4 / 6)}
    assert accuracy([1, 2], [1, 2]) == {"accuracy": 100.0}


def test_macro_f1_hand_computed() -> None:
    result = macro_f1(SIX_TARGETS, SIX_PREDICTIONS)
    assert result == {"macro_f1": pytest.approx(100 * 59 / 90)}


def test_macro_f1_counts_labels_only_predicted() -> None:
    # x: TP=1 FN=1 -> 2/3; y (never a target): FP=1 -> 0; macro = 1/3.
    assert macro_f1(["x", "x"], ["x", "y"])["macro_f1"] == pytest.approx(100 / 3)
    assert macro_f1(["x", "y"], ["x", "y"])["macro_f1"] == pytest.approx(100.0)


def test_normalize_answer() -> None:
    assert normalize_answer("  The Cat,  sat on a MAT!  ") == "cat sat on mat"
    assert normalize_answer("an apple") == "apple"
    assert normalize_answer("theory") == "theory"  # "the" only as a whole word


def test_token_f1_hand_computed() -> None:
    # pred "the cat sat" -> [cat, sat]; ref "a cat sat down" -> [cat, sat, down]
    # common = 2, P = 2/2 = 1, R = 2/3, F1 = 2*1*(2/3) / (1 + 2/3) = (4/3)/(5/3) = 0.8
    assert token_f1(["a cat sat down"], ["the cat sat"]) == {"token_f1": pytest.approx(80.0)}


def test_token_f1_takes_best_reference_and_averages() -> None:
    targets = [["a cat sat down", "The cat sat."], "dog"]
    # example 1: best reference matches exactly -> 1.0; example 2: no overlap -> 0.0
    assert token_f1(targets, ["the cat sat", "cat"]) == {"token_f1": pytest.approx(50.0)}


def test_exact_match_normalizes_and_takes_max() -> None:
    assert exact_match(["The Cat, sat!"], ["cat sat"]) == {"exact_match": 100.0}
    targets = [["Paris", "paris, France"], "Rome", "Berlin"]
    predictions = ["Paris, France", "rome.", "Bonn"]
    assert exact_match(targets, predictions) == {"exact_match": pytest.approx(200 / 3)}


def test_squad_returns_both_and_handles_empty_answers() -> None:
    result = squad(["a cat sat down"], ["the cat sat"])
    assert result == {"exact_match": 0.0, "token_f1": pytest.approx(80.0)}
    # Both normalize to nothing -> full credit; only one does -> none.
    assert squad(["the"], ["."]) == {"exact_match": 100.0, "token_f1": 100.0}
    assert squad(["cat"], ["the"]) == {"exact_match": 0.0, "token_f1": 0.0}


def test_bleu_identical_and_disjoint() -> None:
    sentence = "The quick brown fox jumps over the lazy dog ."
    assert bleu([sentence], [sentence])["bleu"] == pytest.approx(100.0)
    assert bleu(["one two three four five"], ["six seven eight nine ten"]) == {"bleu": 0.0}


def test_bleu_variable_number_of_references() -> None:
    targets = [["a b c d e", "v w x y z"], "f g h i j", ["q r s t u", "p", "k l m n o"]]
    predictions = ["a b c d e", "f g h i j", "k l m n o"]
    assert bleu(targets, predictions)["bleu"] == pytest.approx(100.0)


def test_rouge_identical_and_disjoint() -> None:
    same = rouge(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    disjoint = rouge(["the cat sat"], ["dogs run quickly"])
    assert disjoint == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_hand_computed_partial_overlap() -> None:
    # ref tokens: the cat sat on the mat (6); pred: the cat sat (3)
    # rouge1: overlap 3, P=1, R=1/2 -> F=2/3
    # rouge2: ref bigrams 5, pred bigrams 2, overlap 2, P=1, R=2/5 -> F=4/7
    # rougeL: LCS 3 -> F=2/3
    result = rouge(["the cat sat on the mat"], ["the cat sat"])
    assert result["rouge1"] == pytest.approx(200 / 3)
    assert result["rouge2"] == pytest.approx(400 / 7)
    assert result["rougeL"] == pytest.approx(200 / 3)
    assert rouge(["the cat sat on the mat"], ["the cat sat"], lsum=False) == result


def test_rouge_stems_and_takes_best_reference() -> None:
    # Porter stemming: cats -> cat, running -> run.
    assert rouge(["cat run"], ["cats running"])["rouge1"] == pytest.approx(100.0)
    multi = rouge([["dogs bark", "the cat sat"]], ["the cat sat"])
    assert multi == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234", "1234"),
        ("#### 72", "72"),
        ("The answer is 12.50.", "12.50"),
        ("She pays $5 each.\nSo the answer is $1,000,000.", "1000000"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
        ("So the answer is 72.\n\nQ: Tom has 5 apples.", "72"),
        ("The answer: 18", "18"),
        ("3 + 4 = 7 apples", "7"),
        ("It was -7 degrees", "-7"),
        ("pages 3-5", "5"),
        ("half is .5", ".5"),
        ("no digits here", None),
    ],
)
def test_extract_final_number(text: str, expected: str | None) -> None:
    assert extract_final_number(text) == expected


def test_gsm8k_answer_accuracy() -> None:
    targets = [
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
        "18",
        "#### 1,234",
        "#### 5",
    ]
    predictions = [
        "She sold 24 in May, so 48 + 24 = 72.0 in total. So the answer is 72.",
        "The answer is $18.00.",
        "Total: $1,234",
        "I cannot tell.",  # no number -> wrong
    ]
    assert gsm8k_answer_accuracy(targets, predictions) == {"gsm8k_accuracy": 75.0}
    assert gsm8k_answer_accuracy([72, 2.5], ["72.0", "2.50"]) == {"gsm8k_accuracy": 100.0}


def test_gsm8k_target_without_number_raises() -> None:
    with pytest.raises(ValueError, match="no number found in target of example 1"):
        gsm8k_answer_accuracy(["#### 3", "unknown"], ["3", "4"])


ALL_METRICS: list[tuple[str, Callable[..., dict[str, float]], list[Any]]] = [
    ("accuracy", accuracy, ["x"]),
    ("macro_f1", macro_f1, ["x"]),
    ("exact_match", exact_match, ["x"]),
    ("token_f1", token_f1, ["x"]),
    ("squad", squad, ["x"]),
    ("bleu", bleu, ["x"]),
    ("rouge", rouge, ["x"]),
    ("rougeL_exact_match", metrics.rouge_l_exact_match, ["x"]),
    ("gsm8k_answer_accuracy", gsm8k_answer_accuracy, ["1"]),
]


@pytest.mark.parametrize(("name", "fn", "one"), ALL_METRICS)
def test_empty_inputs_raise(name: str, fn: Callable[..., Any], one: list[Any]) -> None:
    with pytest.raises(ValueError, match="no examples"):
        fn([], [])


@pytest.mark.parametrize(("name", "fn", "one"), ALL_METRICS)
def test_length_mismatch_raises(name: str, fn: Callable[..., Any], one: list[Any]) -> None:
    with pytest.raises(ValueError, match="got 3 targets but 1 predictions"):
        fn(one * 3, one)


def test_empty_reference_list_raises() -> None:
    with pytest.raises(ValueError, match="example 0 has an empty list of references"):
        token_f1([[]], ["x"])


def test_registry_and_get_metric() -> None:
    assert set(METRICS) == {name for name, _, _ in ALL_METRICS}
    assert get_metric("squad") is squad
    assert get_metric("gsm8k_answer_accuracy") is metrics.gsm8k_answer_accuracy
    with pytest.raises(ValueError, match=r"Unknown metric 'blue'.*known metrics: accuracy, bleu"):
        get_metric("blue")


def test_non_string_reference_raises_type_error() -> None:
    with pytest.raises(TypeError, match="example 0 has a reference of type int"):
        bleu([["ok", 3]], ["ok"])
