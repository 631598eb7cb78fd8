"""promptsource templates (`templates.yaml`) as flanjax templates.

A promptsource template is Jinja: its `jinja` renders a record into
`inputs ||| targets`, and its optional `answer_choices` (Jinja too) renders
into `choice ||| choice ||| ...`, exposed to the main template as the list
`answer_choices` (so targets read `{{ answer_choices[label] }}`). Records are
Hugging Face records, with the original field names and integer labels:
`hf_record` turns a normalized catalog record back into that shape.

`load_templates(path)` reads one `templates.yaml` into
:class:`PromptsourceTemplate` objects: subclasses of
`flanjax.data.templates.Template` whose `render(record, task)` returns the same
`RenderedExample` (inputs, targets, choices, answer_index), so they go wherever
a flanjax template goes. Rendering follows promptsource's `Template.apply`:

* `|||` inside record values is protected while rendering and restored after;
* each part is stripped of surrounding whitespace;
* every `{{ ... }}` gets `| string | truncate(2048)` (promptsource's
  `TEXT_VAR_LENGTH`) unless `truncate=None`;
* the environment has promptsource's globals (`zip`, `enumerate`) and filters
  (`choice`, `most_frequent`), but is sandboxed (`jinja2.sandbox`).

Two deliberate differences: promptsource's `choice` filter calls
`random.choice`; here it draws from a generator seeded by the record's id (or
its content) and the template id, so a record always renders the same way. And
a template that renders nothing for a record (COPA's effect-only templates on a
"cause" record) raises :class:`NotApplicableError` instead of returning one
empty part; `PromptsourceTemplate.applies_to` checks it beforehand.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox
import yaml

from flanjax.data.templates import RenderedExample, Template, TemplateError

SEPARATOR = "|||"
PIPE_PROTECTOR = "3ed2dface8203c4c9dfb1a5dc58e41e0"  # promptsource's placeholder for "|||"
TEXT_VAR_LENGTH = 2048  # promptsource's default truncation of each {{ ... }}
_GLOBALS = {"zip": zip, "enumerate": enumerate}
# promptsource metric names -> flanjax.evaluation.metrics names.
METRIC_NAMES = {
    "Accuracy": "accuracy",
    "BLEU": "bleu",
    "ROUGE": "rouge",
    "Squad": "squad",
    "Trivia QA": "squad",
    "Edit Distance": "exact_match",
    "Other": "exact_match",
}

_RNG: contextvars.ContextVar[random.Random] = contextvars.ContextVar("promptsource_rng")


class NotApplicableError(TemplateError):
    """The template renders nothing for this record (e.g. a branch it does not cover)."""


def _choice(choices: Sequence[Any]) -> Any:
    """promptsource's `choice` filter, drawing from the current render's generator."""
    rng = _RNG.get(None) or random.Random(0)
    return rng.choice(list(choices))


def _most_frequent(items: Sequence[Any]) -> list[Any] | None:
    """promptsource's `most_frequent` filter: the items of the highest count."""
    if not items:
        return None
    counts = Counter(items).most_common()
    return [item for item, n in counts if n == counts[0][1]]


@functools.cache
def environment() -> jinja2.sandbox.SandboxedEnvironment:
    """The sandboxed Jinja environment, with promptsource's globals and filters."""
    env = jinja2.sandbox.SandboxedEnvironment(loader=jinja2.BaseLoader())
    env.globals.update(_GLOBALS)
    env.filters["choice"] = _choice
    env.filters["most_frequent"] = _most_frequent
    return env


def _protect(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v.replace(SEPARATOR, PIPE_PROTECTOR) if isinstance(v, str) else v
        for k, v in record.items()
    }


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "little")


def _record_key(record: Mapping[str, Any]) -> str:
    if "id" in record:
        return str(record["id"])
    return json.dumps(record, sort_keys=True, default=str)


