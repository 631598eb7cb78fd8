"""Super-NaturalInstructions (NIv2) task files: reading, checking and SuperNI's encodings.

A task file (github allenai/natural-instructions, `tasks/<name>.json`) holds one
task: its `Definition`, `Positive Examples` and `Negative Examples` (each an
input, an output and an explanation), `Instances` (each an id, an input and one
or more acceptable outputs), and metadata (`Categories`, `Domains`, `Source`,
`Reasoning`, `Input_language`, `Output_language`, `Instruction_language`).
`read_task` checks every field it uses and raises :class:`NIv2Error` naming the
file and the field (and the instance) on anything malformed.

Only a capped sample of the instances is kept (`max_instances`; SuperNI trains
on 100 per task and evaluates on at most 100 per test task): a seeded choice,
the same on every machine, in file order. The rest of the file is dropped as
soon as it is parsed.

Encodings (SuperNI paper, section 6: what of the task's instructions the model
sees) are :class:`Encoding` knobs: the definition or not, the first k positive
examples, the first k negative examples, and whether examples carry their
explanations. `ENCODINGS` names the paper's settings; `render_prompt` writes one
in flanjax's own wording and `encoding_template` makes it a `Template` of that
task (the task's text is literal in the pattern, `{input}` is the instance).

Outputs: training targets the instance's first output (`output`); `references`
holds all of them, and the evaluator scores a generation against the best one
(`Template.references_field`). Never imports model code.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flanjax.data.readers import DataFileError
from flanjax.data.templates import Template

METRIC = "rougeL_exact_match"  # flanjax.evaluation.metrics: ROUGE-L first, exact match beside
DEFAULT_MAX_INSTANCES = 100  # SuperNI: 100 instances per training task, <= 100 per test task
SPLIT_FILES = {"train": "train_tasks.txt", "test": "test_tasks.txt"}
_LIST_FIELDS = ("Categories", "Domains", "Source", "Reasoning")
_LANGUAGE_FIELDS = ("Input_language", "Output_language", "Instruction_language")


class NIv2Error(DataFileError):
    """A malformed NIv2 task file; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Example:
    """A positive or negative example of the task definition."""

    input: str
    output: str
    explanation: str


@dataclasses.dataclass(frozen=True)
class Instance:
    id: str
    input: str
    outputs: tuple[str, ...]  # every acceptable output, at least one


@dataclasses.dataclass(frozen=True)
class NIv2Task:
    """One task file's content, with a capped sample of its instances.

    Attributes:
      name: the file name without ".json" (as in the split files).
      num_instances: instances in the file; `instances` holds the kept sample.
      metadata: Categories, Domains, Source, Reasoning and the three
        languages, each a tuple of strings (empty when the file lacks it).
    """

    name: str
    path: str
    definition: str
    positive: tuple[Example, ...]
    negative: tuple[Example, ...]
    instances: tuple[Instance, ...]
    num_instances: int
    metadata: Mapping[str, tuple[str, ...]]

    @property
    def categories(self) -> tuple[str, ...]:
        return self.metadata["Categories"]

    @property
    def category(self) -> str:
        """The first category, as a cluster name: "Question Rewriting" -> "question_rewriting"."""
        return category_slug(self.categories[0])


