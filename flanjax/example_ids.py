"""Which examples (id, task, token counts) make up each training batch: a debug stream.

The feature converter drops everything but the model's features, so the packed
batches do not say which examples they hold. This module reads the same seqio
stream a second time, unpacked: the same tasks, seed, shuffling, mixture
sampling and shard (`seqio.ShardInfo`) as `BatchIterator`, keeping the `id`
feature and tagging every example with its task (the mixture's sampling is
rebuilt from seqio's own pieces, with a tag map on each task's dataset; the
sampler's choices depend on its seed only, not on the data). Packing keeps the
stream's order and numbers a row's examples 1, 2, ... in its segment ids, so a
packed batch holds the next sum-over-rows-of-max-segment-id examples.

It costs a second tokenization of the input, so it is off by default
(`TrainConfig.record_example_ids`); with it on the trainer writes each step's
ids and per-task counts to MODEL_DIR/example_ids/process_<i>.jsonl and logs
per-task example and token counts as metrics.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
import seqio
import tensorflow as tf

from flanjax.data import batch as batch_keys
from flanjax.data import binding, pipeline, registry
from flanjax.data.pipeline import BatchIterator, DataConfig


@dataclasses.dataclass(frozen=True)
class ExampleRecord:
    id: str
    task: str
    input_tokens: int
    target_tokens: int


def examples_in_batch(batch: Mapping[str, np.ndarray]) -> int:
    """The number of examples in a feature-converted (packed or not) batch."""
    segs = [batch[k] for k in batch_keys.SEGMENT_KEYS if k in batch]
    if not segs:
        return int(batch[batch_keys.DECODER_TARGET_TOKENS].shape[0])
    return int(np.maximum.reduce([s.max(axis=1) for s in segs]).sum())


def _tag(index: int):
    def fn(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        empty = tf.zeros([0], tf.int32)
        return {
            "id": ex["id"] if "id" in ex else tf.constant(""),
            "task": tf.constant(index, tf.int32),
            "inputs": tf.size(ex.get("inputs", empty)),
            "targets": tf.size(ex["targets"]),
        }

    return fn


def tagged_dataset(cfg: DataConfig, shard: seqio.ShardInfo) -> tuple[tf.data.Dataset, list[str]]:
    """(the unpacked example stream of `cfg`'s shard with id/task/lengths, task names)."""
    obj = registry.get_mixture_or_task(pipeline.task_name(cfg))
    lengths = dict(cfg.task_feature_lengths)
    common = dict(
        sequence_length=lengths,
        split=cfg.split,
        shuffle=cfg.shuffle,
        seed=cfg.seed,
        shard_info=shard,
        num_epochs=None,
    )
    if isinstance(obj, seqio.Task):
        return obj.get_dataset(**common).map(_tag(0)), [binding.base_name(obj.name)]
    # seqio.Mixture.get_dataset, with each task's examples tagged before sampling.
    tasks = [t for t in obj.tasks if cfg.split in t.splits]
    keys = {*obj.output_features, "id"}
    datasets = [obj.get_task_dataset(t, keys, **common).map(_tag(i)) for i, t in enumerate(tasks)]
    rates = obj._get_all_mixing_rates(tasks)
    seed = cfg.seed if cfg.seed is not None else (None if cfg.shuffle else 42)
    return obj._sample_fn(datasets, rates, seed), [binding.base_name(t.name) for t in tasks]


class ExampleIdStream:
    """The examples behind each batch of a `BatchIterator` over the same shard."""

    def __init__(
        self,
        cfg: DataConfig,
        *,
        process_index: int = 0,
        process_count: int = 1,
        start_batch: int = 0,
    ):
        ds, self.task_names = tagged_dataset(cfg, seqio.ShardInfo(process_index, process_count))
        self._it: Iterator[dict] = ds.as_numpy_iterator()
        skip = 0
        if start_batch:  # count the examples of the batches already consumed
            replay = BatchIterator(cfg, process_index=process_index, process_count=process_count)
            skip = sum(examples_in_batch(next(replay)) for _ in range(start_batch))
        for _ in range(skip):
            next(self._it)

    def take(self, batch: Mapping[str, np.ndarray]) -> list[ExampleRecord]:
        """The records of the examples packed into `batch` (the next batch), in order."""
        out = []
        for _ in range(examples_in_batch(batch)):
            ex = next(self._it)
            out.append(
                ExampleRecord(
                    ex["id"].decode(),
                    self.task_names[int(ex["task"])],
                    int(ex["inputs"]),
                    int(ex["targets"]),
                )
            )
        return out


def task_counts(records: list[ExampleRecord], task_names: list[str]) -> np.ndarray:
    """[tasks, 3] counts: examples, input tokens, target tokens."""
    counts = np.zeros((len(task_names), 3), np.int64)
    index = {t: i for i, t in enumerate(task_names)}
    for r in records:
        counts[index[r.task]] += (1, r.input_tokens, r.target_tokens)
    return counts


class ExampleLog:
    """The trainer's debug record (`cfg` a TrainConfig with `record_example_ids`): each
    step's example ids to MODEL_DIR/example_ids/process_<i>.jsonl, and per-task
    example/token counts (summed over the data shards) as metrics."""

    def __init__(self, cfg: Any, shard: int, num_shards: int, start_batch: int):
        self.stream = ExampleIdStream(
            cfg.data, process_index=shard, process_count=num_shards, start_batch=start_batch
        )
        self.tasks = self.stream.task_names
        self.counts = np.zeros((len(self.tasks), 3), np.int64)
        self.scale = num_shards / jax.process_count()  # processes sharing a shard count once
        path = os.path.join(cfg.model_dir, "example_ids", f"process_{jax.process_index()}.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = False
        if os.path.exists(path) and os.path.getsize(path):  # a killed run's half line?
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                partial = f.read(1) != b"\n"
        self.file = open(path, "a")  # noqa: SIM115  (open for the whole run; closed in close())
        if partial:
            self.file.write("\n")

    def add(self, step: int, batch: dict[str, np.ndarray]) -> None:
        records = self.stream.take(batch)
        self.counts += task_counts(records, self.tasks)
        self.file.write(json.dumps({"step": step, "ids": [r.id for r in records]}) + "\n")
        self.file.flush()

    def read_and_reset(self) -> dict[str, float]:
        counts = self.counts
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            counts = np.asarray(multihost_utils.process_allgather(counts)).sum(0) * self.scale
        self.counts = np.zeros_like(self.counts)
        out = {}
        for name, (examples, inputs, targets) in zip(self.tasks, counts):
            out[f"task_examples/{name}"] = float(examples)
            out[f"task_tokens/{name}"] = float(inputs + targets)
        return out

    def close(self) -> None:
        self.file.close()
