"""The input pipeline: deterministic, resumable from its state, sharded per host."""

from __future__ import annotations

import numpy as np
import pytest
import seqio

import flanjax.tasks  # noqa: F401  (registers the built-in suite)
from flanjax.data import mixing, registry, stats
from flanjax.data.batch import nonpadding_fraction
from flanjax.data.pipeline import BatchIterator, DataConfig

# Two tasks keep the graph small; a mixture, so its sampling must resume exactly too.
mixing.register_mixture("test.pipeline_mix", ["builtin.addition", "builtin.passage_where"])
MIX = DataConfig("test.pipeline_mix", {"inputs": 64, "targets": 16}, batch_size=16)


@pytest.fixture(scope="module")
def uninterrupted() -> list[dict[str, np.ndarray]]:
    return take(BatchIterator(MIX), 5)


def take(it: BatchIterator, n: int) -> list[dict[str, np.ndarray]]:
    return [next(it) for _ in range(n)]


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_restart_from_saved_state_yields_the_uninterrupted_batches(uninterrupted):
    first = BatchIterator(MIX)  # the same seed: the same batches
    head = take(first, 2)
    assert_same(head, uninterrupted[:2])
    state = first.state()
    assert state == {"batches_consumed": 2}
    del first  # the "crash"
    resumed = BatchIterator(MIX, start_batch=state["batches_consumed"])
    tail = take(resumed, 3)
    assert resumed.state() == {"batches_consumed": 5}
    assert_same(head + tail, uninterrupted)
    assert "encoder_segment_ids" in tail[0]  # packed rows, restored exactly too


def _inputs(batches: list[dict], vocab: seqio.Vocabulary) -> list[str]:
    rows = np.concatenate([b["encoder_input_tokens"] for b in batches])
    return [vocab.decode([int(t) for t in row if t > 1]) for row in rows]


def test_host_shards_are_disjoint_and_cover_the_data():
    cfg = DataConfig(
        "builtin.addition", {"inputs": 64, "targets": 8}, batch_size=8,
        split="validation", pack=False, shuffle=False,
    )  # fmt: skip
    vocab = seqio.get_mixture_or_task("builtin.addition").output_features["inputs"].vocabulary
    # 64 validation records, 2 hosts of 4 rows per global batch of 8: 8 batches = one epoch.
    shards = [
        _inputs(take(BatchIterator(cfg, process_index=i, process_count=2), 8), vocab)
        for i in range(2)
    ]
    info = registry.get_task_info("builtin.addition")
    source = seqio.get_mixture_or_task("builtin.addition").source.get_dataset("validation")
    rendered = [ex["inputs"].decode() for ex in source.as_numpy_iterator()]
    assert len(rendered) == info.num_examples["validation"] == 64
    assert len(shards[0]) == len(shards[1]) == 32
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(rendered)
    with pytest.raises(ValueError, match="batch size 8 is not divisible by 3 processes"):
        BatchIterator(cfg, process_index=0, process_count=3)


def test_packing_matches_the_stats_forecast(uninterrupted):
    """`flanjax tasks stats` forecasts what the real packed pipeline delivers."""
    batches = uninterrupted
    measured = np.mean([nonpadding_fraction(b) for b in batches])
    per_row = np.mean(
        [
            np.maximum(b["encoder_segment_ids"].max(1), b["decoder_segment_ids"].max(1))
            for b in batches
        ]
    )
    forecast = stats.mixture_stats(MIX.mixture_or_task_name, 5, 16, MIX.task_feature_lengths)
    assert measured == pytest.approx(forecast.nonpadding, abs=0.04)
    assert per_row == pytest.approx(forecast.examples_per_row, abs=0.1)
