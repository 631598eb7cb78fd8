"""Text metrics for the held-out-cluster evaluator.

Every metric follows seqio's metric-function convention: it is called as
``metric(targets, predictions)`` with two equally long sequences (one entry per
example) and returns a ``dict`` mapping metric names to floats. Scores are in
percent (0..100), as in seqio's and t5's metrics.

Both inputs must be non-empty and of equal length; otherwise a ``ValueError``
is raised, so that an evaluation that silently produced nothing is noticed
instead of being reported as a score of 0.

``sacrebleu`` and ``rouge-score`` are imported lazily, on the first call of
:func:`bleu` or :func:`rouge`.
"""

from __future__ import annotations

import collections
import functools
import math
import re
import string
from collections.abc import Callable, Hashable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer

MetricFn = Callable[[Sequence[Any], Sequence[Any]], dict[str, float]]
"""Type of a metric function: ``(targets, predictions) -> {name: score}``."""

Reference = str | Sequence[str]
"""A target for text metrics: one reference string or several acceptable ones."""


def _check_inputs(name: str, targets: Sequence[Any], predictions: Sequence[Any]) -> None:
    """Raises ``ValueError`` on a length mismatch or on empty inputs."""
    if len(targets) != len(predictions):
        raise ValueError(
            f"{name}: got {len(targets)} targets but {len(predictions)} predictions; "
            "they must have the same length"
        )
    if not targets:
        raise ValueError(f"{name}: no examples to score (targets and predictions are empty)")


def _as_references(name: str, target: Reference, index: int) -> list[str]:
    """Returns the reference strings of one example (a str or a list of str)."""
    refs = [target] if isinstance(target, str) else list(target)
    if not refs:
        raise ValueError(f"{name}: example {index} has an empty list of references")
    for ref in refs:
        if not isinstance(ref, str):
            raise TypeError(
                f"{name}: example {index} has a reference of type "
                f"{type(ref).__name__}, expected str"
            )
    return refs


def _percent_mean(values: Sequence[float]) -> float:
    return 100.0 * math.fsum(values) / len(values)


# ---------------------------------------------------------------------------
# Classification metrics.


def accuracy(targets: Sequence[Hashable], predictions: Sequence[Hashable]) -> dict[str, float]:
    """Percentage of predictions exactly equal (``==``) to their target."""
    _check_inputs("accuracy", targets, predictions)
    correct = [float(t == p) for t, p in zip(targets, predictions, strict=True)]
    return {"accuracy": _percent_mean(correct)}


def macro_f1(targets: Sequence[Hashable], predictions: Sequence[Hashable]) -> dict[str, float]:
    """Unweighted mean of per-label F1 over every label in targets or predictions.

    Per label, F1 = 2·TP / (2·TP + FP + FN). A label that only ever occurs as a
    prediction has F1 = 0 and still counts in the mean, so spurious labels
    lower the score (as with sklearn's ``f1_score(average="macro")`` over the
    same label set).
    """
    _check_inputs("macro_f1", targets, predictions)
    labels = dict.fromkeys([*targets, *predictions])
    tp: collections.Counter[Hashable] = collections.Counter()
    fp: collections.Counter[Hashable] = collections.Counter()
    fn: collections.Counter[Hashable] = collections.Counter()
    for target, prediction in zip(targets, predictions, strict=True):
        if target == prediction:
            tp[target] += 1
        else:
            fp[prediction] += 1
            fn[target] += 1
    f1s = [2 * tp[lab] / (2 * tp[lab] + fp[lab] + fn[lab]) for lab in labels]
    return {"macro_f1": _percent_mean(f1s)}


