"""The Flan 2022 collection as released: streamed submixes, caps, template types, clusters.

A record of the released collection is one JSON object (jsonl or jsonl.gz shards, or
parquet) with the fields `inputs`, `targets` (already rendered through a template),
`task_source` (Flan2021, T0, NIv2, CoT, Dialog), `task_name` and `template_type`
(zs_opt, zs_noopt, fs_opt, fs_noopt). `register_collection` makes one streamed task per
submix (data/streamed.py: nothing is loaded into memory) and a mixture of them at the
submix rates (the published ones by default), keeping only the chosen template types,
at most `max_per_task` records of each task per epoch, and no task of a held-out
cluster. Clusters are the collection's generic task categories
(templates/flan_collection_info.csv); a held-out cluster's zero-shot records are
registered as an evaluation task.

Counts per (task, template type), which set the kept sizes and the caps, come from a
`<shard>.counts.json` beside a shard when there is one, else from one pass over the
shard, cached like `sharded_files.count_records`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import seqio

from flanjax.data import mixing, sharded_files, streamed
from flanjax.data.readers import DataFileError
from flanjax.data.sharded_files import ShardedFiles
from flanjax.data.templates import Template

SOURCES = ("Flan2021", "T0", "NIv2", "CoT", "Dialog")
TEMPLATE_TYPES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
ZERO_SHOT = ("zs_opt", "zs_noopt")
# The Flan 2022 mixture's submix rates (Longpre et al. 2023; the FLAN repository).
PUBLISHED_RATES = {"Flan2021": 0.4, "T0": 0.32, "NIv2": 0.2, "CoT": 0.05, "Dialog": 0.03}
FIELDS = ("inputs", "targets", "task_source", "task_name", "template_type")
# The info table's names of the sources (Source column) -> the records' task_source.
INFO_SOURCES = {"FLAN": "Flan2021", "FLAN/T0": "T0", "T0": "T0", "NIv2": "NIv2", "CoT": "CoT",
                "Dialog": "Dialog", "Program Synthesis": "Dialog"}  # fmt: skip
UNCATEGORIZED = "uncategorized"
RELEASED = Template("released", "{inputs}", "{targets}", metric="exact_match")


def read_categories(info_csv: str | os.PathLike) -> dict[str, str]:
    """task_name (the table's Dataset) -> its generic task category (the first listed)."""
    out: dict[str, str] = {}
    with open(info_csv, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["Dataset"], row["Generic Task Category"])
    return out


def load_categories(root: str | os.PathLike, info_csv: str | os.PathLike | None) -> dict:
    """task_name -> category: <root>/categories.json when present (a generated
    collection), else the collection's task table `info_csv`."""
    beside = Path(root, "categories.json")
    if beside.is_file():
        return json.loads(beside.read_text())
    if info_csv is None:
        raise FileNotFoundError(f"{beside}: no such file, and no task table given")
    return read_categories(info_csv)


def category_of(task_name: str, categories: Mapping[str, str]) -> str | None:
    """The category of `task_name`: its own entry, else that of the longest table name it
    starts with (released names extend the table's, e.g. `anli_r1` for `anli`)."""
    if task_name in categories:
        return categories[task_name]
    prefixes = [n for n in categories if task_name.startswith(n)]
    return categories[max(prefixes, key=len)] if prefixes else None


def cluster_name(category: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in category.lower()).strip("_")


@dataclasses.dataclass(frozen=True)
class CollectionConfig:
    """Which records of a collection train.

    files: task_source -> shard patterns (ShardedFiles syntax); `files_in(root)` makes
      the layout <root>/<source>/*.jsonl* of `write_collection`.
    rates: submix rates (sources missing from `files` are dropped, the rest renormalized).
    template_types: the released template types kept.
    max_per_task: at most this many records per task and epoch (None: all); a larger
      task keeps a deterministic subset (by a hash of the record's place).
    heldout: clusters (cluster_name of a category) whose tasks never train.
    """

    files: Mapping[str, str | Sequence[str]]
    rates: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(PUBLISHED_RATES))
    template_types: tuple[str, ...] = TEMPLATE_TYPES
    max_per_task: int | None = None
    heldout: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [s for s in self.files if s not in SOURCES]
        if bad:
            raise ValueError(f"CollectionConfig.files: unknown task_source {bad}; use {SOURCES}")
        bad = [t for t in self.template_types if t not in TEMPLATE_TYPES]
        if bad or not self.template_types:
            raise ValueError(f"CollectionConfig.template_types {bad}: use some of {TEMPLATE_TYPES}")


def files_in(root: str | os.PathLike) -> dict[str, str]:
    """The sources present under `root`: <root>/<source>/*.jsonl (or .jsonl.gz, .parquet)."""
    found = {}
    for source in SOURCES:
        for ext in ("jsonl", "jsonl.gz", "parquet"):
            if Path(root, source).is_dir() and any(Path(root, source).glob(f"*.{ext}")):
                found[source] = str(Path(root, source, f"*.{ext}"))
                break
    if not found:
        raise FileNotFoundError(f"{root}: no submix folder ({', '.join(SOURCES)})")
    return found


