"""The deterministic, resumable training input pipeline.

`seqio.get_dataset` with a fixed seed yields the same example order on every run
(shuffling, mixture sampling and packing are all seeded), so the pipeline's
position is one number: how many batches were consumed. Resuming skips that
many batches, giving exactly the batches an uninterrupted run would have seen.
Each process reads only its shard (`seqio.ShardInfo`) and produces its share of
the global batch.

Packing (`pack=True`) concatenates several examples into one row; segment ids
(1, 2, ... per example, 0 for padding) and per-example positions let the model
mask attention so that no example sees another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import numpy as np
import seqio

from flanjax.data import registry

FEATURE_CONVERTERS = {
    "enc_dec": seqio.EncDecFeatureConverter,
    "prefix_lm": seqio.PrefixLMFeatureConverter,
    "lm": seqio.DecoderFeatureConverter,
}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    batch_size: int  # global, across all processes
    split: str = "train"
    pack: bool = True
    shuffle: bool = True
    seed: int = 0
    feature_converter: str = "enc_dec"

    def __post_init__(self) -> None:
        if self.feature_converter not in FEATURE_CONVERTERS:
            raise ValueError(
                f"DataConfig.feature_converter {self.feature_converter!r}: "
                f"use one of {sorted(FEATURE_CONVERTERS)}"
            )
        if not isinstance(self.task_feature_lengths, Mapping):
            return  # a gin placeholder for a value still to be set: reported by gin_launch
        lengths = dict(self.task_feature_lengths)
        bad = {k: v for k, v in lengths.items() if not isinstance(v, int) or v < 1}
        if "targets" not in lengths or bad:
            raise ValueError(
                f"DataConfig.task_feature_lengths {lengths}: every converter needs a "
                "'targets' length, and every length must be a positive integer"
            )
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise ValueError(f"DataConfig.batch_size must be >= 1, got {self.batch_size}")


class BatchIterator(Iterator[dict[str, np.ndarray]]):
    """This process's share of each global batch, as numpy arrays."""

    def __init__(
        self,
        cfg: DataConfig,
        *,
        process_index: int = 0,
        process_count: int = 1,
        start_batch: int = 0,
    ):
        if cfg.batch_size % process_count:
            raise ValueError(
                f"batch size {cfg.batch_size} is not divisible by {process_count} processes"
            )
        registry.get_mixture_or_task(cfg.mixture_or_task_name)  # a clear error if unknown
        self.cfg = cfg
        self.batches_consumed = start_batch
        converter = FEATURE_CONVERTERS[cfg.feature_converter](pack=cfg.pack)
        ds = seqio.get_dataset(
            cfg.mixture_or_task_name,
            task_feature_lengths=dict(cfg.task_feature_lengths),
            dataset_split=cfg.split,
            shuffle=cfg.shuffle,
            num_epochs=None,
            shard_info=seqio.ShardInfo(process_index, process_count),
            seed=cfg.seed,
            feature_converter=converter,
            verbose=False,
        )
        ds = ds.batch(cfg.batch_size // process_count, drop_remainder=True)
        self._it = ds.skip(start_batch).prefetch(2).as_numpy_iterator()

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._it)
        self.batches_consumed += 1
        return batch

    def state(self) -> dict[str, int]:
        return {"batches_consumed": self.batches_consumed}


def nonpadding_fraction(batch: Mapping[str, np.ndarray]) -> float:
    """Fraction of input and target positions holding real tokens."""
    real = sum(
        int((batch[k] != 0).sum())
        for k in ("encoder_input_tokens", "decoder_target_tokens")
        if k in batch
    )
    total = sum(
        batch[k].size for k in ("encoder_input_tokens", "decoder_target_tokens") if k in batch
    )
    return real / max(total, 1)
