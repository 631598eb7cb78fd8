"""Tasks streamed from sharded files, and the pipeline's constant-time resume."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import seqio

from flanjax.data import registry, sharded_files, streamed
from flanjax.data.pipeline import BatchIterator, DataConfig
from flanjax.data.readers import DataFileError
from flanjax.data.sharded_files import ShardedFiles
from flanjax.data.templates import Template as T

VOCAB = seqio.ByteVocabulary()
TEMPLATES = [T("t0", "Add {a} and {b}.", "{c}"), T("t1", "{a} + {b} =", "{c}")]


def _write_jsonl(path, rows) -> None:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def _shards(folder, n_files=4, per_file=60, bad_line=None) -> str:
    for s in range(n_files):
        rows = [{"a": s * 1000 + i, "b": i % 7, "c": s * 1000 + i + i % 7} for i in range(per_file)]
        _write_jsonl(folder / f"train-{s:05d}-of-{n_files:05d}.jsonl", rows)
    if bad_line is not None:
        path = folder / f"train-{n_files - 1:05d}-of-{n_files:05d}.jsonl"
        lines = path.read_text().splitlines()
        lines[bad_line - 1] = '{"a": 1, "b": '
        path.write_text("\n".join(lines) + "\n")
    return str(folder / "train-*.jsonl")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(sharded_files.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _register(name, pattern, **kw) -> registry.TaskInfo:
    files = ShardedFiles({"train": pattern})
    return streamed.register_streamed_task(
        name, cluster="sums", templates=TEMPLATES, files=files, vocabulary=VOCAB, **kw
    )


def _texts(batches, feature="encoder_input_tokens") -> list[str]:
    rows = np.concatenate([b[feature] for b in batches])
    return [VOCAB.decode([int(t) for t in row if t > 1]) for row in rows]


def test_each_format_streams_its_records_with_counts_from_a_cached_pass(tmp_path, cache):
    rows = [{"a": "1", "b": "2", "c": "3"}, {"a": "4", "b": "5", "c": "9"}]
    _write_jsonl(tmp_path / "x.jsonl.gz", rows)
    (tmp_path / "x.csv").write_text('a,b,c\n1,2,3\n\n"4",5,9\n')
    (tmp_path / "x.tsv").write_text("a\tb\tc\n1\t2\t3\n4\t5\t9\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "x.parquet", row_group_size=1)
    for ext in ("jsonl.gz", "csv", "tsv", "parquet"):
        info = _register(f"test.streamed_{ext.replace('.', '_')}", str(tmp_path / f"x.{ext}"))
        assert info.num_examples == {"train": 2}
        records = info.records("train")
        assert [(r["a"], r["c"]) for r in records] == [("1", "3"), ("4", "9")], ext
        task = seqio.get_mixture_or_task(info.name)
        ds = task.get_dataset({"inputs": 32, "targets": 8}, "train", shuffle=False)
        got = [
            (VOCAB.decode(ex["inputs"][:-1].tolist()), ex["id"].decode())
            for ex in ds.as_numpy_iterator()
        ]
        line = {"csv": 4, "tsv": 3}.get(ext, 2)  # csv: a blank line before the second row
        assert got[1] == ("Add 4 and 5." if got[1][0].startswith("Add") else "4 + 5 =",
                          f"x.{ext}:{line}")  # fmt: skip
    assert len(list((cache / "record_counts").iterdir())) == 4  # one cached count per file
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")  # changed: counted again
    assert sharded_files.count_records(str(tmp_path / "x.csv")) == 1


def test_rendering_is_literal_and_per_record(tmp_path, cache):
    info = _register("test.streamed_literal", _shards(tmp_path, n_files=1, per_file=3))
    task = seqio.get_mixture_or_task(info.name)
    ds = task.get_dataset({"inputs": 32, "targets": 8}, "train", shuffle=False)
    got = [
        (VOCAB.decode(ex["inputs"][:-1].tolist()), ex["id"].decode())
        for ex in ds.as_numpy_iterator()
    ]
    assert got == [
        ("0 + 0 =", "train-00000-of-00001.jsonl:1"),
        ("1 + 1 =", "train-00000-of-00001.jsonl:2"),
        ("Add 2 and 2.", "train-00000-of-00001.jsonl:3"),
    ]


def test_resume_restores_the_position_in_time_independent_of_the_batch(tmp_path, cache):
    _register("test.streamed_resume", _shards(tmp_path, n_files=4, per_file=400))
    cfg = DataConfig("test.streamed_resume", {"inputs": 32, "targets": 8}, batch_size=4)
    run = BatchIterator(cfg)
    batches = [next(run) for _ in range(64)]
    saved = {}
    replay = BatchIterator(cfg)
    for k in range(1, 61):
        next(replay)
        if k in (2, 60):
            replay.save_position(str(tmp_path / f"pos{k}"))
            saved[k] = streamed.RENDERED.value
    rendered_after = {}
    for k in (2, 60):
        resumed = BatchIterator(cfg, start_batch=k, restore_from=str(tmp_path / f"pos{k}"))
        before = streamed.RENDERED.value
        tail = [next(resumed) for _ in range(4)]
        rendered_after[k] = streamed.RENDERED.value - before
        assert resumed.state() == {"batches_consumed": k + 4}
        for x, y in zip(tail, batches[k : k + 4], strict=True):
            for f in x:
                np.testing.assert_array_equal(x[f], y[f], err_msg=f)
    skipped = BatchIterator(cfg, start_batch=60)
    before = streamed.RENDERED.value
    next(skipped)
    replayed = streamed.RENDERED.value - before
    # Restoring renders only the records of the next few batches (and the read-ahead),
    # at batch 60 as at batch 2; replaying renders everything consumed before.
    assert replayed > saved[60] - saved[2]
    assert rendered_after[60] <= rendered_after[2] + 4 * streamed.RENDER_BATCH
    assert rendered_after[60] < replayed / 3


def test_hosts_read_disjoint_file_shards_covering_the_data(tmp_path, cache):
    _register("test.streamed_hosts", _shards(tmp_path, n_files=4, per_file=16))
    cfg = DataConfig(
        "test.streamed_hosts", {"inputs": 32, "targets": 8}, batch_size=8, pack=False,
        shuffle=False,
    )  # fmt: skip
    # 64 records, 2 hosts of 4 rows per global batch: 8 batches are one epoch each.
    hosts = [_texts([next(it) for _ in range(8)]) for it in (
        BatchIterator(cfg, process_index=i, process_count=2) for i in range(2))]  # fmt: skip
    assert len(hosts[0]) == len(hosts[1]) == 32
    assert not set(hosts[0]) & set(hosts[1])
    assert len(set(hosts[0]) | set(hosts[1])) == 64


def test_a_malformed_record_in_a_shard_is_named_with_its_file_and_line(tmp_path, cache):
    pattern = _shards(tmp_path, n_files=2, per_file=50, bad_line=37)
    _register("test.streamed_bad", pattern)  # its first record is fine
    cfg = DataConfig("test.streamed_bad", {"inputs": 32, "targets": 8}, batch_size=4, pack=False)
    it = BatchIterator(cfg)
    with pytest.raises(DataFileError, match=r"train-00001-of-00002\.jsonl:37: invalid JSON"):
        for _ in range(100):
            next(it)


def test_a_missing_shard_or_pattern_is_named(tmp_path, cache):
    _shards(tmp_path, n_files=1, per_file=2)
    present = str(tmp_path / "train-00000-of-00001.jsonl")
    missing = str(tmp_path / "train-00001-of-00002.jsonl")
    with pytest.raises(FileNotFoundError, match=f"split 'train': {missing}: no such shard"):
        _register("test.streamed_missing", [present, missing])
    with pytest.raises(FileNotFoundError, match=r"no file matches"):
        _register("test.streamed_missing", str(tmp_path / "valid-*.jsonl"))
    with pytest.raises(DataFileError, match=r"unknown record format"):
        _register("test.streamed_missing", str(tmp_path / "*"))
