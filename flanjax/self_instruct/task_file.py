"""The Self-Instruct task file, and registering it as a flanjax task.

Format: JSON lines, one generated task per line (the paper's released layout plus
bookkeeping), for example

    {"id": "si_00003", "instruction": "Name the capital of the given country.",
     "is_classification": false,
     "instances": [{"input": "Peru", "output": "Lima"}],
     "round": 1, "proposal": 7}

`id` is unique; `instruction` is a non-empty string; `is_classification` a bool;
`instances` a non-empty list of objects with string `input` (possibly empty) and
non-empty string `output`. `round` and `proposal` say where the pipeline made it.

`register_self_instruct_task(path, name=...)` registers one seqio task (cluster
`self_instruct`, metric `rouge`) with a record per instance: `prompt` is the
instruction, then a blank line and the input when there is one. Every tenth task
(ids in file order 9, 19, ...; the last task when there are fewer than ten) goes to
`validation`, the rest to `train`, so no instruction is in both; a file of one task
has only `train`. The vocabulary is bytes, like the built-in suite: a run re-tokenizes
with its checkpoint's vocabulary (data/binding.py).

For `flanjax train` and the other commands, `flanjax.self_instruct.tasks` registers the
files named in $FLANJAX_SELF_INSTRUCT (see there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import seqio

from flanjax.data import registry
from flanjax.data.readers import DataFileError
from flanjax.data.templates import Template

CLUSTER = "self_instruct"
PREFIX = "self_instruct"
VALIDATION_EVERY = 10
TEMPLATES = (
    Template("t0", "{prompt}", "{output}", metric="rouge"),
    Template("t1", "Instruction: {prompt}\n\nResponse:", "{output}", metric="rouge"),
)


def check_task(task: Any, where: str) -> dict[str, Any]:
    """`task` if it is a well-formed task record; else DataFileError naming `where`
    (file:line) and the field."""
    if not isinstance(task, dict):
        raise DataFileError(f"{where}: a task must be a JSON object")
    for field, kind in (("id", str), ("instruction", str), ("is_classification", bool)):
        if not isinstance(task.get(field), kind):
            raise DataFileError(f"{where}: field {field!r} must be a {kind.__name__}")
    if not task["instruction"].strip():
        raise DataFileError(f"{where}: field 'instruction' is empty")
    instances = task.get("instances")
    if not isinstance(instances, list) or not instances:
        raise DataFileError(f"{where}: field 'instances' must be a non-empty list")
    for j, inst in enumerate(instances):
        if not isinstance(inst, dict) or not all(
            isinstance(inst.get(k), str) for k in ("input", "output")
        ):
            raise DataFileError(f"{where}: instances[{j}] needs string 'input' and 'output'")
        if not inst["output"].strip():
            raise DataFileError(f"{where}: instances[{j}]: empty 'output'")
    return task


def read_tasks(path: str) -> list[dict[str, Any]]:
    """Every task of a task file, checked; ids must be unique."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such Self-Instruct task file")
    tasks, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                task = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFileError(f"{where}: not JSON ({e.msg})") from e
            check_task(task, where)
            if task["id"] in seen:
                raise DataFileError(f"{where}: duplicate id {task['id']!r}")
            seen.add(task["id"])
            tasks.append(task)
    return tasks


def prompt_of(instruction: str, inp: str) -> str:
    return f"{instruction}\n\n{inp}" if inp.strip() else instruction


def split_tasks(tasks: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """{"train": ..., "validation": ...} (see the module docstring)."""
    if len(tasks) < 2:
        return {"train": list(tasks)}
    held = {i for i in range(len(tasks)) if i % VALIDATION_EVERY == VALIDATION_EVERY - 1}
    held = held or {len(tasks) - 1}
    return {
        "train": [t for i, t in enumerate(tasks) if i not in held],
        "validation": [t for i, t in enumerate(tasks) if i in held],
    }


def records_of(tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per instance: id `<task id>/<instance index>`."""
    return [
        {
            "id": f"{task['id']}/{j}",
            "task_id": task["id"],
            "instruction": task["instruction"],
            "input": inst["input"],
            "output": inst["output"],
            "prompt": prompt_of(task["instruction"], inst["input"]),
        }
        for task in tasks
        for j, inst in enumerate(task["instances"])
    ]


def default_name(path: str) -> str:
    """`self_instruct.<folder>` for `<folder>/tasks.jsonl`, else `self_instruct.<stem>`."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem == "tasks":
        stem = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return f"{PREFIX}.{stem}"


def register_self_instruct_task(
    path: str,
    name: str | None = None,
    vocabulary: seqio.Vocabulary | None = None,
    template_seed: int = 0,
) -> registry.TaskInfo:
    """Registers the task file `path` as task `name` (default: `default_name(path)`)."""
    tasks = read_tasks(path)
    if not tasks:
        raise DataFileError(f"{path}: no tasks (run `flanjax self-instruct` first)")
    by_split = {s: records_of(t) for s, t in split_tasks(tasks).items()}
    return registry.register_templated_task(
        name or default_name(path),
        cluster=CLUSTER,
        templates=TEMPLATES,
        records=lambda split: by_split[split],
        splits=tuple(by_split),
        vocabulary=vocabulary or seqio.ByteVocabulary(),
        metric="rouge",
        template_seed=template_seed,
    )
