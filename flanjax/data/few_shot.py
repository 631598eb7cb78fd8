"""Few-shot prompts: k solved exemplars from the training split, then the query.

An exemplar is a training record rendered through the same template as the
query, its inputs and targets joined by `answer_separator`; exemplars and the
query are joined by `exemplar_separator`:

    <exemplar 1 inputs>\\n<exemplar 1 targets>\\n\\n<exemplar 2 ...>\\n\\n<query inputs>

Exemplars are drawn from the training split only (`few_shot_examples` reads
`records("train")`), never the record being rendered (compared by `id`), by a
generator seeded with the query's id and `seed`: the same query always gets
the same exemplars, in the same order. When `max_input_length` is set, the
last-drawn exemplars are dropped until `length_fn(inputs)` fits, so the kept
exemplars are always a prefix of the draw; if none fit, the query is rendered
zero-shot (and truncation is left to the pipeline).

The format is recorded as the template kind: `few_shot_kind("zero_shot")` is
"few_shot" and `few_shot_kind("cot")` "few_shot_cot" (exemplars then show
their rationales); `FewShotExample.kind` says what one rendered example got.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from flanjax.data.templates import RenderedExample, Template

LengthFn = Callable[[str], int]
_FEW_SHOT_KIND = {
    "zero_shot": "few_shot",
    "few_shot": "few_shot",
    "cot": "few_shot_cot",
    "few_shot_cot": "few_shot_cot",
}


@dataclasses.dataclass(frozen=True)
class FewShotConfig:
    """How few-shot prompts are built.

    Attributes:
      k: exemplars drawn per query (fewer if the pool is smaller).
      seed: with the query's id, seeds the draw.
      exemplar_separator: between exemplars, and between the last one and the query.
      answer_separator: between an exemplar's inputs and its targets.
      max_input_length: budget for the whole inputs, in `length_fn` units
        (e.g. tokens); None keeps every drawn exemplar.
    """

    k: int = 3
    seed: int = 0
    exemplar_separator: str = "\n\n"
    answer_separator: str = "\n"
    max_input_length: int | None = None

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"FewShotConfig.k must be >= 0, got {self.k}")


@dataclasses.dataclass(frozen=True)
class FewShotExample:
    """One query with its exemplars: `example.inputs` holds the whole prompt."""

    example: RenderedExample
    exemplar_ids: tuple[str, ...]
    kind: str  # "few_shot" / "few_shot_cot"; the template's own kind if none were kept


def few_shot_kind(kind: str) -> str:
    """The kind of a template rendered with exemplars: "cot" -> "few_shot_cot"."""
    if kind not in _FEW_SHOT_KIND:
        raise ValueError(f"unknown template kind {kind!r}; known: {sorted(_FEW_SHOT_KIND)}")
    return _FEW_SHOT_KIND[kind]


def few_shot_template(template: Template, k: int) -> Template:
    """`template` marked as few-shot, with id "<id>.<k>shot" (e.g. "t0.3shot")."""
    return dataclasses.replace(
        template, id=f"{template.id}.{k}shot", kind=few_shot_kind(template.kind)
    )


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "little")


def select_exemplars(
    pool: Sequence[Mapping[str, Any]], record_id: str, k: int, seed: int = 0
) -> list[Mapping[str, Any]]:
    """Up to `k` records of `pool`, none with id `record_id`; deterministic in (id, seed)."""
    rng = random.Random(_seed("few_shot", record_id, str(seed)))
    draw = rng.sample(range(len(pool)), min(len(pool), k + 1))
    picked = [pool[i] for i in draw if str(pool[i].get("id")) != record_id]
    return picked[:k]


def _join(shots: Sequence[RenderedExample], query: RenderedExample, config: FewShotConfig) -> str:
    solved = [f"{s.inputs}{config.answer_separator}{s.targets}" for s in shots]
    return config.exemplar_separator.join([*solved, query.inputs])


def render_few_shot(
    template: Template,
    record: Mapping[str, Any],
    train_records: Sequence[Mapping[str, Any]],
    config: FewShotConfig = FewShotConfig(),
    length_fn: LengthFn | None = None,
    task: str = "?",
) -> FewShotExample:
    """Renders `record` through `template` after `config.k` exemplars from `train_records`.

    `train_records` must be the task's training split; `length_fn` (e.g.
    `lambda s: len(vocab.encode(s))`) is needed when `config.max_input_length`
    is set.
    """
    if config.max_input_length is not None and length_fn is None:
        raise ValueError("render_few_shot: max_input_length is set but no length_fn is given")
    query = template.render(record, task=task)
    record_id = str(record.get("id", ""))
    chosen = select_exemplars(train_records, record_id, config.k, config.seed)
    shots = [template.render(r, task=task) for r in chosen]
    inputs = _join(shots, query, config)
    while (
        shots
        and config.max_input_length is not None
        and length_fn(inputs) > config.max_input_length
    ):
        shots.pop()
        chosen.pop()
        inputs = _join(shots, query, config)
    kind = few_shot_kind(template.kind) if shots else template.kind
    example = dataclasses.replace(query, inputs=inputs)
    return FewShotExample(example, tuple(str(r.get("id", "")) for r in chosen), kind)


class TaskRecords(Protocol):
    """What `few_shot_examples` reads of a task: `registry.TaskInfo` has it."""

    @property
    def name(self) -> str: ...

    @property
    def num_examples(self) -> Mapping[str, int]: ...

    def records(self, split: str) -> Sequence[Mapping[str, Any]]: ...


def few_shot_examples(
    info: TaskRecords,
    template: Template,
    split: str,
    config: FewShotConfig = FewShotConfig(),
    length_fn: LengthFn | None = None,
    limit: int | None = None,
) -> list[FewShotExample]:
    """The first `limit` (all if None) records of `split`, few-shot, exemplars from "train"."""
    if "train" not in info.num_examples:
        raise ValueError(
            f"task {info.name!r} has no 'train' split to draw few-shot exemplars from "
            f"(splits: {', '.join(info.num_examples)})"
        )
    pool = info.records("train")
    records = info.records(split)
    records = records if limit is None else records[:limit]
    return [render_few_shot(template, r, pool, config, length_fn, info.name) for r in records]