# --- counts -----------------------------------------------------------------------------------
def shard_counts(path: str) -> Counter:
    """(task_name, template_type) -> records in shard `path`."""
    beside = path + ".counts.json"
    if os.path.exists(beside):
        with open(beside) as f:
            return Counter({tuple(k.split("\t")): v for k, v in json.load(f).items()})
    cached = sharded_files.cache_path(path, "collection_counts")
    if os.path.exists(cached):
        with open(cached) as f:
            return Counter({tuple(k.split("\t")): v for k, v in json.load(f).items()})
    counts: Counter = Counter()
    fmt = sharded_files.format_of(path)
    for rec in sharded_files.iter_records(fmt, [path]):
        check_record(rec)
        counts[rec["task_name"], rec["template_type"]] += 1
    write_counts(cached, counts)
    return counts


def write_counts(path: str, counts: Mapping[tuple[str, str], int]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({f"{t}\t{k}": n for (t, k), n in sorted(counts.items())}, f)
    os.replace(tmp, path)


def check_record(rec: Mapping) -> None:
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise DataFileError(f"{rec.get('_where', '?')}: a collection record needs {missing}")
    if rec["template_type"] not in TEMPLATE_TYPES:
        raise DataFileError(
            f"{rec.get('_where', '?')}: template_type {rec['template_type']!r} is not one of "
            f"{TEMPLATE_TYPES}"
        )


# --- registration -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Keep:
    """A pure, picklable filter: template type, held-out cluster, per-task cap."""

    types: frozenset[str]
    excluded: frozenset[str]
    keep_fraction: Mapping[str, float]

    def __call__(self, rec: Mapping) -> bool:
        check_record(rec)
        name = rec["task_name"]
        if rec["template_type"] not in self.types or name in self.excluded:
            return False
        fraction = self.keep_fraction.get(name, 1.0)
        if fraction >= 1.0:
            return True
        digest = hashlib.blake2b(rec["_where"].encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64 < fraction


def _kept(counts: Counter, cfg: CollectionConfig, excluded: set[str]) -> tuple[int, dict]:
    per_task: Counter = Counter()
    for (name, kind), n in counts.items():
        if kind in cfg.template_types and name not in excluded:
            per_task[name] += n
    cap = cfg.max_per_task
    fractions = {t: cap / n for t, n in per_task.items() if cap is not None and n > cap}
    return sum(min(n, cap or n) for n in per_task.values()), fractions


def register_collection(
    name: str,
    cfg: CollectionConfig,
    vocabulary: seqio.Vocabulary,
    categories: Mapping[str, str],
) -> dict[str, list[str]]:
    """Registers `name.<source>` per submix, mixture `name`, and for each held-out cluster
    the mixture `name.eval_<cluster>` of tasks `name.eval_<cluster>.<source>` (the cluster's
    zero-shot records, split "validation"). Returns {"train": [...], "eval": [...]}."""
    rates: dict[str, float] = {}
    evals: dict[str, list[str]] = {}
    for source, patterns in cfg.files.items():
        files = ShardedFiles({"train": patterns})
        counts: Counter = Counter()
        for path in files.files("train"):
            counts += shard_counts(path)
        clusters = {n: cluster_name(category_of(n, categories) or UNCATEGORIZED)
                    for n, _ in counts}  # fmt: skip
        excluded = {n for n, c in clusters.items() if c in cfg.heldout}
        size, fractions = _kept(counts, cfg, excluded)
        keep = _Keep(frozenset(cfg.template_types), frozenset(excluded), fractions)
        task = f"{name}.{source.lower()}"
        if size and cfg.rates.get(source, 0) > 0:
            streamed.register_streamed_task(
                task, cluster=f"flan2022_{source.lower()}", templates=[RELEASED], files=files,
                vocabulary=vocabulary, keep=keep, num_examples={"train": size},
            )  # fmt: skip
            rates[task] = cfg.rates[source]
        for cluster in cfg.heldout:
            members = {n for n, c in clusters.items() if c == cluster}
            n_eval = sum(v for (t, k), v in counts.items() if t in members and k in ZERO_SHOT)
            if not n_eval:
                continue
            others = frozenset(set(clusters) - members)
            streamed.register_streamed_task(  # never trained on: their records evaluate
                f"{name}.eval_{cluster}.{source.lower()}", cluster=cluster,
                templates=[RELEASED], files=ShardedFiles({"validation": patterns}),
                vocabulary=vocabulary, keep=_Keep(frozenset(ZERO_SHOT), others, {}),
                num_examples={"validation": n_eval},
            )  # fmt: skip
            evals.setdefault(cluster, []).append(f"{name}.eval_{cluster}.{source.lower()}")
    if not rates:
        raise ValueError(f"collection {name!r}: no records left to train on ({cfg})")
    mixing.register_rated(name, rates)
    for cluster, tasks in evals.items():
        mixing.register_rated(f"{name}.eval_{cluster}", dict.fromkeys(tasks, 1.0))
    return {"train": sorted(rates), "eval": sorted(t for ts in evals.values() for t in ts)}
