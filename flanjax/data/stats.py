"""Mixture accounting before training: examples, tokens, truncation and packing.

`mixture_stats(name, steps, batch_size, feature_lengths)` answers "what will
this run consume?" without a model:

* each task's share is its effective proportion in the (nested) mixture
  among the tasks that have the split read (`mixing.effective_proportions`,
  the rates seqio samples with; seqio skips a task without the split);
* token lengths come from a sample of the task's training records, each
  rendered through the template training picks for it (`pick_template`) and
  tokenized with the task's vocabulary, plus EOS, before truncation;
* a task's examples split across template types (`template_type`: kind and
  whether answer options are in the prompt) in proportion to its templates,
  since training picks a template uniformly per record;
* packing is simulated the way seqio packs (in stream order, a row is closed
  when the next example does not fit in every feature) on a seeded draw of
  examples from the mixture; the examples per row it finds turn the run's
  rows (steps x batch size) into examples. Unpacked, a row is one example.

Truncation is never silent: `TaskStats.truncated_inputs` / `truncated_targets`
give the fraction of sampled examples longer than the feature length.
"""

from __future__ import annotations

import collections
import dataclasses
import random
from collections.abc import Mapping, Sequence

import numpy as np
import seqio

from flanjax.data import mixing, registry
from flanjax.data.templates import Template, pick_template

FEATURES = ("inputs", "targets")
CONVERTERS = ("enc_dec", "prefix_lm")


def template_type(template: Template) -> str:
    """The template's kind and whether answer options are in its prompt: "zero_shot/options"."""
    return f"{template.kind}/{'options' if template.options_in_prompt else 'no_options'}"


@dataclasses.dataclass(frozen=True)
class LengthSample:
    """Token lengths (with EOS, before truncation) of sampled records of one task."""

    inputs: np.ndarray  # [n] int
    targets: np.ndarray  # [n] int
    types: tuple[str, ...]  # template type of each sampled example


def sample_lengths(task: str, n: int = 200, split: str | None = None) -> LengthSample:
    """Up to `n` records of `split`, evenly spaced; None: "train", or the largest split."""
    info = registry.get_task_info(task)
    split = split or ("train" if "train" in info.num_examples else max(info.num_examples))
    records = info.records(split)
    if hasattr(records, "sample"):  # a streamed task (data/streamed.py): a few per shard
        chosen = records.sample(n)
    else:
        total = len(records)
        idx = np.unique(np.linspace(0, total - 1, num=min(n, total)).astype(int))
        chosen = [records[int(i)] for i in idx]
    vocab = seqio.get_mixture_or_task(task).output_features["targets"].vocabulary
    ins, tgs, types = [], [], []
    for rec in chosen:
        template = pick_template(info.templates, str(rec["id"]), 0)
        ex = template.render(rec, task=task)
        ins.append(len(vocab.encode(ex.inputs)) + 1)
        tgs.append(len(vocab.encode(ex.targets)) + 1)
        # Records rendered before (a released collection's) carry their own type.
        types.append(str(rec.get("template_type") or template_type(template)))
    return LengthSample(np.asarray(ins), np.asarray(tgs), tuple(types))


def pack_next_fit(
    lengths: Sequence[tuple[int, int]], feature_lengths: tuple[int, int]
) -> tuple[int, float, tuple[float, float]]:
    """Packs (inputs, targets) lengths in order, as seqio does.

    Lengths are truncated to `feature_lengths` first. Returns (rows, overall
    non-padding fraction, per-feature non-padding fractions).
    """
    li, lt = feature_lengths
    rows, used_i, used_t = 0, li + 1, lt + 1  # no open row
    real_i = real_t = 0
    for a, b in lengths:
        a, b = min(a, li), min(b, lt)
        real_i += a
        real_t += b
        if used_i + a > li or used_t + b > lt:
            rows, used_i, used_t = rows + 1, 0, 0
        used_i += a
        used_t += b
    rows = max(rows, 1)
    return (
        rows,
        (real_i + real_t) / (rows * (li + lt)),
        (real_i / (rows * li), real_t / (rows * lt)),
    )


@dataclasses.dataclass(frozen=True)
class TaskStats:
    task: str
    proportion: float  # share of the mixture's examples
    train_examples: int  # in the split read
    examples: float  # expected examples consumed by the run
    epochs: float  # examples / train_examples
    inputs_tokens: float  # mean per example, after truncation
    targets_tokens: float
    truncated_inputs: float  # fraction of examples longer than the inputs length
    truncated_targets: float
    by_type: Mapping[str, float]  # template type -> expected examples

    @property
    def tokens(self) -> float:
        return self.examples * (self.inputs_tokens + self.targets_tokens)


