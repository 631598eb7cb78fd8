"""Per-dataset normalizers: raw records -> uniform fields for templates.

Each ``normalize_*`` function takes one raw record, as the local reader yields
it or as TFDS / Hugging Face ``datasets`` give it (after the catalog renamed
the remote fields and turned class-label integers into their names), and
returns a new dict with the documented fields below. A bad record raises
:class:`RecordError` naming the field; the catalog adds file and line.

Conventions, common to all datasets:

* ``label`` is always a string, one of the spec's ``label_names``, and
  ``label_index`` its position there (an ``int``). Datasets whose choices
  differ per example (COPA) have ``choices``, ``label_index`` and ``answer``.
* Texts are kept as in the source (SST-2 stays lower-cased and tokenized, AG
  News keeps its ``\\`` line breaks and ``#36;`` escapes).

Fields per dataset (the catalog adds ``id`` to every record):

=============  ==============================================================
rte, cb        premise, hypothesis, label, label_index
copa           premise, choice1, choice2, choices, question ("cause" /
               "effect"), label_index, answer (text of the right choice)
wsc            text, span1_text, span1_index, span2_text, span2_index, label
               ("false"/"true"), label_index
boolq          passage, question, answer ("yes"/"no"), label (= answer),
               label_index
multirc        passage, question, answer (the candidate answer's text), label
               ("false"/"true": is the candidate right), label_index,
               group_id ("p<paragraph>-q<question>", for per-question metrics)
sst2           sentence, label ("negative"/"positive"), label_index
trec           question, label (readable coarse class: "description", ...),
               label_index, coarse_label ("DESC"), fine_label ("manner")
agnews         title, text, label (World/Sports/Business/Sci/Tech), label_index
nq_open        question, answers (list), answer (= answers[0])
e2e            meaning_representation, attributes ({name: value}, in order),
               references (list of texts)
gsm8k          question, solution (worked text, ``<<...>>`` calculator
               annotations kept), answer (the number after ``####``, without
               thousands separators: "1,080" -> "1080")
cot_*          question, answer, rationale (FLAN's literal ``\\n`` turned into
               newlines in question and rationale, as FLAN's simple_cot_tsv)
self_instruct  task, task_id, instruction, input, output, is_classification
=============  ==============================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from flanjax.data.readers import DataFileError

Record = dict[str, Any]
Where = Callable[[Any], str]  # position -> "file:line" (or remote example)


class RecordError(ValueError):
    """A record whose field is missing or holds an unexpected value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {field!r}: {problem}")
        self.field = field
        self.problem = problem


# Label names, in the order label_index counts them.
ENTAILMENT_2 = ("entailment", "not_entailment")
ENTAILMENT_3 = ("entailment", "contradiction", "neutral")
FALSE_TRUE = ("false", "true")
NO_YES = ("no", "yes")
SENTIMENT = ("negative", "positive")
TREC_COARSE = {
    "DESC": "description",
    "ENTY": "entity",
    "ABBR": "abbreviation",
    "HUM": "human",
    "LOC": "location",
    "NUM": "numeric",
}
TREC_LABELS = tuple(TREC_COARSE.values())
# classes.txt says "1-World, 2-Sports, 3-Business, 4-Science/Tech"; the last is
# written "Sci/Tech" as TFDS and Hugging Face name it, so labels agree.
AGNEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")

# Spellings of the same class that sources use (local file, TFDS, HF).
_BOOL_SPELLINGS = {"false": 0, "true": 1, "False": 0, "True": 1, "0": 0, "1": 1}


def _get(record: Mapping[str, Any], field: str) -> Any:
    if field not in record:
        raise RecordError(field, f"missing (the record has {sorted(record)})")
    return record[field]


def _text(record: Mapping[str, Any], field: str, *, allow_empty: bool = False) -> str:
    value = _get(record, field)
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {type(value).__name__} {value!r}")
    if not allow_empty and not value.strip():
        raise RecordError(field, "empty text")
    return value


