"""FLAN's instruction ablations: the same data without natural-language instructions.

FLAN (Wei et al., 2021, section 4.3) asks whether instructions matter by training
on the same tasks with
  * "no_template": the inputs alone, no instruction (`bare` below), and
  * "dataset_name": the inputs prefixed by the task and dataset name,
and evaluating the held-out cluster with instructions as usual; both lose most
of instruction tuning's zero-shot gain.

`bare(template)` keeps a template's record fields and drops its words: the
fields its inputs name, in order, one per line (with the answer options, in the
same rendering, when the template shows them), and the same targets. Only the
zero-shot templates that pose the task itself are used (not inverted, not
chain-of-thought), so the targets are the task's answers.
`register_ablation(mixture, kind)` registers `<task>.<kind>` for every task of a
mixture (the same records, cluster, vocabulary and metric; one template) and the
mixture `<mixture>.<kind>` with the same rates.
"""

from __future__ import annotations

import dataclasses
import string

import seqio

from flanjax.data import registry
from flanjax.data.templates import Template

KINDS = ("no_template", "dataset_name")


def _fields(pattern: str) -> list[str]:
    names = [f for _, f, _, _ in string.Formatter().parse(pattern) if f]
    return list(dict.fromkeys(names))


def bare(template: Template, kind: str = "no_template", name: str = "") -> Template:
    """`template` without its instruction words (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"ablation {kind!r}: use one of {KINDS}")
    fields = [f for f in _fields(template.inputs) if f not in ("options", "answer")]
    lines = [f"{{{f}}}" for f in fields]
    if "{options}" in template.inputs:
        lines.append("{options}")
    if kind == "dataset_name":
        lines.insert(0, name.replace("{", "{{").replace("}", "}}"))
    return dataclasses.replace(template, id=f"{template.id}_{kind}", inputs="\n".join(lines))


def _poses_task(t: Template) -> bool:
    return not t.inverted and t.kind == "zero_shot"


def register_task(name: str, kind: str) -> str:
    """`<name>.<kind>`: task `name`'s records through the bare form of its first
    template that poses the task itself."""
    info = registry.get_task_info(name)
    template = next((t for t in info.templates if _poses_task(t)), None)
    if template is None:
        raise ValueError(f"task {name!r}: no zero-shot, non-inverted template to ablate")
    vocab = seqio.get_mixture_or_task(name).output_features["targets"].vocabulary
    new = f"{name}.{kind}"
    registry.register_templated_task(
        new,
        cluster=info.cluster,
        templates=[bare(template, kind, name.split(".", 1)[-1])],
        records=info.records,
        splits=tuple(info.num_examples),
        vocabulary=vocab,
        metric=info.metric,
    )
    return new


def register_ablation(mixture: str, kind: str) -> str:
    """`<mixture>.<kind>`: every task of `mixture` ablated, at the same rates."""
    obj = registry.get_mixture_or_task(mixture)
    tasks = obj.tasks if isinstance(obj, seqio.Mixture) else [obj]
    members = [
        (register_task(t.name, kind), obj.get_rate(t) if obj is not t else 1.0) for t in tasks
    ]
    new = f"{mixture}.{kind}"
    if new in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(new)
    seqio.MixtureRegistry.add(new, members)
    return new
