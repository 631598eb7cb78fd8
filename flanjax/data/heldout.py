"""Held-out cluster splits: FLAN's zero-shot protocol as validated objects.

To evaluate a model zero-shot on task cluster c, FLAN instruction-tunes on
every cluster but c and evaluates on c's datasets. A :class:`ClusterSuite`
holds cluster -> tasks (from FLAN's `flan_clusters.json`, or from the
registry's `TaskInfo.cluster`) and the task -> dataset map; `suite.split(c)`
gives the :class:`HeldOutSplit` for c, which is the source of truth for the
seqio mixtures `<suite>.train_without_<c>` and `<suite>.eval_<c>`.

Exclusion rules (FLAN, Wei et al. 2021): besides c itself, the training list
leaves out clusters too close to c. `RELATED_CLUSTERS` holds the pairs, in
both directions: holding out `reading_comprehension` or `common_sense` also
drops `read_comp_and_common_sense` (and holding that out drops both), and
`paraphrase` and `entailment` exclude each other. The relation is not
transitive: holding out `reading_comprehension` keeps `common_sense`.

A split refuses (raising :class:`HeldOutError`, naming task and dataset) a
training list that holds a task of an excluded cluster or shares a dataset
with an evaluation task. Two tasks share a dataset when their datasets are
equal after `SHARED_SOURCES` (a dataset built from another's examples:
`cot_gsm8k` holds GSM8K's problems). Content contamination - a training task
whose records contain an evaluation example under another name - is checked
on rendered inputs (`split.check_content()`, `find_contamination`): every
evaluation record is rendered through every template of its task, and so is
every training record; inputs are normalized (lower case, words only) and
compared whole (a hash) and by word n-grams (13 by default, as GPT-3's
contamination study). N-grams that recur in many evaluation renders of one
template (`boilerplate_fraction`, the template's own wording) are not counted.
An input shorter than n words is matched only whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from flanjax.data import catalog, mixing, registry
from flanjax.data.mixing import DEFAULT_CAP
from flanjax.data.templates import TemplateError

log = logging.getLogger(__name__)

CLUSTERS_FILE = "flan_clusters.json"
RELATED_CLUSTERS: tuple[tuple[str, str], ...] = (
    ("reading_comprehension", "read_comp_and_common_sense"),
    ("common_sense", "read_comp_and_common_sense"),
    ("paraphrase", "entailment"),
)
# dataset -> the dataset whose examples it is built from (same data, other format).
SHARED_SOURCES: Mapping[str, str] = {"cot_gsm8k": "gsm8k"}


class HeldOutError(ValueError):
    """A training list that would leak the held-out cluster; names task and dataset."""


class ContaminationError(HeldOutError):
    """Training examples contain evaluation examples; names both tasks and the first case."""


def related_clusters(
    cluster: str, pairs: Iterable[tuple[str, str]] = RELATED_CLUSTERS
) -> tuple[str, ...]:
    """The clusters that holding out `cluster` also drops from training, in rule order."""
    out = []
    for a, b in pairs:
        if cluster == a:
            out.append(b)
        elif cluster == b:
            out.append(a)
    return tuple(dict.fromkeys(out))


@dataclasses.dataclass(frozen=True)
class HeldOutSplit:
    """Training and evaluation tasks for one held-out cluster; validated on creation.

    Attributes:
      suite: mixture-name prefix ("flan", "builtin").
      cluster: the held-out cluster.
      train: tasks to instruction-tune on.
      eval: the held-out cluster's tasks.
      excluded: clusters absent from training: `cluster`, then those the
        rules drop (present in the suite or not).
      cluster_of, dataset_of: task -> cluster, task -> canonical dataset, for
        every task in `train` and `eval`.
    """

    suite: str
    cluster: str
    train: tuple[str, ...]
    eval: tuple[str, ...]
    excluded: tuple[str, ...]
    cluster_of: Mapping[str, str]
    dataset_of: Mapping[str, str]

    def __post_init__(self) -> None:
        if not self.eval:
            raise HeldOutError(f"held-out cluster {self.cluster!r}: no evaluation tasks")
        for t in (*self.train, *self.eval):
            if t not in self.cluster_of or t not in self.dataset_of:
                raise HeldOutError(f"task {t!r}: unknown cluster or dataset")
        for t in self.eval:
            if self.cluster_of[t] != self.cluster:
                raise HeldOutError(
                    f"evaluation task {t!r} is in cluster {self.cluster_of[t]!r}, "
                    f"not the held-out {self.cluster!r}"
                )
        self._check_training()

    def _check_training(self) -> None:
        eval_datasets: dict[str, str] = {}
        for t in self.eval:
            eval_datasets.setdefault(self.dataset_of[t], t)
        for t in self.train:
            c, d = self.cluster_of[t], self.dataset_of[t]
            if t in self.eval:
                raise HeldOutError(f"task {t!r} is both trained on and held out ({self.cluster!r})")
            if c in self.excluded:
                why = "is held out" if c == self.cluster else f"is excluded with {self.cluster!r}"
                raise HeldOutError(
                    f"training task {t!r} (dataset {d!r}) is in cluster {c!r}, which {why}"
                )
            if d in eval_datasets:
                raise HeldOutError(
                    f"training task {t!r} shares dataset {d!r} with evaluation task "
                    f"{eval_datasets[d]!r} of held-out cluster {self.cluster!r}"
                )

    @property
    def train_mixture(self) -> str:
        return f"{self.suite}.train_without_{self.cluster}"

    @property
    def eval_mixture(self) -> str:
        return f"{self.suite}.eval_{self.cluster}"

    def check_content(self, **kwargs) -> None:
        """Raises ContaminationError if a training example holds an evaluation one.

        Needs registered tasks; keyword arguments go to
        `find_contamination`.
        """
        report = find_contamination(self.train, self.eval, **kwargs)
        report.raise_if_contaminated(f"training mixture {self.train_mixture!r}", self.cluster)

    def register(
        self,
        cap: int | None = DEFAULT_CAP,
        temperature: float = 1.0,
        check_content: bool = False,
        max_records: int | None = None,
    ) -> None:
        """Registers the train and eval mixtures (examples-proportional rates).

        With `check_content`, first refuses a training list that contains an
        evaluation example (reading at most `max_records` records per task and
        split; all if None). A split without training tasks registers only the
        eval mixture.
        """
        if check_content:
            self.check_content(max_records=max_records)
        if self.train:
            mixing.register_mixture(self.train_mixture, self.train, cap, temperature)
        else:
            log.warning("%s: no training tasks left, not registered", self.train_mixture)
        mixing.register_mixture(self.eval_mixture, self.eval, cap, temperature)


@dataclasses.dataclass(frozen=True)
class ClusterSuite:
    """Clusters of tasks, and the rules that derive held-out splits from them.

    Attributes:
      suite: mixture-name prefix.
      clusters: cluster -> its tasks (each task in exactly one cluster).
      datasets: task -> canonical dataset (tasks sharing one share data).
      related: cluster pairs that exclude each other (RELATED_CLUSTERS).
    """

    suite: str
    clusters: Mapping[str, tuple[str, ...]]
    datasets: Mapping[str, str]
    related: tuple[tuple[str, str], ...] = RELATED_CLUSTERS

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for c, tasks in self.clusters.items():
            if not tasks:
                raise HeldOutError(f"cluster {c!r} has no tasks")
            for t in tasks:
                if t in seen:
                    raise HeldOutError(f"task {t!r} is in clusters {seen[t]!r} and {c!r}")
                seen[t] = c
        missing = sorted(set(seen) - set(self.datasets))
        if missing:
            raise HeldOutError(f"no dataset given for tasks {missing}")

    @classmethod
    def from_cluster_file(
        cls, path: str | Path, suite: str = "flan", related=RELATED_CLUSTERS
    ) -> ClusterSuite:
        """FLAN's flan_clusters.json: dataset names serve as task names.

        Checks that every cluster named in `related` is in the file.
        """
        clusters = {
            c: tuple(ds) for c, ds in json.loads(Path(path).read_text())["clusters"].items()
        }
        unknown = sorted({c for pair in related for c in pair} - set(clusters))
        if unknown:
            raise HeldOutError(f"{path}: exclusion rules name unknown clusters {unknown}")
        names = [t for ts in clusters.values() for t in ts]
        return cls(suite, clusters, {t: canonical_dataset(t) for t in names}, tuple(related))

    @classmethod
    def from_registry(
        cls,
        suite: str,
        tasks: Sequence[str],
        related=RELATED_CLUSTERS,
        datasets: Mapping[str, str] | None = None,
    ) -> ClusterSuite:
        """Registered flanjax tasks, grouped by `TaskInfo.cluster`.

        A task's dataset is its name without the "<suite>." prefix (then
        `SHARED_SOURCES`), unless `datasets` says otherwise.
        """
        clusters: dict[str, list[str]] = {}
        for t in tasks:
            clusters.setdefault(registry.get_task_info(t).cluster, []).append(t)
        given = dict(datasets or {})
        names = {t: given.get(t) or canonical_dataset(t.removeprefix(f"{suite}.")) for t in tasks}
        return cls(suite, {c: tuple(ts) for c, ts in clusters.items()}, names, tuple(related))

    @property
    def cluster_of(self) -> dict[str, str]:
        return {t: c for c, ts in self.clusters.items() for t in ts}

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t for ts in self.clusters.values() for t in ts)

    def excluded_with(self, cluster: str) -> tuple[str, ...]:
        """`cluster` and the clusters the rules drop with it."""
        return (cluster, *related_clusters(cluster, self.related))

    def split(self, cluster: str, train: Sequence[str] | None = None) -> HeldOutSplit:
        """The split holding out `cluster`.

        `train` None derives the training list: every task outside the excluded
        clusters that shares no dataset with the held-out tasks. A given
        `train` is validated instead, and refused with an error naming the
        offending task and dataset.
        """
        if cluster not in self.clusters:
            raise HeldOutError(
                f"unknown cluster {cluster!r} in suite {self.suite!r}; "
                f"clusters: {', '.join(self.clusters)}"
            )
        excluded = self.excluded_with(cluster)
        held = self.clusters[cluster]
        if train is None:
            held_data = {self.datasets[t] for t in held}
            train = [
                t
                for c, ts in self.clusters.items()
                if c not in excluded
                for t in ts
                if self.datasets[t] not in held_data
            ]
        unknown = [t for t in train if t not in self.datasets]
        if unknown:
            raise HeldOutError(f"training tasks {unknown} are not in suite {self.suite!r}")
        involved = (*train, *held)
        return HeldOutSplit(
            self.suite,
            cluster,
            tuple(train),
            held,
            excluded,
            {t: self.cluster_of[t] for t in involved},
            {t: self.datasets[t] for t in involved},
        )

    def splits(self) -> dict[str, HeldOutSplit]:
        """cluster -> its held-out split, for every cluster."""
        return {c: self.split(c) for c in self.clusters}

    def check_mixture(self, mixture: str, cluster: str) -> HeldOutSplit:
        """Validates a registered training mixture against held-out `cluster`."""
        return self.split(cluster, train=registry.tasks_of(mixture))

    def register(
        self, cap: int | None = DEFAULT_CAP, temperature: float = 1.0, check_content: bool = False
    ) -> dict[str, HeldOutSplit]:
        """Registers every split's mixtures; returns the splits."""
        splits = self.splits()
        for s in splits.values():
            s.register(cap, temperature, check_content)
        return splits


