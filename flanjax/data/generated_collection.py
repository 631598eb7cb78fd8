"""A generated collection in the released Flan 2022 format, for scale tests and benchmarks.

The real collection (millions of records, 1,836 tasks) cannot be downloaded here, so
`write_collection` writes one of any size in exactly its record format
(flan_collection.FIELDS), deterministically from a seed: tasks are rows of the
collection's task table (templates/flan_collection_info.csv: source, dataset,
category), sized by a Zipf-like law as real task sizes are, their records shuffled
across `shards` jsonl files per submix (<root>/<source>/train-SSSSS-of-NNNNN.jsonl),
each shard with its `.counts.json`, plus <root>/categories.json (task -> category).
Text is pseudo-words of realistic lengths: it measures the pipeline, not a model.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from flanjax.data import flan_collection as fc

_SYLLABLES = [a + b for a in "bcdfghklmnprstvwz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]


def _words(rng: np.random.Generator, n: int) -> list[str]:
    parts = rng.integers(0, len(_SYLLABLES), size=(n, 3))
    sizes = rng.integers(1, 4, size=n)
    return ["".join(_SYLLABLES[p] for p in row[:k]) for row, k in zip(parts, sizes, strict=True)]


def tasks_table(info_csv: str | os.PathLike, num_tasks: int, seed: int) -> list[tuple]:
    """(task_source, task_name, category) of `num_tasks` rows of the collection's table."""
    with open(info_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if num_tasks > len(rows):
        raise ValueError(f"{info_csv}: {len(rows)} task rows, fewer than {num_tasks}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), num_tasks, replace=False))
    out = []
    for i in chosen:
        r = rows[int(i)]
        name = f"{r['Dataset']}_{fc.cluster_name(r['Specific Task Category'])}_{int(i)}"
        out.append((fc.INFO_SOURCES[r["Source"]], name, r["Generic Task Category"]))
    return out


def _record(rng: np.random.Generator, source: str, task: str, kind: str, vocab: list) -> str:
    n_in = int(np.clip(rng.lognormal(4.3, 0.6), 8, 900))
    words = [vocab[i] for i in rng.integers(0, len(vocab), size=n_in)]
    text = " ".join(words)
    if kind.startswith("fs"):
        shots = [" ".join(words[k : k + 12]) + " -> " + words[k % len(words)] for k in (0, 12)]
        text = "\n\n".join([*shots, text])
    if kind.endswith("_opt"):
        text += "\nOPTIONS:\n- " + "\n- ".join(words[:3])
    target = " ".join(vocab[i] for i in rng.integers(0, len(vocab), size=int(rng.integers(1, 30))))
    rec = {"inputs": text, "targets": target, "task_source": source, "task_name": task,
           "template_type": kind}  # fmt: skip
    return json.dumps(rec)


def write_collection(
    root: str | os.PathLike,
    num_records: int,
    info_csv: str | os.PathLike,
    *,
    num_tasks: int = 1836,
    shards: int = 8,
    seed: int = 0,
) -> dict[str, int]:
    """Writes the collection under `root`; returns records per source."""
    rng = np.random.default_rng(seed)
    table = tasks_table(info_csv, num_tasks, seed)
    weights = 1.0 / (np.arange(num_tasks) + 10.0) ** 0.8
    rng.shuffle(weights)
    sizes = np.maximum(1, np.floor(weights / weights.sum() * num_records)).astype(np.int64)
    sizes[np.argmax(sizes)] += num_records - sizes.sum()
    vocab = _words(rng, 5000)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "categories.json").write_text(json.dumps({n: c for _, n, c in table}, indent=0))
    per_source = {}
    for source in fc.SOURCES:
        members = [i for i, (s, _, _) in enumerate(table) if s == source]
        if not members:
            continue
        order = np.repeat(np.asarray(members), sizes[members])
        rng.shuffle(order)
        per_source[source] = len(order)
        _write_source(root / source, order, table, shards, rng, vocab)
    return per_source


def _write_source(folder: Path, order: np.ndarray, table, shards: int, rng, vocab) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    kinds = rng.integers(0, len(fc.TEMPLATE_TYPES), size=len(order))
    bounds = np.linspace(0, len(order), shards + 1).astype(int)
    for s in range(shards):
        path = folder / f"train-{s:05d}-of-{shards:05d}.jsonl"
        counts: Counter = Counter()
        with open(path, "w") as f:
            for j in range(bounds[s], bounds[s + 1]):
                source, task, _ = table[order[j]]
                kind = fc.TEMPLATE_TYPES[kinds[j]]
                f.write(_record(rng, source, task, kind, vocab) + "\n")
                counts[task, kind] += 1
        fc.write_counts(str(path) + ".counts.json", counts)