def category_slug(category: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", category.lower()).strip("_")
    return slug or "uncategorized"


# --- Reading --------------------------------------------------------------------------


def _fail(path: Path, where: str, problem: str) -> NIv2Error:
    return NIv2Error(f"{path}: {where}: {problem}")


def _text(path: Path, where: str, value: Any) -> str:
    """A string field, or a list of strings (joined by newlines, as Definition is stored)."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = "\n".join(value)
    if not isinstance(value, str):
        raise _fail(path, where, f"expected a string, got {type(value).__name__} {value!r:.80}")
    return value.strip()


def _strings(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, where, f"expected a list of strings, got {value!r:.80}")
    return tuple(value)


def _field(path: Path, data: Mapping[str, Any], name: str) -> Any:
    if name not in data:
        raise _fail(path, f"field {name!r}", "missing (an NIv2 task file has Definition, "
                    "Positive Examples, Negative Examples, Instances and Categories)")  # fmt: skip
    return data[name]


def _examples(path: Path, data: Mapping[str, Any], name: str) -> tuple[Example, ...]:
    items = _field(path, data, name)
    if not isinstance(items, list):
        raise _fail(path, f"field {name!r}", f"expected a list, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise _fail(path, where, f"expected an object, got {type(item).__name__}")
        for key in ("input", "output"):
            if key not in item:
                raise _fail(path, f"{where}.{key}", "missing")
        out.append(
            Example(
                _text(path, f"{where}.input", item["input"]),
                _text(path, f"{where}.output", item["output"]),
                _text(path, f"{where}.explanation", item.get("explanation", "")),
            )
        )
    return tuple(out)


def _instance(path: Path, i: int, item: Any) -> Instance:
    where = f"Instances[{i}]"
    if not isinstance(item, dict):
        raise _fail(path, where, f"expected an object, got {type(item).__name__}")
    for key in ("id", "input", "output"):
        if key not in item:
            raise _fail(path, f"{where}.{key}", f"missing (instance id {item.get('id', '?')!r})")
    outputs = _strings(path, f"{where}.output", item["output"])
    if not outputs:
        raise _fail(path, f"{where}.output", f"no outputs (instance id {item['id']!r})")
    return Instance(
        _text(path, f"{where}.id", item["id"]),
        _text(path, f"{where}.input", item["input"]),
        tuple(o.strip() for o in outputs),
    )


def sample_indices(n: int, cap: int | None, seed: int, name: str) -> list[int]:
    """`cap` of range(n) (all if n <= cap or cap is None), seeded by (seed, name), sorted."""
    if cap is None or n <= cap:
        return list(range(n))
    return sorted(random.Random(f"{seed}:{name}").sample(range(n), cap))


def read_task(
    path: str | Path, max_instances: int | None = DEFAULT_MAX_INSTANCES, seed: int = 0
) -> NIv2Task:
    """Reads and checks one task file, keeping `max_instances` instances (None: all).

    Every kept instance is checked, and every instance has an output list;
    raises NIv2Error naming the file and the field on anything malformed.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise NIv2Error(f"{path}: not valid JSON: line {e.lineno} column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise NIv2Error(f"{path}: not UTF-8 text: {e}") from e
    if not isinstance(data, dict):
        raise NIv2Error(f"{path}: expected a JSON object, got {type(data).__name__}")
    definition = _text(path, "field 'Definition'", _field(path, data, "Definition"))
    raw = _field(path, data, "Instances")
    if not isinstance(raw, list) or not raw:
        raise _fail(path, "field 'Instances'", f"expected a non-empty list, got {raw!r:.80}")
    for i, item in enumerate(raw):  # cheap: every instance must have an output
        if not isinstance(item, dict) or not item.get("output"):
            raise _fail(path, f"Instances[{i}].output", "missing or empty")
    keep = sample_indices(len(raw), max_instances, seed, path.stem)
    metadata = {f: _strings(path, f"field {f!r}", data.get(f, [])) for f in _LIST_FIELDS}
    metadata |= {f: _strings(path, f"field {f!r}", data.get(f, [])) for f in _LANGUAGE_FIELDS}
    if not metadata["Categories"]:
        raise _fail(path, "field 'Categories'", "missing or empty")
    return NIv2Task(
        name=path.stem,
        path=str(path),
        definition=definition,
        positive=_examples(path, data, "Positive Examples"),
        negative=_examples(path, data, "Negative Examples"),
        instances=tuple(_instance(path, i, raw[i]) for i in keep),
        num_instances=len(raw),
        metadata=metadata,
    )


def read_split(splits_dir: str | Path, split: str) -> tuple[str, ...]:
    """Task names of an official split file (`train_tasks.txt` / `test_tasks.txt`)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"NIv2 split {split!r}: use one of {list(SPLIT_FILES)}")
    path = Path(splits_dir) / SPLIT_FILES[split]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"NIv2 split file {path} not found") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise NIv2Error(f"{path}: no task names")
    return names


def find_task_files(dirs: Iterable[str | Path], names: Iterable[str]) -> dict[str, Path]:
    """name -> the first `<dir>/<name>.json` found; names found nowhere are left out."""
    dirs = [Path(d) for d in dirs]
    found = {}
    for name in names:
        for d in dirs:
            if (d / f"{name}.json").is_file():
                found[name] = d / f"{name}.json"
                break
    return found


def records(task: NIv2Task) -> tuple[dict[str, Any], ...]:
    """The kept instances as template records: id, input, output (the first reference, the
    training target) and references (every output, for scoring)."""
    return tuple(
        {"id": x.id, "input": x.input, "output": x.outputs[0], "references": list(x.outputs)}
        for x in task.instances
    )


# --- Encodings ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Encoding:
    """What of a task's instructions precedes each instance (SuperNI's encodings).

    Attributes:
      name: the template id ("def_pos2").
      definition: show the task definition.
      num_positive: the first k positive examples (fewer if the task has fewer).
      num_negative: the first k negative examples.
      explanations: examples carry their explanations.
    """

    name: str
    definition: bool = True
    num_positive: int = 0
    num_negative: int = 0
    explanations: bool = False

    def __post_init__(self) -> None:
        if self.num_positive < 0 or self.num_negative < 0:
            raise ValueError(f"encoding {self.name!r}: example counts must be >= 0")


ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        Encoding("instance_only", definition=False),
        Encoding("def"),
        Encoding("pos2", definition=False, num_positive=2),
        Encoding("def_pos1", num_positive=1),
        Encoding("def_pos2", num_positive=2),
        Encoding("def_pos2_neg2", num_positive=2, num_negative=2),
        Encoding("def_pos2_neg2_expl", num_positive=2, num_negative=2, explanations=True),
    )
}
DEFAULT_ENCODINGS = ("def_pos2",)  # Tk-Instruct's training and evaluation setting


def get_encoding(name: str) -> Encoding:
    if name not in ENCODINGS:
        raise ValueError(f"unknown NIv2 encoding {name!r}; known: {', '.join(ENCODINGS)}")
    return ENCODINGS[name]


def _example_block(title: str, ex: Example, explanation_label: str | None) -> str:
    lines = [title, f"Input: {ex.input}", f"Output: {ex.output}"]
    if explanation_label and ex.explanation:
        lines.append(f"{explanation_label}: {ex.explanation}")
    return "\n".join(lines)


def instruction_text(task: NIv2Task, encoding: Encoding) -> str:
    """Everything the encoding shows before the instance ("" for instance_only)."""
    blocks = [f"Task: {task.definition}"] if encoding.definition else []
    why = "Why" if encoding.explanations else None
    for i, ex in enumerate(task.positive[: encoding.num_positive], 1):
        blocks.append(_example_block(f"Solved example {i}:", ex, why))
    why_not = "Why it is wrong" if encoding.explanations else None
    for i, ex in enumerate(task.negative[: encoding.num_negative], 1):
        blocks.append(_example_block(f"Wrong example {i} (do not answer like this):", ex, why_not))
    return "\n\n".join(blocks)


def render_prompt(task: NIv2Task, encoding: Encoding, instance_input: str) -> str:
    """The model input for one instance under `encoding`."""
    head = instruction_text(task, encoding)
    query = f"Input: {instance_input}\nOutput:"
    return f"{head}\n\nNow this one.\n{query}" if head else query


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def encoding_template(task: NIv2Task, encoding: Encoding) -> Template:
    """`encoding` of `task` as a Template over `records(task)` (id = the encoding's name)."""
    marker = "\x00INPUT\x00"
    pattern = _escape(render_prompt(task, encoding, marker)).replace(marker, "{input}")
    return Template(
        id=encoding.name,
        inputs=pattern,
        targets="{output}",
        metric=METRIC,
        kind="few_shot" if encoding.num_positive and task.positive else "zero_shot",
        references_field="references",
    )


def task_templates(task: NIv2Task, encodings: Sequence[str]) -> tuple[Template, ...]:
    if not encodings:
        raise ValueError("NIv2: no encodings chosen")
    return tuple(encoding_template(task, get_encoding(e)) for e in dict.fromkeys(encodings))