@dataclasses.dataclass(frozen=True)
class PromptsourceTemplate(Template):
    """One promptsource template; `inputs` holds its whole Jinja source.

    Attributes (beyond Template's; `id` is promptsource's uuid):
      jinja: the template, `inputs ||| targets` once rendered.
      answer_choices_jinja: Jinja rendering to `a ||| b ||| ...`, or None
        (a generation template).
      name: promptsource's name, unique within its dataset.
      dataset: "super_glue/rte" (dataset and subset).
      original_task, choices_in_prompt, metrics, languages, reference: the
        template's metadata, as in the file.
      truncate: characters each `{{ ... }}` is truncated to (None: no limit).
    """

    jinja: str = ""
    answer_choices_jinja: str | None = None
    name: str = ""
    dataset: str = ""
    original_task: bool | None = None
    choices_in_prompt: bool | None = None
    metrics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    reference: str = ""
    truncate: int | None = TEXT_VAR_LENGTH

    @property
    def has_choices(self) -> bool:
        return self.answer_choices_jinja is not None

    @property
    def options_in_prompt(self) -> bool:
        return bool(self.choices_in_prompt)

    def _compiled(self) -> tuple[jinja2.Template, jinja2.Template | None]:
        return _compile(self.jinja, self.answer_choices_jinja, self.truncate)

    def required_fields(self) -> tuple[str, ...]:
        """Top-level record fields the Jinja reads (promptsource's own names excluded)."""
        return _undeclared(self.jinja, self.answer_choices_jinja)

    def check_record(self, record: Mapping[str, Any], task: str) -> None:
        if "answer_choices" in record:
            raise TemplateError(
                f"task {task!r}, template {self.name!r}: the record has the reserved "
                "field 'answer_choices'"
            )
        super().check_record(record, task)

    def answer_choices(self, record: Mapping[str, Any]) -> list[str] | None:
        """The rendered answer choices of `record`, or None for a generation template."""
        _, choices = self._compiled()
        if choices is None:
            return None
        text = choices.render(**_protect(record))
        return [c.strip().replace(PIPE_PROTECTOR, SEPARATOR) for c in text.split(SEPARATOR)]

    def apply(self, record: Mapping[str, Any], task: str = "?") -> list[str]:
        """promptsource's `Template.apply`: the stripped parts split at `|||`."""
        return self._apply(record, task)[0]

    def _apply(self, record: Mapping[str, Any], task: str) -> tuple[list[str], list[str] | None]:
        self.check_record(record, task)
        main, _ = self._compiled()
        values = _protect(record)
        choices = values["answer_choices"] = self.answer_choices(record)
        token = _RNG.set(random.Random(_seed(_record_key(record), self.id)))
        try:
            text = main.render(**values)
        except jinja2.TemplateError as e:
            raise TemplateError(f"task {task!r}, template {self.name!r}: {e!r}") from e
        finally:
            _RNG.reset(token)
        parts = [p.replace(PIPE_PROTECTOR, SEPARATOR).strip() for p in text.split(SEPARATOR)]
        return parts, choices

    def applies_to(self, record: Mapping[str, Any]) -> bool:
        """True if the template renders both an input and a target part for `record`."""
        parts = self.apply(record)
        return len(parts) == 2 and bool(parts[0])

    def render(self, record: Mapping[str, Any], task: str = "?") -> RenderedExample:
        parts, choices = self._apply(record, task)
        if len(parts) != 2 or not parts[0]:
            raise NotApplicableError(
                f"task {task!r}, template {self.name!r}: renders {len(parts)} part(s) "
                f"{[p[:40] for p in parts]} for record {_record_key(record)[:80]!r}, "
                f"expected 'inputs {SEPARATOR} targets'"
            )
        inputs, targets = parts
        options = tuple(choices or ())
        index = options.index(targets) if targets in options else -1
        return RenderedExample(inputs, targets, options, index)


@functools.cache
def _compile(
    jinja: str, answer_choices: str | None, truncate: int | None
) -> tuple[jinja2.Template, jinja2.Template | None]:
    env = environment()
    if truncate is not None:
        jinja = jinja.replace("}}", f" | string | truncate({truncate}) }}}}")
    choices = env.from_string(answer_choices) if answer_choices is not None else None
    return env.from_string(jinja), choices


@functools.cache
def _undeclared(jinja: str, answer_choices: str | None) -> tuple[str, ...]:
    env = environment()
    names: set[str] = set()
    for source in (jinja, answer_choices):
        if source is not None:
            names |= jinja2.meta.find_undeclared_variables(env.parse(source))
    names -= {"answer_choices", *_GLOBALS}
    return tuple(sorted(names))