# ---------------------------------------------------------------------------
# SQuAD-style metrics.

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lower-case, drop punctuation and articles, squash spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def _token_f1_single(prediction: str, reference: str) -> float:
    """Token-overlap F1 in [0, 1] after SQuAD normalization.

    If either side normalizes to no tokens, the score is 1 when both do and 0
    otherwise (the SQuAD 2.0 convention, consistent with exact match).
    """
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(ref_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def _exact_match_single(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def _best_over_references(
    name: str,
    score_fn: Callable[[str, str], float],
    targets: Sequence[Reference],
    predictions: Sequence[str],
) -> list[float]:
    """Per example, the maximum of ``score_fn(prediction, ref)`` over its references."""
    _check_inputs(name, targets, predictions)
    return [
        max(score_fn(prediction, ref) for ref in _as_references(name, target, i))
        for i, (target, prediction) in enumerate(zip(targets, predictions, strict=True))
    ]


def exact_match(targets: Sequence[Reference], predictions: Sequence[str]) -> dict[str, float]:
    """Percentage of predictions equal to some reference after SQuAD normalization."""
    scores = _best_over_references("exact_match", _exact_match_single, targets, predictions)
    return {"exact_match": _percent_mean(scores)}


def token_f1(targets: Sequence[Reference], predictions: Sequence[str]) -> dict[str, float]:
    """Mean SQuAD token F1, taking the best reference of each example."""
    scores = _best_over_references("token_f1", _token_f1_single, targets, predictions)
    return {"token_f1": _percent_mean(scores)}


def squad(targets: Sequence[Reference], predictions: Sequence[str]) -> dict[str, float]:
    """Both :func:`exact_match` and :func:`token_f1`."""
    return {**exact_match(targets, predictions), **token_f1(targets, predictions)}


# ---------------------------------------------------------------------------
# Generation metrics (sacrebleu, rouge-score).


def bleu(targets: Sequence[Reference], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU from sacrebleu with t5's settings.

    Settings: ``tokenize="intl"``, exponential smoothing, no lower-casing, no
    effective order. Each target may be one reference or a list of them; the
    number of references may differ between examples (missing ones are passed
    to sacrebleu as ``None``, which it ignores).
    """
    from sacrebleu.metrics import BLEU

    _check_inputs("bleu", targets, predictions)
    refs = [_as_references("bleu", target, i) for i, target in enumerate(targets)]
    max_refs = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(max_refs)]
    metric = BLEU(
        lowercase=False,
        force=False,
        tokenize="intl",
        smooth_method="exp",
        effective_order=False,
    )
    score = metric.corpus_score(list(predictions), streams)
    return {"bleu": float(score.score)}


_ROUGE_OUTPUT_KEYS = ("rouge1", "rouge2", "rougeL")


@functools.cache
def _rouge_scorer(lsum: bool) -> RougeScorer:
    from rouge_score import rouge_scorer

    l_type = "rougeLsum" if lsum else "rougeL"
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", l_type], use_stemmer=True)


def _split_sentences_for_lsum(text: str) -> str:
    """t5's preparation for rougeLsum: a newline after each " . " sentence end."""
    return text.replace(" . ", " .\n")


def rouge(
    targets: Sequence[Reference], predictions: Sequence[str], *, lsum: bool = True
) -> dict[str, float]:
    """ROUGE-1/2/L F-measure (rouge-score, Porter stemming), averaged over examples.

    As in t5, the L score is summary-level ``rougeLsum`` by default, reported
    under the key ``"rougeL"``; pass ``lsum=False`` for plain ``rougeL``. With
    several references, each ROUGE type takes its best reference separately.
    Unlike t5 (bootstrap "mid" estimate), the aggregate is the plain mean, so
    it is deterministic. rouge-score's tokenizer keeps only ``[a-z0-9]`` tokens,
    so non-Latin text scores 0.
    """
    _check_inputs("rouge", targets, predictions)
    scorer = _rouge_scorer(lsum)
    l_type = "rougeLsum" if lsum else "rougeL"
    per_key: dict[str, list[float]] = {key: [] for key in _ROUGE_OUTPUT_KEYS}
    for i, (target, prediction) in enumerate(zip(targets, predictions, strict=True)):
        best = dict.fromkeys(_ROUGE_OUTPUT_KEYS, 0.0)
        pred = _split_sentences_for_lsum(prediction)
        for ref in _as_references("rouge", target, i):
            scores = scorer.score(_split_sentences_for_lsum(ref), pred)
            for key, rouge_type in zip(
                _ROUGE_OUTPUT_KEYS, ("rouge1", "rouge2", l_type), strict=True
            ):
                best[key] = max(best[key], scores[rouge_type].fmeasure)
        for key in _ROUGE_OUTPUT_KEYS:
            per_key[key].append(best[key])
    return {key: _percent_mean(values) for key, values in per_key.items()}


def rouge_l_exact_match(
    targets: Sequence[Reference], predictions: Sequence[str]
) -> dict[str, float]:
    """Super-NaturalInstructions' metrics: plain ROUGE-L F (not Lsum), then exact match.

    Each example takes its best reference for each metric separately (as SuperNI's
    `metric_max_over_ground_truths`); ROUGE-L comes first, the evaluator's headline.
    """
    return {
        "rougeL": rouge(targets, predictions, lsum=False)["rougeL"],
        **exact_match(targets, predictions),
    }


# ---------------------------------------------------------------------------
# GSM8K final-answer accuracy.

# A number: thousands-grouped ("1,234.5"), plain ("1234", "12.50") or ".5";
# a leading "-" counts as a sign only when not preceded by a word character
# or a dot (so "3-5" yields 3 and 5, not 3 and -5).
_NUMBER = r"(?:(?<![\w.])-)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_NUMBER_RE = re.compile(_NUMBER)
_HASHES_RE = re.compile(r"####\s*\$?\s*(" + _NUMBER + ")")
_ANSWER_IS_RE = re.compile(r"answer\s*(?:is|:)[\s:$*]*(" + _NUMBER + ")", re.IGNORECASE)


def extract_final_number(text: str) -> str | None:
    """Extracts the final numeric answer of a GSM8K solution or CoT generation.

    In order of preference: the number after the first ``####``; the number
    after the first "answer is" / "answer:" (case-insensitive); else the last
    number in the text. The first marker wins because generations often run
    on into a new few-shot question after giving their answer. Commas and
    ``$`` are removed, a trailing sentence period is not part of the number:
    ``"So the answer is $1,234."`` gives ``"1234"``. Returns ``None`` if the
    text holds no number. The string is returned as written (``"12.50"``);
    compare values with :func:`numbers_equal`.
    """
    for pattern in (_HASHES_RE, _ANSWER_IS_RE):
        match = pattern.search(text)
        if match:
            return match.group(1).replace(",", "")
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def numbers_equal(a: str, b: str) -> bool:
    """Exact decimal comparison of two number strings ("72.0" equals "72")."""
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


def gsm8k_answer_accuracy(
    targets: Sequence[str | int | float], predictions: Sequence[str]
) -> dict[str, float]:
    """Percentage of predictions whose final number equals the target's.

    A target may be a full GSM8K solution ending in ``#### N``, just ``"N"``,
    or a number. A prediction without any number counts as wrong; a target
    without one raises ``ValueError`` (the data is broken).
    """
    _check_inputs("gsm8k_answer_accuracy", targets, predictions)
    correct: list[float] = []
    for i, (target, prediction) in enumerate(zip(targets, predictions, strict=True)):
        is_number = isinstance(target, int | float)
        gold = str(target) if is_number else extract_final_number(target)
        if gold is None:
            raise ValueError(
                f"gsm8k_answer_accuracy: no number found in target of example {i}: {target!r}"
            )
        guess = extract_final_number(prediction)
        correct.append(float(guess is not None and numbers_equal(guess, gold)))
    return {"gsm8k_accuracy": _percent_mean(correct)}


# ---------------------------------------------------------------------------
# Registry.

METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "exact_match": exact_match,
    "token_f1": token_f1,
    "squad": squad,
    "bleu": bleu,
    "rouge": rouge,
    "rougeL_exact_match": rouge_l_exact_match,
    "gsm8k_answer_accuracy": gsm8k_answer_accuracy,
}
"""Metric functions by name."""


def get_metric(name: str) -> MetricFn:
    """Returns the metric function registered as ``name``."""
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise ValueError(f"Unknown metric {name!r}; known metrics: {known}") from None