@dataclasses.dataclass(frozen=True)
class MixtureStats:
    name: str
    steps: int
    batch_size: int
    feature_lengths: Mapping[str, int]
    pack: bool
    converter: str
    examples_per_row: float
    nonpadding: float  # of all input and target positions
    nonpadding_by_feature: Mapping[str, float]  # "inputs", "targets" or "sequence"
    unpacked_nonpadding: float  # the same examples one per row, for comparison
    tasks: tuple[TaskStats, ...]

    @property
    def examples(self) -> float:
        return sum(t.examples for t in self.tasks)

    @property
    def tokens(self) -> float:
        return sum(t.tokens for t in self.tasks)

    @property
    def packing_bound(self) -> float:
        """The non-padding no packer can beat at these lengths (mean example lengths).

        Encoder-decoder rows fill their inputs and targets together: with mean
        lengths a and b, rows >= examples * max(a / inputs, b / targets), so a
        mixture whose a : b differs from the lengths' ratio leaves one feature
        part empty. One decoder-only sequence has no such bound (1.0).
        """
        if self.converter != "enc_dec":
            return 1.0
        a = sum(t.proportion * t.inputs_tokens for t in self.tasks)
        b = sum(t.proportion * t.targets_tokens for t in self.tasks)
        li, lt = self.feature_lengths["inputs"], self.feature_lengths["targets"]
        return (a + b) / (max(a / li, b / lt) * (li + lt))

    def by_type(self) -> dict[str, tuple[float, float]]:
        """Template type -> (expected examples, expected tokens), over all tasks."""
        out: dict[str, list[float]] = {}
        for t in self.tasks:
            per_example = t.inputs_tokens + t.targets_tokens
            for kind, n in t.by_type.items():
                acc = out.setdefault(kind, [0.0, 0.0])
                acc[0] += n
                acc[1] += n * per_example
        return {k: (v[0], v[1]) for k, v in sorted(out.items())}

    def by_source(self) -> dict[str, tuple[int, int, float, float]]:
        """Source (a task name's prefix: "niv2", "flan", ...) -> (tasks, records in the split
        read, expected examples, expected tokens)."""
        out: dict[str, list[float]] = {}
        for t in self.tasks:
            acc = out.setdefault(t.task.split(".")[0], [0, 0, 0.0, 0.0])
            for i, v in enumerate((1, t.train_examples, t.examples, t.tokens)):
                acc[i] += v
        return {k: (int(v[0]), int(v[1]), v[2], v[3]) for k, v in sorted(out.items())}


def _truncated_means(s: LengthSample, li: int, lt: int) -> tuple[float, float, float, float]:
    return (
        float(np.minimum(s.inputs, li).mean()),
        float(np.minimum(s.targets, lt).mean()),
        float((s.inputs > li).mean()),
        float((s.targets > lt).mean()),
    )


def _packing(
    drawn: Sequence[tuple[int, int]], li: int, lt: int, converter: str, pack: bool
) -> tuple[float, float, dict[str, float], float]:
    """(examples per row, non-padding, non-padding by feature, unpacked non-padding)."""
    if converter == "prefix_lm":  # one sequence of li + lt positions per row
        seqs = [(min(a, li) + min(b, lt), 0) for a, b in drawn]
        rows, _, (fill, _) = pack_next_fit(seqs, (li + lt, 1))
        unpacked = sum(n for n, _ in seqs) / (len(seqs) * (li + lt))
        if not pack:
            return 1.0, unpacked, {"sequence": unpacked}, unpacked
        return len(drawn) / rows, fill, {"sequence": fill}, unpacked
    unpacked = sum(min(a, li) + min(b, lt) for a, b in drawn) / (len(drawn) * (li + lt))
    if not pack:
        by_feature = {
            "inputs": sum(min(a, li) for a, _ in drawn) / (len(drawn) * li),
            "targets": sum(min(b, lt) for _, b in drawn) / (len(drawn) * lt),
        }
        return 1.0, unpacked, by_feature, unpacked
    rows, nonpad, (fill_i, fill_t) = pack_next_fit(drawn, (li, lt))
    return len(drawn) / rows, nonpad, {"inputs": fill_i, "targets": fill_t}, unpacked


def _check_lengths(feature_lengths: Mapping[str, int]) -> tuple[int, int]:
    missing = [f for f in FEATURES if f not in feature_lengths]
    if missing:
        raise ValueError(f"feature lengths {dict(feature_lengths)} lack {missing}")
    li, lt = feature_lengths["inputs"], feature_lengths["targets"]
    if li < 1 or lt < 1:
        raise ValueError(f"feature lengths must be >= 1, got {dict(feature_lengths)}")
    return li, lt


