"""Natural-language templates that turn a dataset record into (inputs, targets).

A template's `inputs` and `targets` are patterns with `{field}` placeholders
filled from the record (Python `str.format` syntax, so `{{` is a literal brace).
Two placeholders are reserved:

* `{options}`: the answer choices, rendered in one of `OPTION_STYLES`. The style
  is drawn from a generator seeded by the record id, so a given example always
  renders the same way while the dataset as a whole sees every style.
* `{answer}`: the text of the correct choice (for templates with choices).

Templates with answer choices (`choices_field` or `choices`) can be scored by
rank classification: every choice is scored as a target and the most likely one
is the prediction. `options_in_prompt` records whether the choices appear in the
inputs (FLAN's "with options" format) or only in scoring.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import string
from collections.abc import Mapping, Sequence
from typing import Any

OPTION_STYLES: tuple[str, ...] = ("dash_list", "inline", "lettered")
_RESERVED = ("options", "answer")
# Template kinds: the prompt format (zero- or few-shot) and whether the target
# reasons before answering (chain of thought). See flanjax.data.few_shot.
KINDS: tuple[str, ...] = ("zero_shot", "few_shot", "cot", "few_shot_cot")


class TemplateError(ValueError):
    """A template cannot render a record; the message names task, template and field."""


@dataclasses.dataclass(frozen=True)
class RenderedExample:
    """One record seen through one template."""

    inputs: str
    targets: str
    choices: tuple[str, ...] = ()  # empty for generation templates
    answer_index: int = -1  # index of `targets` in `choices`, -1 without choices
    references: tuple[str, ...] = ()  # every acceptable target (scoring); () : just `targets`


@dataclasses.dataclass(frozen=True)
class Template:
    """A natural-language template.

    Attributes:
      id: unique within its task, e.g. "t0".
      inputs: pattern for the model input.
      targets: pattern for the expected output.
      choices_field: record field holding the answer choices (list of str).
      choices: literal answer choices, when they do not depend on the record.
      answer_field: record field holding the correct choice's text or index;
        defaults to "answer".
      metric: the metric this template's predictions are scored with.
      kind: one of KINDS: "zero_shot", "few_shot" (exemplars before the
        query), "cot" (chain of thought: the target gives a rationale before
        the answer) or "few_shot_cot".
      inverted: the template turns the task around (e.g. answer -> question).
      references_field: record field holding every acceptable target (list of
        str); a generation is scored against the best of them (`targets` is
        the one trained on).
    """

    id: str
    inputs: str
    targets: str
    choices_field: str | None = None
    choices: tuple[str, ...] = ()
    answer_field: str = "answer"
    metric: str = "exact_match"
    kind: str = "zero_shot"
    inverted: bool = False
    references_field: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"template {self.id!r}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def is_cot(self) -> bool:
        """The target reasons before it answers (kind "cot" or "few_shot_cot")."""
        return self.kind in ("cot", "few_shot_cot")

    @property
    def is_few_shot(self) -> bool:
        return self.kind in ("few_shot", "few_shot_cot")

    @property
    def has_choices(self) -> bool:
        return bool(self.choices_field or self.choices)

    @property
    def options_in_prompt(self) -> bool:
        return "options" in self.fields(self.inputs)

    @staticmethod
    def fields(pattern: str) -> tuple[str, ...]:
        """The placeholder names used in `pattern`, in order."""
        names = [name for _, name, _, _ in string.Formatter().parse(pattern) if name]
        return tuple(dict.fromkeys(names))

    def required_fields(self) -> tuple[str, ...]:
        """Record fields this template reads (reserved placeholders excluded)."""
        names = list(self.fields(self.inputs) + self.fields(self.targets))
        reserved = _RESERVED if self.has_choices else ()
        names = [n for n in names if n not in reserved]
        if self.choices_field:
            names.append(self.choices_field)
        if self.has_choices and "answer" in self.fields(self.inputs + self.targets):
            names.append(self.answer_field)
        if self.references_field:
            names.append(self.references_field)
        return tuple(dict.fromkeys(names))

    def check_record(self, record: Mapping[str, Any], task: str) -> None:
        """Raises TemplateError if `record` lacks a field this template needs."""
        for name in self.required_fields():
            if name not in record:
                raise TemplateError(
                    f"task {task!r}, template {self.id!r}: the record has no field "
                    f"{name!r} (its fields: {', '.join(sorted(record))})"
                )

    def render(self, record: Mapping[str, Any], task: str = "?") -> RenderedExample:
        """Renders `record`; deterministic given the record's `id` field."""
        self.check_record(record, task)
        values = dict(record)
        choices: tuple[str, ...] = ()
        index = -1
        if self.has_choices:
            choices = tuple(record[self.choices_field]) if self.choices_field else self.choices
            index = _answer_index(record, self.answer_field, choices, task, self.id)
            values["answer"] = choices[index]
            rng = random.Random(_seed(str(record.get("id", "")), self.id))
            values["options"] = format_options(choices, OPTION_STYLES[rng.randrange(3)])
        try:
            inputs = self.inputs.format(**values)
            targets = self.targets.format(**values)
        except (KeyError, IndexError, ValueError) as e:
            raise TemplateError(f"task {task!r}, template {self.id!r}: {e!r}") from e
        if choices and targets not in choices:
            raise TemplateError(
                f"task {task!r}, template {self.id!r}: the target {targets!r} is not "
                f"one of the answer choices {list(choices)}"
            )
        index = choices.index(targets) if choices else -1
        refs = tuple(record[self.references_field]) if self.references_field else ()
        return RenderedExample(inputs, targets, choices, index, refs)


def _answer_index(
    record: Mapping[str, Any], field: str, choices: Sequence[str], task: str, tid: str
) -> int:
    if field not in record:
        raise TemplateError(f"task {task!r}, template {tid!r}: the record has no field {field!r}")
    answer = record[field]
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(choices):
            return answer
    elif answer in choices:
        return list(choices).index(answer)
    raise TemplateError(
        f"task {task!r}, template {tid!r}: the label {answer!r} in field {field!r} is "
        f"not among the answer choices {list(choices)}"
    )


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "little")


def format_options(choices: Sequence[str], style: str) -> str:
    """Renders answer choices in one of OPTION_STYLES."""
    if style == "dash_list":
        return "OPTIONS:\n" + "\n".join(f"- {c}" for c in choices)
    if style == "inline":
        return "Options: " + ", ".join(choices)
    if style == "lettered":
        return " ".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))
    raise ValueError(f"unknown option style {style!r}; known: {OPTION_STYLES}")


def pick_template(templates: Sequence[Template], record_id: str, seed: int) -> Template:
    """The template a training example is rendered with: uniform, deterministic."""
    return templates[_seed(record_id, str(seed)) % len(templates)]
