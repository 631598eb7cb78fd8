"""The deterministic, resumable training input pipeline.

`seqio.get_dataset` with a fixed seed yields the same example order on every run
(shuffling, mixture sampling and packing are all seeded), so the pipeline's
position is one number: how many batches were consumed. Resuming skips that
many batches, giving exactly the batches an uninterrupted run would have seen.
Each process reads only its shard (`seqio.ShardInfo`) and produces its share of
the global batch.

Resuming is constant-time: with each checkpoint the run writes the tf.data
iterator's own state (`BatchIterator.save_position`: shuffle buffers, mixture
sampler, packer, file readers' offsets; as T5X checkpoints its datasets) and
the resumed iterator restores it (`restore_from`) instead of replaying every
consumed batch. Without a saved position (an older checkpoint, another process
count) it falls back to skipping `start_batch` batches, which yields the same
batches in time linear in the batch index.

Packing (`pack=True`) concatenates several examples into one row; segment ids
(1, 2, ... per example, 0 for padding) and per-example positions let the model
mask attention so that no example sees another.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping

import numpy as np
import seqio
import tensorflow as tf

from flanjax.data import binding, registry, sharded_files, vocabularies
from flanjax.data import chat as chat_lib
from flanjax.data.chat import PLAIN, ChatFormat

FEATURE_CONVERTERS = {
    "enc_dec": seqio.EncDecFeatureConverter,
    "prefix_lm": seqio.PrefixLMFeatureConverter,
    "lm": seqio.DecoderFeatureConverter,
}
AUTO = "auto"  # feature_converter: chosen by the run for its model family
TASK_VOCABULARY = "task"  # vocabulary: every task's own
MODEL = "model"  # vocabulary: the run's checkpoint's (MODEL_DIR/vocab/)
PROMPT_FORMATS = ("seqio", "plain", "chat")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The training data: a task or mixture, its lengths, batch and tokenization.

    feature_converter: "enc_dec", "prefix_lm", "lm", or "auto" (the run picks
      enc_dec for T5 and prefix_lm for a decoder-only model).
    vocabulary: None: the model's (its checkpoint's vocab/ folder when it has
      one, else the tasks' own); "task": the tasks' own; or a spec ("byte", a
      SentencePiece .model, a tokenizer.json or its folder). Tasks are
      re-tokenized with it (data/binding.py); the run refuses one that differs
      from its checkpoint's.
    prompt_format: how a decoder-only model sees an (inputs, targets) pair:
      "seqio" (seqio's layout: inputs + EOS, targets + EOS), "plain" (inputs,
      "\n", targets + EOS: for Hugging Face tokenizers), "chat" (a user and an
      assistant turn through `chat_template`, data/chat.py; the loss on the
      assistant's tokens), or None (the run picks "plain" for a decoder with a
      Hugging Face tokenizer, else "seqio").
    chat_template: with "chat": a tokenizer folder holding the template (None:
      the run's checkpoint's vocab/).
    cache_dir: read the tasks from the offline preprocessing cache in this folder
      (`flanjax cache`, data/cache.py) instead of their sources.
    """

    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    batch_size: int  # global, across all processes
    split: str = "train"
    pack: bool = True
    shuffle: bool = True
    seed: int = 0
    feature_converter: str = "enc_dec"
    vocabulary: str | None = None
    prompt_format: str | None = None
    chat_template: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.prompt_format not in (None, *PROMPT_FORMATS):
            raise ValueError(
                f"DataConfig.prompt_format {self.prompt_format!r}: use one of {PROMPT_FORMATS}"
            )
        if self.feature_converter not in (*FEATURE_CONVERTERS, AUTO):
            raise ValueError(
                f"DataConfig.feature_converter {self.feature_converter!r}: "
                f"use one of {[*sorted(FEATURE_CONVERTERS), AUTO]}"
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


def data_vocabulary(cfg: DataConfig) -> seqio.Vocabulary | None:
    """The vocabulary `cfg` tokenizes with; None: every task's own."""
    if cfg.vocabulary in (None, TASK_VOCABULARY):
        return None
    if cfg.vocabulary == MODEL:
        raise ValueError("DataConfig.vocabulary 'model' is resolved by the run")
    return _vocabulary(cfg.vocabulary)


@functools.cache
def _vocabulary(spec: str) -> seqio.Vocabulary:
    return vocabularies.vocabulary_from_spec(spec)


def pair_format(cfg: DataConfig) -> ChatFormat | None:
    """The layout of `cfg.prompt_format` (None: seqio's own)."""
    if cfg.prompt_format in (None, "seqio"):
        return None
    if cfg.prompt_format == "plain":
        return PLAIN
    if cfg.chat_template is None:
        raise ValueError("DataConfig.prompt_format 'chat' needs a chat_template folder")
    return chat_lib.load(cfg.chat_template)


def task_name(cfg: DataConfig) -> str:
    """The registered name the pipeline reads: the task or mixture bound to the
    configured vocabulary and chat template (data/binding.py)."""
    vocab = data_vocabulary(cfg)
    chat = pair_format(cfg)
    if vocab is None and chat is None:
        return cfg.mixture_or_task_name
    if vocab is None:
        vocab = binding.task_vocabulary(cfg.mixture_or_task_name)
    return binding.bind(cfg.mixture_or_task_name, vocab, chat)


def feature_converter(cfg: DataConfig) -> seqio.FeatureConverter:
    if cfg.feature_converter == AUTO:
        raise ValueError("DataConfig.feature_converter 'auto' is resolved by the run")
    return FEATURE_CONVERTERS[cfg.feature_converter](pack=cfg.pack)


class BatchIterator(Iterator[dict[str, np.ndarray]]):
    """This process's share of each global batch, as numpy arrays.

    `restore_from`: a position written by `save_position` after `start_batch`
    batches; the iterator continues from there. Otherwise `start_batch` batches
    are skipped (replayed)."""

    def __init__(
        self,
        cfg: DataConfig,
        *,
        process_index: int = 0,
        process_count: int = 1,
        start_batch: int = 0,
        restore_from: str | None = None,
    ):
        if cfg.batch_size % process_count:
            raise ValueError(
                f"batch size {cfg.batch_size} is not divisible by {process_count} processes"
            )
        registry.get_mixture_or_task(cfg.mixture_or_task_name)  # a clear error if unknown
        self.cfg = cfg
        self.batches_consumed = start_batch
        ds = _batches(cfg, seqio.ShardInfo(process_index, process_count))
        if restore_from is None:
            ds = ds.skip(start_batch)
        self._it = iter(ds.prefetch(2))
        if restore_from is not None:
            self._checkpoint().read(restore_from).assert_consumed()

    def __next__(self) -> dict[str, np.ndarray]:
        try:
            batch = next(self._it)
        except tf.errors.OpError as e:  # a record that fails in the pipeline's Python code
            raise sharded_files.pipeline_error(e) from None
        self.batches_consumed += 1
        return {k: v.numpy() for k, v in batch.items()}

    def state(self) -> dict[str, int]:
        return {"batches_consumed": self.batches_consumed}

    def save_position(self, prefix: str) -> None:
        """Writes the iterator's position (tf.train.Checkpoint files `prefix`.*)."""
        self._checkpoint().write(prefix)

    def _checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(iterator=self._it)


def _batches(cfg: DataConfig, shard: seqio.ShardInfo) -> tf.data.Dataset:
    if cfg.cache_dir and cfg.cache_dir not in seqio.get_global_cache_dirs():
        seqio.add_global_cache_dirs([cfg.cache_dir])
    ds = seqio.get_dataset(
        task_name(cfg),
        task_feature_lengths=dict(cfg.task_feature_lengths),
        dataset_split=cfg.split,
        shuffle=cfg.shuffle,
        num_epochs=None,
        shard_info=shard,
        seed=cfg.seed,
        feature_converter=feature_converter(cfg),
        use_cached=bool(cfg.cache_dir),
        verbose=False,
    )
    ds = ds.batch(cfg.batch_size // shard.num_shards, drop_remainder=True)
    options = tf.data.Options()
    # The pipeline's Python functions (template rendering of streamed records) are pure:
    # their outputs depend on their inputs only, so the iterator's state is complete.
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return ds.with_options(options)
