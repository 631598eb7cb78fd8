"""Templated seqio Tasks and their FLAN metadata (mixtures: mixing.py, heldout.py).

`register_templated_task` adds an ordinary seqio Task (so `seqio.get_dataset`,
`seqio.get_mixture_or_task` and seqio's mixtures all work) whose training data is
every record rendered through one of its templates, chosen uniformly and
deterministically per record. Alongside, flanjax keeps a `TaskInfo` for each
task (cluster, templates, records by split) that the evaluator uses to render
every evaluation record through every template.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable, Mapping, Sequence

import seqio
import tensorflow as tf

from flanjax.data.templates import Template, TemplateError, pick_template

RecordsFn = Callable[[str], Sequence[Mapping[str, object]]]


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What flanjax knows of a registered task beyond seqio's Task."""

    name: str
    cluster: str
    templates: tuple[Template, ...]
    records: RecordsFn  # split -> records, each with a unique "id"
    num_examples: Mapping[str, int]
    metric: str

    @property
    def has_choices(self) -> bool:
        return any(t.has_choices for t in self.templates)


_TASKS: dict[str, TaskInfo] = {}


def _closest(name: str, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, known, n=3)
    return f" Did you mean: {', '.join(near)}?" if near else ""


def get_task_info(name: str) -> TaskInfo:
    if name not in _TASKS:
        raise ValueError(
            f"unknown flanjax task {name!r} ({len(_TASKS)} registered)."
            + _closest(name, list(_TASKS))
        )
    return _TASKS[name]


def register_alias(name: str, original: str) -> TaskInfo:
    """`name` shares task `original`'s metadata (a re-tokenized copy: data/binding.py)."""
    info = dataclasses.replace(get_task_info(original), name=name)
    _TASKS[name] = info
    return info


def task_infos() -> dict[str, TaskInfo]:
    return dict(_TASKS)


def get_mixture_or_task(name: str) -> seqio.Task | seqio.Mixture:
    """`seqio.get_mixture_or_task` with an error that suggests near names."""
    known = list(seqio.MixtureRegistry.names()) + list(seqio.TaskRegistry.names())
    if name not in known:
        raise ValueError(
            f"unknown task or mixture {name!r}; `flanjax tasks list` shows the "
            f"{len(known)} registered." + _closest(name, known)
        )
    return seqio.get_mixture_or_task(name)


def tasks_of(name: str) -> list[str]:
    """Names of the flanjax tasks in a task or (nested) mixture."""
    obj = get_mixture_or_task(name)
    return [t.name for t in obj.tasks] if isinstance(obj, seqio.Mixture) else [obj.name]


def check_templates(name: str, templates: Sequence[Template], sample: Mapping) -> None:
    if not templates:
        raise TemplateError(f"task {name!r}: no templates")
    ids = [t.id for t in templates]
    if len(set(ids)) != len(ids):
        raise TemplateError(f"task {name!r}: duplicate template ids {ids}")
    for t in templates:
        t.render(sample, task=name)  # raises TemplateError naming the missing field


def _rendered_source(
    name: str,
    templates: tuple[Template, ...],
    records: RecordsFn,
    counts: Mapping[str, int],
    template_seed: int,
) -> seqio.FunctionDataSource:
    """A seqio source of each split's records rendered through one template each
    (picked by record id and seed), rendered once per split on first use."""

    @functools.cache
    def rendered(split: str) -> dict[str, list[str]]:
        rows: dict[str, list[str]] = {"inputs": [], "targets": [], "id": []}
        for i, rec in enumerate(records(split)):
            if "id" not in rec:
                raise TemplateError(f"task {name!r}, split {split!r}: record {i} has no 'id'")
            template = pick_template(templates, str(rec["id"]), template_seed)
            try:
                ex = template.render(rec, task=name)
            except TemplateError as e:
                raise TemplateError(f"{e} (split {split!r}, record {rec['id']!r})") from e
            rows["inputs"].append(ex.inputs)
            rows["targets"].append(ex.targets)
            rows["id"].append(str(rec["id"]))
        return rows

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        del shuffle_files, seed  # one in-memory shard; seqio shuffles examples
        return tf.data.Dataset.from_tensor_slices(rendered(split))

    return seqio.FunctionDataSource(dataset_fn, splits=tuple(counts), num_input_examples=counts)


def register_templated_task(
    name: str,
    *,
    cluster: str,
    templates: Sequence[Template],
    records: RecordsFn,
    splits: Sequence[str],
    vocabulary: seqio.Vocabulary,
    metric: str = "exact_match",
    template_seed: int = 0,
) -> TaskInfo:
    """Registers a seqio Task of `records` rendered through `templates`.

    Every template is rendered once against the first training record at
    registration, so a template that names a missing field fails here, naming
    the task, template and field, rather than mid-training.
    """
    counts = {s: len(records(s)) for s in splits}
    for split, n in counts.items():
        if n == 0:
            raise ValueError(f"task {name!r}: split {split!r} has no records")
    check_templates(name, templates, records(splits[0])[0])
    templates = tuple(templates)
    source = _rendered_source(name, templates, records, counts, template_seed)
    features = text_features(vocabulary)
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=source,
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
        output_features=features,
        metric_fns=[],
    )
    return add_info(TaskInfo(name, cluster, templates, records, counts, metric))


def text_features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    """A templated task's output features: inputs and targets, each with EOS."""
    return {
        "inputs": seqio.Feature(vocabulary, add_eos=True, required=False),
        "targets": seqio.Feature(vocabulary, add_eos=True),
    }


def add_info(info: TaskInfo) -> TaskInfo:
    """Records `info` as flanjax's metadata of the seqio task of the same name."""
    _TASKS[info.name] = info
    return info


def unregister(name: str) -> None:
    """Removes task or mixture `name` from seqio's registries and flanjax's (tests, notebooks)."""
    _TASKS.pop(name, None)
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    if name in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(name)
