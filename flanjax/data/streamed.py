"""Templated tasks streamed from sharded files (sharded_files.py), as seqio Tasks.

`register_streamed_task` is `registry.register_templated_task` for data that does not
fit in memory: the seqio source reads the files inside tf.data (file shards split
across hosts, shuffled per epoch by seqio), and the first preprocessor renders each
record through its template in the pipeline, so no split is ever held in Python.
Record counts come from `ShardedFiles.count` (a cached counting pass) or the caller.

`TaskInfo.records(split)` of a streamed task is a `RecordStream`: its length is the
count and it reads records in order on demand (the evaluator's held-out splits);
`sample(n)` reads a few from each shard (`flanjax tasks stats`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

from flanjax.data import registry, sharded_files
from flanjax.data.sharded_files import ShardedFiles
from flanjax.data.templates import Template, TemplateError, pick_template

Keep = Callable[[Mapping[str, Any]], bool]  # records a task keeps (filters, caps)
RENDER_BATCH = 128  # records per Python call of the rendering step


class _Count:
    value = 0


RENDERED = _Count()  # records rendered by the pipelines of this process (benchmarks, tests)


class RecordStream(Sequence):
    """One split's records, read in order on demand (never all at once)."""

    def __init__(self, fmt: str, files: Sequence[str], count: int, keep: Keep | None):
        self.fmt, self.files, self.count, self.keep = fmt, list(files), count, keep
        self._it: Iterator[dict] | None = None
        self._next = 0
        self._last: dict | None = None

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict]:
        return self._records()

    def _records(self, per_file: int | None = None) -> Iterator[dict]:
        for rec in sharded_files.iter_records(self.fmt, self.files, per_file):
            if self.keep is None or self.keep(rec):
                yield _with_id(rec)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not 0 <= i < self.count:
            raise IndexError(i)
        if self._it is None or i < self._next - 1:
            self._it, self._next = self._records(), 0
        while self._next <= i:
            self._last, self._next = next(self._it), self._next + 1
        return self._last

    def sample(self, n: int) -> list[dict]:
        """Up to `n` records, the first few of every shard."""
        per_file = max(1, -(-n // len(self.files)))
        return list(self._records(per_file))[:n]


def _with_id(rec: dict) -> dict:
    """The record with an "id": its own, else its file's name and line."""
    if "id" in rec:
        return rec
    path, line = rec["_where"].rsplit(":", 1)
    return {**rec, "id": f"{os.path.basename(path)}:{line}"}


class _Source(seqio.FileDataSource):
    """seqio's file source over `ShardedFiles` in one format."""

    def __init__(self, files: ShardedFiles, counts: Mapping[str, int]):
        self.sharded = files
        fmts = {s: files.format(s) for s in files.splits}
        if len(set(fmts.values())) > 1:
            raise sharded_files.DataFileError(f"{files}: splits of several formats {fmts}")
        self.fmt = next(iter(fmts.values()))
        super().__init__(
            sharded_files.read_file_fn(self.fmt),
            split_to_filepattern={s: files.files(s) for s in files.splits},
            num_input_examples=dict(counts),
        )


def _render_fn(name: str, fmt: str, templates: tuple[Template, ...], seed: int, keep):
    """The Python step: a batch of record texts -> inputs, targets, ids, kept flags."""

    def render(texts, headers, files, lines):
        RENDERED.value += int(texts.shape[0])
        out: dict[str, list] = {"inputs": [], "targets": [], "id": [], "keep": []}
        for text, header, path, line in zip(
            texts.numpy(), headers.numpy(), files.numpy(), lines.numpy(), strict=True
        ):
            where = f"{path.decode()}:{int(line)}"
            try:
                rec = sharded_files.parse(fmt, text.decode(), header.decode(), where)
                rec = _with_id({**rec, "_where": where})
                kept = keep is None or keep(rec)
                template = pick_template(templates, str(rec["id"]), seed)
                ex = template.render(rec, task=name) if kept else None
            except (TemplateError, ValueError) as e:
                message = f"task {name!r}: {e}" if "task" not in str(e) else str(e)
                raise sharded_files.marked(message) from None
            out["inputs"].append(ex.inputs if ex else "")
            out["targets"].append(ex.targets if ex else "")
            out["id"].append(str(rec["id"]))
            out["keep"].append(kept)
        return out["inputs"], out["targets"], out["id"], out["keep"]

    def preprocess(ds: tf.data.Dataset) -> tf.data.Dataset:
        def call(b):
            types = [tf.string, tf.string, tf.string, tf.bool]
            args = [b["record"], b["header"], b["file"], b["line"]]
            outs = tf.py_function(render, args, types)
            for t in outs:
                t.set_shape([None])
            ins, tgs, ids, kept = outs
            return {"inputs": ins, "targets": tgs, "id": ids, "keep": kept}

        ds = ds.batch(RENDER_BATCH).map(call, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.unbatch().filter(lambda ex: ex["keep"])
        return ds.map(lambda ex: {k: ex[k] for k in ("inputs", "targets", "id")})

    return preprocess


def register_streamed_task(
    name: str,
    *,
    cluster: str,
    templates: Sequence[Template],
    files: ShardedFiles,
    vocabulary: seqio.Vocabulary,
    metric: str = "exact_match",
    template_seed: int = 0,
    keep: Keep | None = None,
    num_examples: Mapping[str, int] | None = None,
) -> registry.TaskInfo:
    """Registers a seqio Task of the records in `files`, rendered through `templates`.

    `keep`: which records the task keeps (a pure function of the record); then pass
    `num_examples` (the kept counts per split), since the files' counts would overstate
    them. The first record of each split is rendered through every template here, so a
    template naming a missing field fails at registration, naming task and file:line.
    """
    counts = dict(num_examples) if num_examples else {s: files.count(s) for s in files.splits}
    for split, n in counts.items():
        if n == 0:
            raise ValueError(f"task {name!r}: split {split!r} has no records")
    templates = tuple(templates)
    source = _Source(files, counts)
    streams = {s: RecordStream(source.fmt, files.files(s), counts[s], keep) for s in counts}
    first = next(iter(streams[next(iter(counts))]))
    registry.check_templates(name, templates, first)
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=source,
        preprocessors=[
            _render_fn(name, source.fmt, templates, template_seed, keep),
            seqio.preprocessors.tokenize,
            seqio.CacheDatasetPlaceholder(),
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=registry.text_features(vocabulary),
        metric_fns=[],
    )
    return registry.add_info(
        registry.TaskInfo(name, cluster, templates, streams.__getitem__, counts, metric)
    )