class _Loader(yaml.SafeLoader):
    """Reads promptsource's `!Template` and `!TemplateMetadata` tags as mappings."""


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor("!Template", _mapping)
_Loader.add_constructor("!TemplateMetadata", _mapping)


def _metric(meta: Mapping[str, Any], has_choices: bool) -> str:
    if has_choices:
        return "accuracy"
    for m in meta.get("metrics") or ():
        if m in METRIC_NAMES:
            return METRIC_NAMES[m]
    return "exact_match"


def _template(entry: Mapping[str, Any], dataset: str, truncate: int | None) -> PromptsourceTemplate:
    meta = entry.get("metadata") or {}
    choices = entry.get("answer_choices")
    jinja = entry["jinja"]
    return PromptsourceTemplate(
        id=str(entry["id"]),
        inputs=jinja,
        targets="",
        metric=_metric(meta, choices is not None),
        jinja=jinja,
        answer_choices_jinja=choices,
        name=str(entry.get("name", entry["id"])),
        dataset=dataset,
        original_task=meta.get("original_task"),
        choices_in_prompt=meta.get("choices_in_prompt"),
        metrics=tuple(meta.get("metrics") or ()),
        languages=tuple(meta.get("languages") or ()),
        reference=str(entry.get("reference") or ""),
        truncate=truncate,
    )


def load_templates(
    path: str | Path, *, truncate: int | None = TEXT_VAR_LENGTH
) -> tuple[PromptsourceTemplate, ...]:
    """The templates of one promptsource `templates.yaml`, in file order.

    Raises TemplateError naming the file for a template that does not parse.
    """
    path = Path(path)
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader
    dataset = "/".join(x for x in (doc.get("dataset"), doc.get("subset")) if x)
    out = []
    for key, entry in (doc.get("templates") or {}).items():
        try:
            t = _template(entry, dataset, truncate)
            t._compiled()
        except (KeyError, jinja2.TemplateSyntaxError) as e:
            raise TemplateError(f"{path}: template {key}: {e!r}") from e
        out.append(t)
    return tuple(out)


def find_template_files(root: str | Path) -> dict[str, Path]:
    """ "dataset/subset" -> templates.yaml for every file under `root`."""
    root = Path(root)
    return {str(p.parent.relative_to(root)): p for p in sorted(root.rglob("templates.yaml"))}


# Catalog dataset -> (promptsource folder, the Hugging Face fields its templates read).
HF_SCHEMAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rte": ("super_glue/rte", ("premise", "hypothesis", "label", "idx")),
    "cb": ("super_glue/cb", ("premise", "hypothesis", "label", "idx")),
    "copa": ("super_glue/copa", ("premise", "choice1", "choice2", "question", "label", "idx")),
    "boolq": ("super_glue/boolq", ("question", "passage", "label", "idx")),
    "wsc": (
        "super_glue/wsc.fixed",
        ("text", "span1_index", "span2_index", "span1_text", "span2_text", "label", "idx"),
    ),
    "multirc": ("super_glue/multirc", ("paragraph", "question", "answer", "label", "idx")),
    "sst2": ("glue/sst2", ("sentence", "label", "idx")),
    "nq_open": ("nq_open", ("question", "answer")),
}
_HF_RENAMES = {"multirc": {"paragraph": "passage"}, "nq_open": {"answer": "answers"}}


def hf_record(dataset: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A normalized catalog record of `dataset` in its Hugging Face shape.

    The label becomes its integer (`label_index`; Hugging Face's class order is
    the catalog's `label_names` order), `idx` the record's position (from its
    id "<name>/<split>/<index>"), renamed fields get their Hugging Face names,
    and fields Hugging Face lacks are dropped; the catalog `id` is kept (flanjax
    pipelines key on it; promptsource templates never read it).
    """
    if dataset not in HF_SCHEMAS:
        raise ValueError(f"no Hugging Face schema for {dataset!r}; known: {sorted(HF_SCHEMAS)}")
    _, fields = HF_SCHEMAS[dataset]
    renames = _HF_RENAMES.get(dataset, {})
    out: dict[str, Any] = {"id": record["id"]} if "id" in record else {}
    for field in fields:
        if field == "label":
            out["label"] = int(record["label_index"])
        elif field == "idx":
            out["idx"] = int(str(record["id"]).rsplit("/", 1)[-1])
        else:
            out[field] = record[renames.get(field, field)]
    return out