def canonical_dataset(name: str, shared: Mapping[str, str] = SHARED_SOURCES) -> str:
    """The dataset whose examples `name` holds ("cot_gsm8k" -> "gsm8k")."""
    seen = {name}
    while name in shared:
        name = shared[name]
        if name in seen:
            raise HeldOutError(f"SHARED_SOURCES has a cycle through {name!r}")
        seen.add(name)
    return name


def load_flan_suite(data_dir: str | Path | None = None) -> ClusterSuite:
    """The 17 FLAN clusters of `<data_dir>/flan_clusters.json` (default data dir)."""
    root = Path(data_dir) if data_dir is not None else catalog.default_data_dir()
    if root is None:
        raise FileNotFoundError("no data directory: set FLANJAX_DATA_DIR")
    return ClusterSuite.from_cluster_file(root / CLUSTERS_FILE)


def register_cluster_mixtures(prefix: str, task_names: Sequence[str]) -> dict[str, list[str]]:
    """For each cluster c: `{prefix}.train_without_{c}` and `{prefix}.eval_{c}`.

    The splits follow FLAN's exclusion rules and refuse shared datasets (the
    registry's `TaskInfo.cluster` groups the tasks). Also registers
    `{prefix}.all` (every task). Returns cluster -> task names.
    """
    mixing.register_mixture(f"{prefix}.all", task_names, DEFAULT_CAP)
    suite = ClusterSuite.from_registry(prefix, task_names)
    suite.register(cap=DEFAULT_CAP)
    return {c: list(ts) for c, ts in suite.clusters.items()}


