"""Mixing rates: examples-proportional with a cap, temperature, and nested mixtures.

Rates (T5 / FLAN): a task of `n` training examples gets

    rate = min(n, cap) ** (1 / temperature)

and is sampled with probability rate / sum(rates). FLAN v1 uses cap 3,000 and
temperature 1; temperature > 1 flattens the mixture toward uniform.
`examples_proportional_rates` is that formula (the only copy in flanjax);
`register_mixture` registers a mixture of tasks at those rates and
`register_rated` one at given rates. Held-out-cluster mixtures: heldout.py.

Nested mixtures (a FLAN v2-style recipe): a mixture of *submixes* with fixed
rates, each submix split into prompt *formats* (zero-shot / few-shot, with /
without answer options) with fixed rates, each format cell mixing its tasks
examples-proportionally. seqio supports a Mixture that contains Mixtures: a
task inside sub-mixture `m` gets rate `rate(m) * rate_m(task) / total_rate(m)`
in the parent (`seqio.Mixture.get_rate`), so a task's effective proportion is
the product of the proportions along its path. `nested_proportions` does that
arithmetic without seqio; `effective_proportions` reads it from a registered
mixture, nested or not.

Format variants are registered as tasks `<task>.<format>` holding the subset of
the task's templates of that format (`register_format_variants`); few-shot
variants render each record after k exemplars from the task's training split
through :class:`FewShotTemplate` (see flanjax.data.few_shot).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import seqio

from flanjax.data import few_shot, registry
from flanjax.data.templates import RenderedExample, Template

DEFAULT_CAP = 3000  # FLAN v1's per-task cap on examples for mixing rates.


def examples_proportional_rates(
    sizes: Mapping[str, int], cap: int | None = DEFAULT_CAP, temperature: float = 1.0
) -> dict[str, float]:
    """min(n, cap) ** (1 / temperature) per name; `cap=None` leaves sizes uncapped."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rates = {}
    for name, n in sizes.items():
        if n < 0:
            raise ValueError(f"{name!r}: negative size {n}")
        rates[name] = float(n if cap is None else min(n, cap)) ** (1.0 / temperature)
    return rates


def normalize(rates: Mapping[str, float]) -> dict[str, float]:
    """Rates -> sampling proportions summing to 1."""
    total = sum(rates.values())
    if total <= 0:
        raise ValueError(f"rates sum to {total}: {dict(rates)}")
    return {k: v / total for k, v in rates.items()}


def train_size(task: str) -> int:
    """The task's training examples (its largest split if it has no "train").

    A task without a train split (evaluation only) so gets a rate; seqio skips
    it in a mixture read for a split it lacks.
    """
    counts = registry.get_task_info(task).num_examples
    return counts.get("train", max(counts.values()))


def task_rates(
    tasks: Sequence[str], cap: int | None = DEFAULT_CAP, temperature: float = 1.0
) -> dict[str, float]:
    """Examples-proportional rates of registered flanjax tasks."""
    return examples_proportional_rates({t: train_size(t) for t in tasks}, cap, temperature)


def _describe(vocab: seqio.Vocabulary) -> str:
    if type(vocab).__str__ is not object.__str__:
        return str(vocab)
    return f"{type(vocab).__name__}(extra_ids={vocab.extra_ids})"


def check_vocabularies(name: str, members: Sequence[str]) -> None:
    """Refuses mixture `name` unless its tasks (nested too) share each feature's vocabulary."""
    tasks: list[seqio.Task] = []
    for m in members:
        obj = registry.get_mixture_or_task(m)
        tasks.extend(obj.tasks if isinstance(obj, seqio.Mixture) else [obj])
    first = tasks[0]
    for feature, ref in first.output_features.items():
        for task in tasks[1:]:
            other = task.output_features.get(feature)
            if other is None or other.vocabulary is ref.vocabulary:
                continue
            if other.vocabulary != ref.vocabulary:
                raise ValueError(
                    f"mixture {name!r}: tasks {first.name!r} and {task.name!r} use different "
                    f"{feature!r} vocabularies ({_describe(ref.vocabulary)} and "
                    f"{_describe(other.vocabulary)}); every task of a mixture must share one"
                )


