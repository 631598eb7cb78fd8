"""The offline preprocessing cache: seqio's Beam pipeline on DirectRunner, read by training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import seqio

from flanjax.data import cache, sharded_files, streamed
from flanjax.data.pipeline import BatchIterator, DataConfig
from flanjax.data.sharded_files import ShardedFiles
from flanjax.data.templates import Template as T

VOCAB = seqio.ByteVocabulary()


def test_beam_cache_runs_on_direct_runner_and_training_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv(sharded_files.CACHE_ENV, str(tmp_path / "counts"))
    src = tmp_path / "src"
    src.mkdir()
    for s in range(2):
        with open(src / f"train-{s}.jsonl", "w") as f:
            for i in range(12):
                f.write(json.dumps({"q": f"q{s}-{i}", "a": f"a{i}"}) + "\n")
    streamed.register_streamed_task(
        "test.cached", cluster="c", templates=[T("t0", "Say {q}.", "{a}")],
        files=ShardedFiles({"train": str(src / "*.jsonl")}), vocabulary=VOCAB,
    )  # fmt: skip
    written = cache.cache_tasks(["test.cached"], str(tmp_path / "cache"), min_shards=2)
    folder = tmp_path / "cache" / "test.cached"
    assert written == [str(folder)]
    info = json.loads((folder / "info.train.json").read_text())
    features = ["id", "inputs", "inputs_pretokenized", "targets", "targets_pretokenized"]
    assert sorted(info["features"]) == features
    assert json.loads((folder / "stats.train.json").read_text())["examples"] == 24
    assert len(list(folder.glob("train.tfrecord-*-of-00002"))) == 2
    shutil.rmtree(src)  # training must now read the cache, not the source
    cfg = DataConfig(
        "test.cached", {"inputs": 16, "targets": 4}, batch_size=4, pack=False, shuffle=False,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    it = BatchIterator(cfg)
    rows = np.concatenate([next(it)["encoder_input_tokens"] for _ in range(6)])
    texts = {VOCAB.decode([int(t) for t in row if t > 1]) for row in rows}
    assert texts == {f"Say q{s}-{i}." for s in range(2) for i in range(12)}