# --- Content contamination -----------------------------------------------------------

_WORD = re.compile(r"\w+")
NGRAM = 13
TRAIN_SPLITS = ("train",)


def normalized_words(text: str) -> list[str]:
    """Lower-cased words (runs of letters, digits, underscore): no case, space or punctuation."""
    return _WORD.findall(text.lower())


def _gram_hashes(words: Sequence[str], n: int) -> Iterator[int]:
    return map(hash, zip(*(words[i:] for i in range(n)), strict=False))


@dataclasses.dataclass(frozen=True)
class Rendered:
    """One record's rendered inputs through one template, and where it came from."""

    task: str
    template: str
    record: str
    inputs: str


def rendered_inputs(
    task: str, splits: Sequence[str], max_records: int | None = None
) -> Iterator[Rendered]:
    """Every record of `splits` (those the task has) through every template of `task`.

    A template that cannot render a record (a promptsource branch it does not
    cover) is skipped for that record. Records are rendered under an empty id:
    the option style (and few-shot draw) then depends on the template alone, so
    a record copied into another task under another id renders identically.
    """
    info = registry.get_task_info(task)
    for split in splits:
        if split not in info.num_examples:
            continue
        records = info.records(split)
        records = records if max_records is None else records[:max_records]
        for rec in records:
            for t in info.templates:
                try:
                    ex = t.render({**rec, "id": ""}, task=task)
                except TemplateError:
                    continue
                yield Rendered(task, t.id, str(rec.get("id", "")), ex.inputs)