def register_rated(name: str, rates: Mapping[str, float]) -> seqio.Mixture:
    """Registers (or replaces) seqio mixture `name` of tasks or mixtures with `rates`."""
    if not rates:
        raise ValueError(f"mixture {name!r}: no tasks")
    bad = {k: v for k, v in rates.items() if not v > 0}
    if bad:
        raise ValueError(f"mixture {name!r}: rates must be > 0, got {bad}")
    check_vocabularies(name, list(rates))
    if name in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, [(k, float(v)) for k, v in rates.items()])


def register_mixture(
    name: str,
    tasks: Sequence[str],
    cap: int | None = DEFAULT_CAP,
    temperature: float = 1.0,
) -> seqio.Mixture:
    """Registers mixture `name` of `tasks` at examples-proportional rates."""
    if not tasks:
        raise ValueError(f"mixture {name!r}: no tasks")
    return register_rated(name, task_rates(tasks, cap, temperature))


def effective_proportions(name: str, split: str | None = None) -> dict[str, float]:
    """Each task's share of the examples drawn from task or mixture `name` (nested too).

    With `split`, tasks lacking that split are left out, as seqio does when it
    reads a mixture (an evaluation-only task contributes nothing to "train").
    """
    obj = registry.get_mixture_or_task(name)
    tasks = obj.tasks if isinstance(obj, seqio.Mixture) else [obj]
    if split is not None:
        tasks = [t for t in tasks if split in t.splits]
        if not tasks:
            raise ValueError(f"{name!r}: no task has a {split!r} split")
    if not isinstance(obj, seqio.Mixture):
        return {obj.name: 1.0}
    return normalize({t.name: obj.get_rate(t) for t in tasks})


# --- Nested mixtures -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Submix:
    """A node of a nested mixture.

    A leaf lists `tasks`, mixed examples-proportionally (`cap`, `temperature`)
    from `sizes` (name -> training examples; registered tasks' counts if None).
    An inner node lists `children`, mixed at their fixed `rate`s. A node's own
    `rate` is its weight in its parent (ignored at the root).
    """

    name: str
    rate: float = 1.0
    tasks: tuple[str, ...] = ()
    children: tuple[Submix, ...] = ()
    cap: int | None = DEFAULT_CAP
    temperature: float = 1.0
    sizes: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if bool(self.tasks) == bool(self.children):
            raise ValueError(f"submix {self.name!r}: give tasks or children (exactly one)")
        if not self.rate > 0:
            raise ValueError(f"submix {self.name!r}: rate must be > 0, got {self.rate}")

    def leaf_rates(self) -> dict[str, float]:
        sizes = self.sizes if self.sizes is not None else {t: train_size(t) for t in self.tasks}
        return examples_proportional_rates(
            {t: sizes[t] for t in self.tasks}, self.cap, self.temperature
        )


def nested_proportions(node: Submix) -> dict[str, float]:
    """Effective proportion of each task in `node`: products along the tree.

    A task reached by several paths gets the sum of its paths, as in seqio.
    """
    if node.tasks:
        return normalize(node.leaf_rates())
    weights = normalize({c.name: c.rate for c in node.children})
    out: dict[str, float] = {}
    for child in node.children:
        for task, p in nested_proportions(child).items():
            out[task] = out.get(task, 0.0) + weights[child.name] * p
    return out


def register_nested(node: Submix) -> seqio.Mixture:
    """Registers every node of the tree as a seqio mixture (children first)."""
    if node.tasks:
        return register_rated(node.name, node.leaf_rates())
    for child in node.children:
        register_nested(child)
    return register_rated(node.name, {c.name: c.rate for c in node.children})


# --- Prompt formats ----------------------------------------------------------------

FORMATS: tuple[str, ...] = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")