def _int(record: Mapping[str, Any], field: str) -> int:
    value = _get(record, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(field, f"expected an integer, got {type(value).__name__} {value!r}")
    return value


def _index(
    record: Mapping[str, Any],
    field: str,
    names: Sequence[str],
    spellings: Mapping[str, int] | None = None,
) -> int:
    """The class index of ``record[field]``, given as name, int, bool or spelling."""
    value = _get(record, field)
    if isinstance(value, bool):
        index = int(value)
    elif isinstance(value, int):
        index = value
    elif isinstance(value, str) and value in names:
        return names.index(value)
    elif isinstance(value, str) and spellings and value in spellings:
        index = spellings[value]
    else:
        raise RecordError(field, f"{value!r} is not one of {', '.join(names)}")
    if not 0 <= index < len(names):
        raise RecordError(field, f"class index {index} is out of range 0..{len(names) - 1}")
    return index


def _labeled(index: int, names: Sequence[str]) -> Record:
    return {"label": names[index], "label_index": index}


def normalize_entailment(record: Record, names: Sequence[str]) -> Record:
    """RTE and CB: premise, hypothesis, label, label_index."""
    return {
        "premise": _text(record, "premise"),
        "hypothesis": _text(record, "hypothesis"),
        **_labeled(_index(record, "label", names), names),
    }


def normalize_rte(record: Record) -> Record:
    return normalize_entailment(record, ENTAILMENT_2)


def normalize_cb(record: Record) -> Record:
    return normalize_entailment(record, ENTAILMENT_3)


def normalize_copa(record: Record) -> Record:
    """COPA: the label (0/1, or TFDS's "choice1"/"choice2") indexes choices."""
    choices = [_text(record, "choice1"), _text(record, "choice2")]
    index = _index(record, "label", ("choice1", "choice2"))
    question = _text(record, "question")
    if question not in ("cause", "effect"):
        raise RecordError("question", f"expected 'cause' or 'effect', got {question!r}")
    return {
        "premise": _text(record, "premise"),
        "choice1": choices[0],
        "choice2": choices[1],
        "choices": choices,
        "question": question,
        "label_index": index,
        "answer": choices[index],
    }


def normalize_wsc(record: Record) -> Record:
    """WSC: spans are under ``target`` locally, top-level in TFDS/HF."""
    target = record.get("target", record)
    if not isinstance(target, Mapping):
        raise RecordError("target", f"expected an object, got {type(target).__name__}")
    return {
        "text": _text(record, "text"),
        "span1_text": _text(target, "span1_text"),
        "span1_index": _int(target, "span1_index"),
        "span2_text": _text(target, "span2_text"),
        "span2_index": _int(target, "span2_index"),
        **_labeled(_index(record, "label", FALSE_TRUE, _BOOL_SPELLINGS), FALSE_TRUE),
    }


def normalize_boolq(record: Record) -> Record:
    index = _index(record, "label", NO_YES, _BOOL_SPELLINGS)
    return {
        "passage": _text(record, "passage"),
        "question": _text(record, "question"),
        "answer": NO_YES[index],
        **_labeled(index, NO_YES),
    }


def explode_multirc(record: Record) -> Iterator[Record]:
    """One SuperGLUE MultiRC passage -> flat rows shaped as TFDS gives them.

    Each row: ``paragraph`` (text), ``question``, ``answer`` (text), ``label``
    and ``idx = {"paragraph", "question", "answer"}``.
    """
    passage = _get(record, "passage")
    if not isinstance(passage, Mapping):
        raise RecordError("passage", f"expected an object, got {type(passage).__name__}")
    paragraph = _text(passage, "text")
    questions = _get(passage, "questions")
    if not isinstance(questions, list) or not questions:
        raise RecordError("passage.questions", "expected a non-empty list")
    for question in questions:
        answers = _get(question, "answers")
        if not isinstance(answers, list) or not answers:
            raise RecordError("passage.questions[].answers", "expected a non-empty list")
        for answer in answers:
            idx = {"paragraph": _int(record, "idx"), "question": _int(question, "idx")}
            yield {
                "paragraph": paragraph,
                "question": _text(question, "question"),
                "answer": _text(answer, "text"),
                "label": _get(answer, "label"),
                "idx": {**idx, "answer": _int(answer, "idx")},
            }


def normalize_multirc(record: Record) -> Record:
    idx = _get(record, "idx")
    if not isinstance(idx, Mapping):
        raise RecordError("idx", f"expected an object, got {type(idx).__name__}")
    group = f"p{_int(idx, 'paragraph')}-q{_int(idx, 'question')}"
    return {
        "passage": _text(record, "paragraph"),
        "question": _text(record, "question"),
        "answer": _text(record, "answer"),
        **_labeled(_index(record, "label", FALSE_TRUE, _BOOL_SPELLINGS), FALSE_TRUE),
        "group_id": group,
    }


def normalize_sst2(record: Record) -> Record:
    """SST-2: local ``{label: "0"/"1", text}``; remote ``sentence`` -> ``text``."""
    index = _index(record, "label", SENTIMENT, {"0": 0, "1": 1})
    return {"sentence": _text(record, "text"), **_labeled(index, SENTIMENT)}


def normalize_trec(record: Record) -> Record:
    """TREC: local ``label`` is "COARSE:fine"; remote has the two apart.

    TFDS names fine classes "manner", Hugging Face "DESC:manner": both work.
    """
    if "label" in record:
        coarse, _, fine = _text(record, "label").partition(":")
    else:
        coarse = _text(record, "coarse_label")
        fine = _text(record, "fine_label").rpartition(":")[2]
    if coarse not in TREC_COARSE:
        raise RecordError("label", f"unknown coarse class {coarse!r} (known: {list(TREC_COARSE)})")
    if not fine:
        raise RecordError("label", f"no fine class after {coarse!r}")
    name = TREC_COARSE[coarse]
    return {
        "question": _text(record, "text"),
        **_labeled(TREC_LABELS.index(name), TREC_LABELS),
        "coarse_label": coarse,
        "fine_label": fine,
    }


def normalize_agnews(record: Record) -> Record:
    """AG News: the local CSV's class is 1-based text ("1".."4"), remote a name."""
    one_based = {str(i + 1): i for i in range(len(AGNEWS_LABELS))}
    index = _index(record, "label", AGNEWS_LABELS, one_based)
    return {
        "title": _text(record, "title", allow_empty=True),
        "text": _text(record, "description"),
        **_labeled(index, AGNEWS_LABELS),
    }


def normalize_nq_open(record: Record) -> Record:
    answers = _get(record, "answer")
    if not isinstance(answers, list) or not answers:
        raise RecordError("answer", f"expected a non-empty list of strings, got {answers!r}")
    if not all(isinstance(a, str) for a in answers):
        raise RecordError("answer", f"expected strings, got {answers!r}")
    return {
        "question": _text(record, "question"),
        "answers": list(answers),
        "answer": answers[0],
    }


_MR_ATTRIBUTE = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


def parse_meaning_representation(mr: str) -> dict[str, str]:
    """``"name[Alimentum], area[city centre]"`` -> ``{"name": "Alimentum", ...}``."""
    attributes: dict[str, str] = {}
    position = 0
    while position < len(mr):
        match = _MR_ATTRIBUTE.match(mr, position)
        if match is None or match.end() == position:
            raise RecordError("mr", f"cannot parse {mr[position:]!r} in {mr!r}")
        name, value = match.groups()
        if name in attributes:
            raise RecordError("mr", f"attribute {name!r} appears twice in {mr!r}")
        attributes[name] = value
        position = match.end()
    if not attributes:
        raise RecordError("mr", "no attributes")
    return attributes


def normalize_e2e(record: Record) -> Record:
    """E2E: one record per meaning representation, from its grouped rows."""
    mr = _text(record, "mr")
    rows = _get(record, "rows")
    return {
        "meaning_representation": mr,
        "attributes": parse_meaning_representation(mr),
        "references": [_text(row, "ref") for row in rows],
    }


def normalize_gsm8k(record: Record) -> Record:
    solution = _text(record, "answer")
    _, marker, final = solution.rpartition("####")
    answer = final.strip().replace(",", "")
    if not marker or not re.fullmatch(r"-?\d+(\.\d+)?", answer):
        raise RecordError("answer", f"no final '#### NUMBER' line in {solution[-80:]!r}")
    return {
        "question": _text(record, "question"),
        "solution": solution,
        "answer": answer,
    }


def normalize_cot(record: Record) -> Record:
    """FLAN CoT tsv: ``\\n`` (two characters) becomes a newline, as in FLAN."""
    return {
        "question": _text(record, "question").replace("\\n", "\n"),
        "answer": _text(record, "answer"),
        "rationale": _text(record, "rationale").replace("\\n", "\n"),
    }


def explode_self_instruct(record: Record) -> Iterator[Record]:
    """One seed task -> one row per instance, with the task's fields."""
    instances = _get(record, "instances")
    if not isinstance(instances, list) or not instances:
        raise RecordError("instances", "expected a non-empty list")
    for instance in instances:
        if not isinstance(instance, Mapping):
            raise RecordError("instances[]", f"expected an object, got {instance!r}")
        task = {k: v for k, v in record.items() if k != "instances"}
        yield {
            **task,
            "input": _get(instance, "input"),
            "output": _get(instance, "output"),
        }


def normalize_self_instruct(record: Record) -> Record:
    is_classification = _get(record, "is_classification")
    if not isinstance(is_classification, bool):
        raise RecordError("is_classification", f"expected a bool, got {is_classification!r}")
    return {
        "task": _text(record, "name"),
        "task_id": _text(record, "id"),
        "instruction": _text(record, "instruction"),
        "input": _text(record, "input", allow_empty=True),
        "output": _text(record, "output"),
        "is_classification": is_classification,
    }


# ------------------------------------------------- record shaping and remote


def group_consecutive(
    key: str, rows: Iterable[tuple[Any, Record]], where: Where
) -> Iterator[tuple[Any, Record]]:
    """Merges consecutive ``(position, row)`` pairs that share ``row[key]``.

    Yields ``(first position, {key: value, "rows": [row, ...]})``. Streams: a
    key that comes back after another key raises DataFileError (the file is
    not grouped), with ``where(position)`` naming the place.
    """
    first_seen: dict[Any, Any] = {}
    current: Record | None = None
    start: Any = None
    for position, row in rows:
        if key not in row:
            raise DataFileError(f"{where(position)}: field {key!r}: missing")
        value = row[key]
        if current is not None and value == current[key]:
            current["rows"].append(row)
            continue
        if current is not None:
            yield start, current
        if value in first_seen:
            raise DataFileError(
                f"{where(position)}: field {key!r}: rows for {value!r} are not "
                f"consecutive (first group starts at {where(first_seen[value])})"
            )
        first_seen[value] = position
        current, start = {key: value, "rows": [row]}, position
    if current is not None:
        yield start, current


def plain_value(value: Any) -> Any:
    """numpy / bytes values (as TFDS gives them) -> plain Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, Mapping):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(item) for item in value]
    if hasattr(value, "tolist"):
        return plain_value(value.tolist())
    return value


def class_labels_to_names(row: Record, class_labels: Mapping[str, Any]) -> Record:
    """Class-label integers -> names (-1, a hidden label, -> None)."""
    for key, feature in class_labels.items():
        if isinstance(row.get(key), int):
            row[key] = feature.int2str(row[key]) if row[key] >= 0 else None
    return row