def eval_splits(task: str) -> tuple[str, ...]:
    """What evaluation may read: every split but "train" ("train" if it is the only one)."""
    splits = tuple(registry.get_task_info(task).num_examples)
    return tuple(s for s in splits if s != "train") or splits


class EvalIndex:
    """Whole-input hashes and n-gram hashes of evaluation renders.

    N-grams found in at least `max(min_boilerplate, boilerplate_fraction *
    renders)` renders of one (task, template) are that template's wording and
    are left out of the index.
    """

    def __init__(
        self,
        examples: Iterable[Rendered],
        n: int = NGRAM,
        boilerplate_fraction: float = 0.1,
        min_boilerplate: int = 3,
    ) -> None:
        self.n = n
        self.examples: list[Rendered] = list(examples)
        self.whole: dict[int, int] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        for i, ex in enumerate(self.examples):
            self.whole.setdefault(hash(" ".join(normalized_words(ex.inputs))), i)
            groups.setdefault((ex.task, ex.template), []).append(i)
        keys: list[int] = []
        vals: list[int] = []
        for members in groups.values():
            grams = [
                set(_gram_hashes(normalized_words(self.examples[i].inputs), n)) for i in members
            ]
            df = Counter(h for g in grams for h in g)
            limit = max(min_boilerplate, boilerplate_fraction * len(members))
            common = {h for h, c in df.items() if c >= limit}
            for i, g in zip(members, grams, strict=True):
                kept = g - common
                keys.extend(kept)
                vals.extend([i] * len(kept))
        order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
        self.keys = np.asarray(keys, dtype=np.int64)[order]
        self.vals = np.asarray(vals, dtype=np.int64)[order]

    def matches(self, inputs: str) -> dict[str, tuple[int, str, str]]:
        """Eval task -> (eval example index, "exact" / "ngram", the shared text)."""
        words = normalized_words(inputs)
        text = " ".join(words)
        out: dict[str, tuple[int, str, str]] = {}
        whole = self.whole.get(hash(text))
        if whole is not None and " ".join(normalized_words(self.examples[whole].inputs)) == text:
            out[self.examples[whole].task] = (whole, "exact", text)
        if len(words) < self.n or not len(self.keys):
            return out
        hashes = np.fromiter(_gram_hashes(words, self.n), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        for j in np.flatnonzero(self.keys[pos] == hashes):
            k = int(pos[j])  # the first of the equal keys: every eval render holding the gram
            while k < len(self.keys) and self.keys[k] == hashes[j]:
                i = int(self.vals[k])
                out.setdefault(self.examples[i].task, (i, "ngram", " ".join(words[j : j + self.n])))
                k += 1
        return out


@dataclasses.dataclass
class PairCount:
    """Matches between one training task and one evaluation task."""

    train_examples: int = 0
    exact: int = 0
    ngram: int = 0
    train_records: set[str] = dataclasses.field(default_factory=set)
    eval_records: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class ContaminationReport:
    """What `find_contamination` found: counts per (train task, eval task), first case."""

    n: int
    eval_examples: int
    train_examples: int
    pairs: dict[tuple[str, str], PairCount]
    first: tuple[Rendered, Rendered, str, str] | None  # train, eval, kind, shared text

    @property
    def contaminated(self) -> bool:
        return bool(self.pairs)

    def message(self, where: str, cluster: str) -> str:
        lines = [f"{where} contains evaluation examples of held-out cluster {cluster!r}:"]
        for (train, ev), c in sorted(self.pairs.items()):
            lines.append(
                f"  training task {train!r}: {c.train_examples} rendered examples "
                f"({len(c.train_records)} records) contain {len(c.eval_records)} evaluation "
                f"records of {ev!r} ({c.exact} exact, {c.ngram} by {self.n}-gram)"
            )
        if self.first is not None:
            tr, ev, kind, text = self.first
            lines.append(
                f"  first: training {tr.task!r} template {tr.template!r} record "
                f"{tr.record!r} matches ({kind}) evaluation {ev.task!r} template "
                f"{ev.template!r} record {ev.record!r} on {text[:200]!r}"
            )
        lines.append(
            f"  ({self.train_examples} training and {self.eval_examples} evaluation "
            "renders compared)"
        )
        return "\n".join(lines)

    def raise_if_contaminated(self, where: str, cluster: str) -> None:
        if self.contaminated:
            raise ContaminationError(self.message(where, cluster))


def find_contamination(
    train: Sequence[str],
    eval: Sequence[str],
    *,
    n: int = NGRAM,
    max_records: int | None = None,
    boilerplate_fraction: float = 0.1,
) -> ContaminationReport:
    """Rendered training inputs (train split) that contain an evaluation input.

    Evaluation inputs: every non-train split of the `eval` tasks, through
    every template. Training inputs: the "train" split of the `train` tasks,
    through every template. `max_records` caps the records read per split.
    """
    renders = (r for t in eval for r in rendered_inputs(t, eval_splits(t), max_records))
    index = EvalIndex(renders, n, boilerplate_fraction)
    pairs: dict[tuple[str, str], PairCount] = {}
    first = None
    scanned = 0
    for task in train:
        for ex in rendered_inputs(task, TRAIN_SPLITS, max_records):
            scanned += 1
            for ev_task, (i, kind, text) in index.matches(ex.inputs).items():
                c = pairs.setdefault((task, ev_task), PairCount())
                c.train_examples += 1
                c.exact += kind == "exact"
                c.ngram += kind == "ngram"
                c.train_records.add(ex.record)
                c.eval_records.add(index.examples[i].record)
                if first is None:
                    first = (ex, index.examples[i], kind, text)
    return ContaminationReport(n, len(index.examples), scanned, pairs, first)
