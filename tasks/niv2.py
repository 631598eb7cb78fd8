"""Super-NaturalInstructions tasks `niv2.<task name>`, with the official train/test mixtures.

Every task named in the official split files (`train_tasks.txt`, `test_tasks.txt`)
whose file is found becomes `niv2.<name>` (`niv2.task1152_bard_analogical_reasoning_causation`):
training tasks with a "train" split of at most 100 instances, test tasks with a
"test" split of at most 100 (SuperNI's caps; `register(max_train_instances=...,
max_test_instances=...)`). A task's cluster is its first NIv2 category
("question_rewriting"), so the evaluator reports SuperNI's per-category scores
(and the overall mean over tasks); its templates are the chosen encodings
(flanjax.data.niv2.ENCODINGS; default `def_pos2`, Tk-Instruct's), scored by
ROUGE-L with exact match beside it, each generation against its best reference.

Mixtures: `niv2.train` (the training tasks), `niv2.test` (the held-out test tasks);
and over the training tasks, FLAN's held-out-category mixtures
`niv2.train_without_<category>` / `niv2.eval_<category>` and `niv2.all`
(heldout.register_cluster_mixtures).

Where the files are: FLANJAX_NIV2_TASKS, one or more folders of task files
(os.pathsep between them; a natural-instructions checkout's `tasks/`), with the
split files in FLANJAX_NIV2_SPLITS (default: `<first folder>/../splits/default`).
Unset: the sample under the data directory, DATA_DIR/niv2/{tasks,test_tasks} and
DATA_DIR/niv2/splits/default. FLANJAX_NIV2_ENCODINGS picks encodings
("def,def_pos2"). Registering parses each task file once and keeps only its capped
instances; a full checkout's 875 English split tasks take a while to parse.
Tokenized with the T5 SentencePiece vocabulary of the data directory, as `flan.*`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from flanjax.data import catalog, heldout, mixing, niv2, registry
from flanjax.tasks import flan

log = logging.getLogger(__name__)

PREFIX = "niv2"
TASKS_ENV = "FLANJAX_NIV2_TASKS"
SPLITS_ENV = "FLANJAX_NIV2_SPLITS"
ENCODINGS_ENV = "FLANJAX_NIV2_ENCODINGS"
SPLIT_OF = {"train": "train", "test": "test"}  # official split -> the task's seqio split

# name -> the task file's content without its instances (categories, definition, ...).
TASKS: dict[str, niv2.NIv2Task] = {}


def locations(
    tasks_dirs: Sequence[str | os.PathLike[str]] | None = None,
    splits_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[Path], Path] | None:
    """(task folders, split folder): the arguments, else the env vars, else the data
    directory's sample; None (after logging why) when there is none."""
    if isinstance(tasks_dirs, str | os.PathLike):
        tasks_dirs = [tasks_dirs]  # one folder
    env = os.environ.get(TASKS_ENV)
    if tasks_dirs is None and env:
        tasks_dirs = [p for p in env.split(os.pathsep) if p]
    if tasks_dirs is None:
        root = Path(data_dir) if data_dir is not None else catalog.default_data_dir()
        if root is None or not (root / "niv2").is_dir():
            log.info(
                "niv2 tasks not registered: no %s and no niv2/ in the data directory", TASKS_ENV
            )
            return None
        tasks_dirs = [root / "niv2" / "tasks", root / "niv2" / "test_tasks"]
        splits_dir = splits_dir or root / "niv2" / "splits" / "default"
    dirs = [Path(d) for d in tasks_dirs]
    splits = splits_dir or os.environ.get(SPLITS_ENV) or dirs[0] / ".." / "splits" / "default"
    return dirs, Path(splits)


def encodings_from_env() -> tuple[str, ...]:
    value = os.environ.get(ENCODINGS_ENV, "")
    names = tuple(e.strip() for e in value.split(",") if e.strip())
    return names or niv2.DEFAULT_ENCODINGS


def register_task(
    path: Path, split: str, encodings: Sequence[str], vocab, max_instances: int | None
) -> registry.TaskInfo:
    """Registers `niv2.<file stem>` with one seqio split (`split`) of capped instances."""
    task = niv2.read_task(path, max_instances)
    records = niv2.records(task)
    name = f"{PREFIX}.{task.name}"

    def by_split(s: str) -> tuple[dict, ...]:
        if s != split:
            raise ValueError(f"{name} has no split {s!r}; splits: [{split!r}]")
        return records

    info = registry.register_templated_task(
        name,
        cluster=task.category,
        templates=niv2.task_templates(task, encodings),
        records=by_split,
        splits=(split,),
        vocabulary=vocab,
        metric=niv2.METRIC,
    )
    TASKS[name] = dataclasses.replace(task, instances=())  # metadata only
    return info


def register(
    tasks_dirs: Sequence[str | os.PathLike[str]] | None = None,
    splits_dir: str | os.PathLike[str] | None = None,
    *,
    encodings: Sequence[str] | None = None,
    max_train_instances: int | None = niv2.DEFAULT_MAX_INSTANCES,
    max_test_instances: int | None = niv2.DEFAULT_MAX_INSTANCES,
    data_dir: str | os.PathLike[str] | None = None,
) -> dict[str, list[str]]:
    """Registers the split's tasks found in `tasks_dirs` and the niv2 mixtures.

    Returns {"train": [task names], "test": [task names]} (empty without files or
    tokenizer). A malformed task file raises NIv2Error naming the file and field.
    """
    where = locations(tasks_dirs, splits_dir, data_dir)
    root = flan._data_dir(data_dir)  # the tokenizer's folder
    if where is None or root is None:
        return {"train": [], "test": []}
    dirs, splits = where
    vocab = flan.vocabulary(root)
    encodings = tuple(encodings or encodings_from_env())
    caps = {"train": max_train_instances, "test": max_test_instances}
    names: dict[str, list[str]] = {}
    for split in ("train", "test"):
        listed = niv2.read_split(splits, split)
        files = niv2.find_task_files(dirs, listed)
        names[split] = [
            register_task(files[n], SPLIT_OF[split], encodings, vocab, caps[split]).name
            for n in listed
            if n in files
        ]
        log.info("niv2 %s: %d of %d listed tasks found in %s", split, len(files), len(listed),
                 ", ".join(map(str, dirs)))  # fmt: skip
    _register_mixtures(names)
    return names


def _register_mixtures(names: dict[str, list[str]]) -> None:
    if names["train"]:
        mixing.register_mixture(f"{PREFIX}.train", names["train"], cap=None)
        heldout.register_cluster_mixtures(PREFIX, names["train"])
    if names["test"]:
        mixing.register_mixture(f"{PREFIX}.test", names["test"], cap=None)


TASK_NAMES: dict[str, list[str]] = register()
