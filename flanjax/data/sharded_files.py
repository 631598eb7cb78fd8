"""Records streamed from sharded files: jsonl, jsonl.gz, csv, tsv and parquet.

`ShardedFiles` names a task's files per split (glob patterns). The input
pipeline reads them with tf.data, lazily and in parallel (`read_file_fn`: one
file's records as {"record", "file", "line"} strings, never a whole split in
memory); `parse` turns one of them into a dict in the pipeline's Python step.
Record counts (for mixing rates) come from one counting pass per file, cached
under the flanjax cache folder and keyed by the file's path, size and mtime.

Errors name the place: a pattern that matches no file (or a listed shard that
is missing) names the pattern and split; a malformed record names its file and
line (parquet: its row), both at registration and from inside the pipeline
(`pipeline_error` turns tf.data's wrapped error back into a `DataFileError`).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import tensorflow as tf

from flanjax.data.readers import DataFileError

FORMATS = ("jsonl", "jsonl.gz", "csv", "tsv", "parquet")
CACHE_ENV = "FLANJAX_CACHE_DIR"
_MARK = "flanjax record error: "  # prefixes a record's error inside the pipeline


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "flanjax")


def format_of(path: str) -> str:
    for fmt in sorted(FORMATS, key=len, reverse=True):
        if path.endswith("." + fmt):
            return fmt
    raise DataFileError(f"{path}: unknown record format (file names end in one of {FORMATS})")


@dataclasses.dataclass(frozen=True)
class ShardedFiles:
    """A task's record files: split -> a glob pattern or a list of paths/patterns."""

    splits: Mapping[str, str | Sequence[str]]

    def files(self, split: str) -> list[str]:
        """The split's files, sorted; every pattern must match and every file exist."""
        patterns = self.splits[split]
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        found: list[str] = []
        for pattern in patterns:
            matches = sorted(glob.glob(pattern))
            if not matches:
                what = "no such shard" if not glob.has_magic(pattern) else "no file matches"
                raise FileNotFoundError(f"split {split!r}: {pattern}: {what}")
            found += matches
        formats = {format_of(f) for f in found}
        if len(formats) > 1:
            raise DataFileError(f"split {split!r}: shards of several formats {sorted(formats)}")
        return found

    def format(self, split: str) -> str:
        return format_of(self.files(split)[0])

    def count(self, split: str) -> int:
        return sum(count_records(f) for f in self.files(split))


# --- counting ------------------------------------------------------------------------------
def cache_path(path: str, kind: str) -> str:
    """Where a fact of file `path` of kind `kind` is cached: keyed by its absolute path,
    size and mtime, so a changed file is read again."""
    st = os.stat(path)
    key = hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return os.path.join(cache_dir(), kind, key.hexdigest() + ".json")


def count_records(path: str) -> int:
    """Records in `path` (non-blank lines; csv/tsv: rows after the header; parquet: rows),
    from the cache when the file is unchanged, else counted once and cached."""
    cached = cache_path(path, "record_counts")
    try:
        with open(cached) as f:
            return int(json.load(f)["count"])
    except (OSError, ValueError, KeyError):
        pass
    n = _count(path)
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    tmp = f"{cached}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"path": os.path.abspath(path), "count": n}, f)
    os.replace(tmp, cached)
    return n


def _count(path: str) -> int:
    fmt = format_of(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    opener = gzip.open if fmt == "jsonl.gz" else open
    with opener(path, "rb") as f:
        n = sum(1 for line in f if line.strip())
    return n - 1 if fmt in ("csv", "tsv") and n else n


# --- reading in the pipeline ----------------------------------------------------------------
def read_file_fn(fmt: str):
    """tf.data reader of one file (a scalar string tensor) in format `fmt`: its records
    as {"record": text, "file": path, "line": 1-based line (parquet: row)}."""
    if fmt == "parquet":
        return _read_parquet

    def read(path: tf.Tensor) -> tf.data.Dataset:
        compression = "GZIP" if fmt == "jsonl.gz" else ""
        lines = tf.data.TextLineDataset(path, compression_type=compression)
        header = tf.constant("")
        if fmt in ("csv", "tsv"):
            header = lines.take(1).get_single_element()
        numbered = lines.enumerate(start=1)
        if fmt in ("csv", "tsv"):
            numbered = numbered.skip(1)
        numbered = numbered.filter(lambda n, text: tf.strings.length(tf.strings.strip(text)) > 0)
        return numbered.map(
            lambda n, text: {"record": text, "header": header, "file": path, "line": n}
        )

    return read


def _read_parquet(path: tf.Tensor) -> tf.data.Dataset:
    groups = tf.py_function(_parquet_groups, [path], tf.int64)
    rows = tf.data.Dataset.range(groups).map(
        lambda g: tf.py_function(_parquet_group, [path, g], tf.string)
    )
    return (
        rows.unbatch()
        .enumerate(start=1)
        .map(lambda n, text: {"record": text, "header": "", "file": path, "line": n})
    )


def _parquet_groups(path: tf.Tensor) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path.numpy().decode()).num_row_groups


def _parquet_group(path: tf.Tensor, group: tf.Tensor) -> tf.Tensor:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path.numpy().decode()).read_row_group(int(group.numpy()))
    return tf.constant([json.dumps(r) for r in table.to_pylist()], tf.string)


# --- parsing --------------------------------------------------------------------------------
def parse(fmt: str, text: str, header: str, where: str) -> dict[str, Any]:
    """One record from its text (a JSON object; csv/tsv: a line under `header`)."""
    if fmt in ("csv", "tsv"):
        delimiter = "," if fmt == "csv" else "\t"
        names = next(csv.reader([header], delimiter=delimiter))
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
        if len(rows) != 1 or len(rows[0]) != len(names):
            raise DataFileError(
                f"{where}: expected {len(names)} fields {names} on one line, got "
                f"{len(rows[0]) if rows else 0} (streamed csv/tsv records are one line each)"
            )
        return dict(zip(names, rows[0], strict=True))
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFileError(f"{where}: invalid JSON ({e})") from None
    if not isinstance(record, dict):
        raise DataFileError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    return record


def marked(error: Exception | str) -> Exception:
    """`error` re-raised inside the pipeline, marked so `pipeline_error` finds it."""
    return ValueError(_MARK + str(error))


def pipeline_error(error: tf.errors.OpError) -> Exception:
    """A record's error raised inside tf.data (wrapped by TF) as a `DataFileError`; any
    other tf.data error as itself."""
    text = str(error.message)
    if _MARK not in text:
        return error
    return DataFileError(text.split(_MARK, 1)[1].split("\n")[0].strip())


# --- reading in Python (evaluation, stats) ----------------------------------------------------
def iter_records(fmt: str, files: Sequence[str], per_file: int | None = None) -> Iterator[dict]:
    """The files' records in order (at most `per_file` of each), each with `_where`."""
    for path in files:
        for i, (where, text, header) in enumerate(_python_lines(fmt, path)):
            if per_file is not None and i >= per_file:
                break
            yield {**parse(fmt, text, header, where), "_where": where}


def _python_lines(fmt: str, path: str) -> Iterator[tuple[str, str, str]]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        f = pq.ParquetFile(path)
        n = 0
        for g in range(f.num_row_groups):
            for row in f.read_row_group(g).to_pylist():
                n += 1
                yield f"{path}:{n}", json.dumps(row), ""
        return
    opener = gzip.open if fmt == "jsonl.gz" else open
    header = ""
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if fmt in ("csv", "tsv") and n == 1:
                header = line
            elif line.strip():
                yield f"{path}:{n}", line, header
