"""Shared pieces of the FLAN-style templates: constructors and the per-dataset bundle.

Each `flan_templates_<cluster>.py` module defines, per catalog dataset, a
`DatasetTemplates`: its templates plus a `prepare` function that adds derived,
template-friendly fields to a normalized record (a capitalized question with
its question mark, a choice list parsed out of a question, a phrase for a
label). `prepare` never removes or changes the catalog's own fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flanjax.data.templates import Template

Record = dict[str, Any]
COT_TARGET = "{rationale} So the answer is {answer}."


def _identity(record: Mapping[str, Any]) -> Record:
    return dict(record)


@dataclasses.dataclass(frozen=True)
class DatasetTemplates:
    """The templates of one dataset and the derived fields they read."""

    templates: tuple[Template, ...]
    prepare: Callable[[Mapping[str, Any]], Record] = _identity
    metric: str = "exact_match"  # the task's metric (generation templates)

    def select(self, *, cot: bool = True) -> tuple[Template, ...]:
        """The templates, without the chain-of-thought ones when `cot` is False."""
        return tuple(t for t in self.templates if cot or not t.is_cot)


def choice(
    tid: str,
    inputs: str,
    choices: Sequence[str] = (),
    *,
    field: str | None = None,
    answer: str = "label_index",
    targets: str = "{answer}",
) -> Template:
    """A rank-classification template: literal `choices` or the record's `field`."""
    return Template(
        tid,
        inputs,
        targets,
        choices_field=field,
        choices=tuple(choices),
        answer_field=answer,
        metric="accuracy",
    )


def gen(tid: str, inputs: str, targets: str, metric: str, *, inverted: bool = False) -> Template:
    """A generation template scored by `metric` (a key of evaluation.metrics.METRICS)."""
    return Template(tid, inputs, targets, metric=metric, inverted=inverted)


def inv(tid: str, inputs: str, targets: str, metric: str = "rouge") -> Template:
    """An inverted generation template (e.g. the answer given, write the question)."""
    return gen(tid, inputs, targets, metric, inverted=True)


def cot(tid: str, inputs: str, metric: str, targets: str = COT_TARGET) -> Template:
    """A chain-of-thought template: the rationale comes before the answer."""
    return Template(tid, inputs, targets, metric=metric, kind="cot")


def as_question(text: str) -> str:
    """ "when was it" -> "When was it?" (a question mark only if there is none)."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith("?") else text + "?"


def lower_first(text: str) -> str:
    """Lower-cases the first letter, unless the first word looks like a name ("I", "NASA")."""
    first = text.split(" ", 1)[0]
    if first == "I" or (len(first) > 1 and first[:2].isupper()):
        return text
    return text[:1].lower() + text[1:]