def mixture_stats(
    name: str,
    steps: int,
    batch_size: int,
    feature_lengths: Mapping[str, int],
    *,
    pack: bool = True,
    split: str = "train",
    sample: int = 200,
    draws: int = 4000,
    seed: int = 0,
    converter: str = "enc_dec",
) -> MixtureStats:
    """Expected consumption of `steps` batches of `batch_size` rows of task or mixture `name`.

    `sample` records per task give the lengths; `draws` examples drawn from
    the mixture (seeded) give the packing figures. `converter` "enc_dec"
    packs inputs and targets in their own rows; "prefix_lm" (decoder-only)
    packs each example's inputs and targets, concatenated, in one sequence
    of inputs + targets positions.
    """
    if converter not in CONVERTERS:
        raise ValueError(f"converter {converter!r}: use one of {CONVERTERS}")
    li, lt = _check_lengths(feature_lengths)
    props = mixing.effective_proportions(name, split)
    samples = {t: sample_lengths(t, sample, split) for t in props}
    rng = random.Random(seed)
    names = list(props)
    chosen = rng.choices(names, weights=[props[t] for t in names], k=draws)
    drawn = []
    for t in chosen:
        s = samples[t]
        j = rng.randrange(len(s.inputs))
        drawn.append((int(s.inputs[j]), int(s.targets[j])))
    per_row, nonpad, by_feature, unpacked_nonpad = _packing(drawn, li, lt, converter, pack)
    total = steps * batch_size * per_row
    tasks = []
    for t, p in props.items():
        info = registry.get_task_info(t)
        mean_i, mean_t, trunc_i, trunc_t = _truncated_means(samples[t], li, lt)
        n = total * p
        by_type = _by_type(info.templates, samples[t].types, n)
        size = info.num_examples[split]
        tasks.append(TaskStats(t, p, size, n, n / size, mean_i, mean_t, trunc_i, trunc_t, by_type))
    return MixtureStats(
        name, steps, batch_size, dict(feature_lengths), pack, converter, per_row, nonpad,
        by_feature, unpacked_nonpad, tuple(tasks),
    )  # fmt: skip


def _by_type(templates: Sequence[Template], sampled: Sequence[str], n: float) -> dict:
    """`n` examples split by template type: evenly over the templates, or, for records
    that carry their own type (a released collection's), as in the sample."""
    own = {template_type(t) for t in templates}
    if sampled and not set(sampled) <= own:
        counts = collections.Counter(sampled)
        return {k: n * c / len(sampled) for k, c in counts.items()}
    kinds = collections.Counter(template_type(t) for t in templates)
    return {k: n * c / len(templates) for k, c in kinds.items()}


def format_stats(st: MixtureStats) -> str:
    """A plain-text report of `st`."""
    li, lt = st.feature_lengths["inputs"], st.feature_lengths["targets"]
    by_feature = ", ".join(f"{k} {v:.1%}" for k, v in st.nonpadding_by_feature.items())
    lines = [
        f"{st.name}: {st.steps} steps x {st.batch_size} rows, inputs:{li} targets:{lt}, "
        f"{'packed' if st.pack else 'unpacked'}",
        f"expected examples {st.examples:,.0f} ({st.examples_per_row:.2f} per row), "
        f"tokens {st.tokens:,.0f} (non-padding)",
        f"non-padding ({st.converter}) {st.nonpadding:.1%} ({by_feature}); unpacked "
        f"{st.unpacked_nonpadding:.1%}; no packer can beat {st.packing_bound:.1%} here",
        "",
        f"{'task':32s} {'share':>7s} {'examples':>11s} {'epochs':>7s} {'tokens':>13s} "
        f"{'in/ex':>6s} {'tg/ex':>6s} {'trunc in':>8s} {'trunc tg':>8s}",
    ]
    for t in sorted(st.tasks, key=lambda t: -t.proportion):
        lines.append(
            f"{t.task:32s} {t.proportion:7.2%} {t.examples:11,.0f} {t.epochs:7.2f} "
            f"{t.tokens:13,.0f} {t.inputs_tokens:6.1f} {t.targets_tokens:6.1f} "
            f"{t.truncated_inputs:8.1%} {t.truncated_targets:8.1%}"
        )
    lines += ["", f"{'template type':32s} {'examples':>11s} {'tokens':>13s}"]
    for kind, (n, tok) in st.by_type().items():
        lines.append(f"{kind:32s} {n:11,.0f} {tok:13,.0f}")
    lines += ["", f"{'source':32s} {'tasks':>6s} {'records':>9s} {'examples':>11s} {'tokens':>13s}"]
    for source, (k, records, n, tok) in st.by_source().items():
        lines.append(f"{source:32s} {k:6d} {records:9,d} {n:11,.0f} {tok:13,.0f}")
    truncated = [t for t in st.tasks if t.truncated_inputs or t.truncated_targets]
    if truncated:
        lines.append(
            f"\nwarning: {len(truncated)} tasks have examples longer than the feature "
            "lengths; they are truncated, never dropped:"
        )
    for t in truncated:
        for feature, frac, length in (
            ("inputs", t.truncated_inputs, li),
            ("targets", t.truncated_targets, lt),
        ):
            if frac:
                lines.append(
                    f"  {t.task}: {feature} of {frac:.1%} of its examples (about "
                    f"{frac * t.examples:,.0f} of {t.examples:,.0f}) cut to {length} tokens"
                )
    return "\n".join(lines)