@dataclasses.dataclass(frozen=True)
class FewShotTemplate(Template):
    """`base` rendered after exemplars from `pool()` (the task's training records).

    Same `render(record, task)` interface as any template; `id` and `kind` are
    `few_shot.few_shot_template(base, k)`'s. `length_fn` (e.g. a vocabulary's
    token count) is needed when `config.max_input_length` is set.
    """

    base: Template | None = None
    pool: Callable[[], Sequence[Mapping[str, Any]]] | None = None
    config: few_shot.FewShotConfig = few_shot.FewShotConfig()
    length_fn: Callable[[str], int] | None = None

    @property
    def has_choices(self) -> bool:
        return self.base.has_choices

    @property
    def options_in_prompt(self) -> bool:
        return self.base.options_in_prompt

    def required_fields(self) -> tuple[str, ...]:
        return self.base.required_fields()

    def render(self, record: Mapping[str, Any], task: str = "?") -> RenderedExample:
        shot = few_shot.render_few_shot(
            self.base, record, self.pool(), self.config, self.length_fn, task=task
        )
        return shot.example


def few_shot_variant(
    template: Template,
    pool: Callable[[], Sequence[Mapping[str, Any]]],
    config: few_shot.FewShotConfig,
) -> FewShotTemplate:
    marked = few_shot.few_shot_template(template, config.k)
    fields = {f.name: getattr(marked, f.name) for f in dataclasses.fields(Template)}
    return FewShotTemplate(**fields, base=template, pool=pool, config=config)


def format_templates(
    info: registry.TaskInfo, fmt: str, config: few_shot.FewShotConfig
) -> tuple[Template, ...]:
    """The task's templates in format `fmt` (few-shot ones wrapped); may be empty."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {FORMATS}")
    opt = fmt.endswith("_opt")
    chosen = tuple(
        t for t in info.templates if t.options_in_prompt == opt and not t.kind.startswith("few")
    )
    if fmt.startswith("zs"):
        return chosen
    if "train" not in info.num_examples:
        return ()
    return tuple(few_shot_variant(t, lambda: info.records("train"), config) for t in chosen)


def register_format_variants(
    task: str,
    formats: Sequence[str] = FORMATS,
    config: few_shot.FewShotConfig = few_shot.FewShotConfig(),
) -> dict[str, str]:
    """Registers `<task>.<fmt>` for each format the task has templates for.

    Returns format -> variant task name. Few-shot variants need a "train"
    split (exemplars come from it); a task without one gets none.
    """
    info = registry.get_task_info(task)
    vocab = seqio.get_mixture_or_task(task).output_features["targets"].vocabulary
    out = {}
    for fmt in formats:
        templates = format_templates(info, fmt, config)
        if not templates:
            continue
        registry.register_templated_task(
            f"{task}.{fmt}",
            cluster=info.cluster,
            templates=templates,
            records=info.records,
            splits=tuple(info.num_examples),
            vocabulary=vocab,
            metric=info.metric,
        )
        out[fmt] = f"{task}.{fmt}"
    return out


def format_recipe(
    name: str,
    submixes: Mapping[str, tuple[float, Sequence[str]]],
    format_rates: Mapping[str, float],
    *,
    cap: int | None = DEFAULT_CAP,
    temperature: float = 1.0,
    config: few_shot.FewShotConfig = few_shot.FewShotConfig(),
) -> Submix:
    """A v2-style tree: `name` -> submix (fixed rate) -> format (fixed rate) -> tasks.

    `submixes` maps a submix name to (rate, tasks). Registers the format
    variants of every task; a (submix, format) cell without any variant is
    left out, and its parent's other formats share its weight. Register the
    returned tree with `register_nested`.
    """
    children = []
    for sub, (rate, tasks) in submixes.items():
        variants = {t: register_format_variants(t, tuple(format_rates), config) for t in tasks}
        cells = []
        for fmt, fmt_rate in format_rates.items():
            members = tuple(v[fmt] for v in variants.values() if fmt in v)
            if members:
                sizes = {m: train_size(m) for m in members}
                cells.append(
                    Submix(f"{name}.{sub}.{fmt}", fmt_rate, members, cap=cap,
                           temperature=temperature, sizes=sizes)
                )  # fmt: skip
        if not cells:
            raise ValueError(f"submix {sub!r}: no task has templates in {list(format_rates)}")
        children.append(Submix(f"{name}.{sub}", rate, children=tuple(cells)))
    return Submix(name, children=tuple(children))
