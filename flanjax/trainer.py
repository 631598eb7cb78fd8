"""The training run: the one place where data, model, optimizer and checkpoints meet.

A run starts from, in order: the latest checkpoint in MODEL_DIR (exact resume:
state and data position); else `initial_checkpoint_path` (parameters only,
fresh optimizer state and data; the step counter continues from that
checkpoint's step, as in T5X, so TRAIN_STEPS counts the total); else a random
initialization at step 0. It trains until step `train_steps`.

Multi-host: `distributed.initialize` joins the processes first; each process
reads only the shard of the global batch its devices hold
(`partitioning.data_layout`), the global arrays are assembled with
`jax.make_array_from_process_local_data`, and Orbax writes every checkpoint
cooperatively (each process its own shards; JSON items from process 0).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time

import jax
import numpy as np
from flax import nnx

from flanjax import checkpointing, distributed, flops, optimizers, partitioning, train_state
from flanjax.data.pipeline import BatchIterator, DataConfig, nonpadding_fraction
from flanjax.metric_writers import MetricWriter, Progress
from flanjax.models import ModelConfig
from flanjax.train_step import LossConfig, TrainState, train_step

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. Gin binds it in gin_configs/runs/*.gin (T5X's macro names).

    microbatches: gradient accumulation: the global batch is processed in this
      many sequential slices, with the gradient of the whole batch (see
      train_step). The batch per data shard must divide by it.
    initial_checkpoint_path: a MODEL_DIR (its latest checkpoint) or one
      MODEL_DIR/checkpoints/<step> folder to take parameters from when MODEL_DIR
      has no checkpoint yet; e.g. the output of `flanjax convert --from hf`.
    record_example_ids: debug: record the ids of the examples in every batch
      and log per-task example/token counts (a second read of the data; see
      flanjax/example_ids.py).
    """

    model_dir: str
    data: DataConfig
    model: ModelConfig
    train_steps: int
    optimizer: optimizers.OptimizerConfig = optimizers.OptimizerConfig()
    mesh: partitioning.MeshConfig = partitioning.MeshConfig()
    checkpoint: checkpointing.CheckpointConfig = checkpointing.CheckpointConfig()
    loss: LossConfig = LossConfig()
    seed: int = 0
    log_every: int = 10
    show_progress: bool = True
    microbatches: int = 1
    initial_checkpoint_path: str | None = None
    distributed: distributed.DistributedConfig = distributed.DistributedConfig()
    record_example_ids: bool = False


@dataclasses.dataclass
class Start:
    """Where a run starts: its state, the state's shardings, and the data position."""

    state: TrainState
    shardings: TrainState
    batches_consumed: int
    resumed: bool


def _from_initial_checkpoint(cfg: TrainConfig, tx, abstract, shardings) -> TrainState:
    """Parameters from `cfg.initial_checkpoint_path`, fresh optimizer state."""
    model_dir, step = checkpointing.locate_checkpoint(cfg.initial_checkpoint_path)
    src = checkpointing.Checkpointer(model_dir, read_only=True)
    meta = src.read_meta(step)
    checkpointing.check_same_model(meta, cfg.model, f"{model_dir} (initial checkpoint)")
    target = train_state.with_shardings(abstract.params, shardings.params)
    params = src.restore_params(step, target)
    src.close()
    start = int(meta.get("step", step))
    log.info("initialized parameters from %s step %d", model_dir, start)
    return train_state.state_from_params(params, tx, shardings, start)


def _restore_or_init(cfg: TrainConfig, tx, mesh, ckpt: checkpointing.Checkpointer) -> Start:
    """The run's start: MODEL_DIR's latest checkpoint, the initial checkpoint, or fresh."""
    rules = cfg.mesh.rules
    abstract = train_state.abstract_state(cfg.model, tx, cfg.seed)
    shardings = train_state.state_shardings(abstract, mesh, rules)
    latest = ckpt.latest_step()
    if latest is not None:
        checkpointing.check_same_model(ckpt.read_meta(latest), cfg.model, ckpt.directory)
        target = train_state.with_shardings(abstract, shardings)
        (params, opt_state), data_state, meta = ckpt.restore(latest, target)
        step = jax.device_put(np.int32(meta["step"]), shardings.step)
        log.info("resumed from %s step %d", ckpt.directory, meta["step"])
        state = TrainState(step, params, opt_state)
        return Start(state, shardings, int(data_state["batches_consumed"]), True)
    if cfg.initial_checkpoint_path:
        state = _from_initial_checkpoint(cfg, tx, abstract, shardings)
        return Start(state, shardings, 0, False)
    state, shardings = train_state.init_state(cfg.model, tx, mesh, rules, cfg.seed)
    return Start(state, shardings, 0, False)


def compile_train_step(
    cfg: TrainConfig, tx, schedule, mesh, shardings: TrainState, *, donate: bool = True
):
    """The jitted train step: state sharded by the rules (donated), batch sharded on
    the batch axes; activations constrained by the same rules while tracing."""
    rules = cfg.mesh.rules
    graphdef = train_state.graphdef_of(cfg.model, rules)
    dropout = getattr(cfg.model, "dropout_rate", 0.0) > 0
    step_fn = functools.partial(
        train_step,
        graphdef=graphdef,
        tx=tx,
        schedule=schedule,
        loss_cfg=cfg.loss,
        dropout_seed=cfg.seed if dropout else None,
        microbatches=cfg.microbatches,
    )

    @functools.wraps(train_step)
    def with_rules(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        with nnx.logical_axis_rules(rules), jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return step_fn(state, batch)

    return jax.jit(
        with_rules,
        in_shardings=(shardings, partitioning.batch_sharding(mesh, rules)),
        out_shardings=(shardings, None),
        donate_argnums=(0,) if donate else (),
    )


def check_microbatches(cfg: TrainConfig, mesh) -> None:
    """Refuses a microbatch count that does not split every data shard's rows evenly."""
    shards = int(np.prod([mesh.shape[a] for a in partitioning.BATCH_AXES]))
    if cfg.microbatches < 1 or cfg.data.batch_size % (cfg.microbatches * shards):
        raise ValueError(
            f"TrainConfig.microbatches {cfg.microbatches}: batch size {cfg.data.batch_size} "
            f"must divide into {cfg.microbatches} microbatches x {shards} batch shards"
        )


class Throughput:
    """Tokens/s (input and target positions, padding included), the non-padding
    fraction, and MFU (with a known device peak) over the steps since the last read."""

    def __init__(self, step_flops: float | None = None) -> None:
        self.step_flops = step_flops
        self.read_and_reset()

    def add(self, local_batch: dict[str, np.ndarray], num_shards: int) -> None:
        keys = ("encoder_input_tokens", "decoder_target_tokens")
        self.tokens += num_shards * sum(local_batch[k].size for k in keys if k in local_batch)
        self.nonpad += nonpadding_fraction(local_batch)
        self.steps += 1

    def read_and_reset(self) -> dict[str, float]:
        now = time.perf_counter()
        out = {}
        if getattr(self, "steps", 0):
            seconds = now - self.t0
            out = {
                "tokens_per_sec": self.tokens / seconds,
                "nonpadding_fraction": self.nonpad / self.steps,
            }
            if self.step_flops:
                flops_per_sec = self.step_flops * self.steps / seconds
                out["model_tflops_per_sec"] = flops_per_sec / 1e12
                utilization = flops.mfu(flops_per_sec)
                if utilization is not None:
                    out["mfu"] = utilization
        self.tokens, self.nonpad, self.steps, self.t0 = 0, 0.0, 0, now
        return out


class ExampleLog:
    """Debug: each step's example ids to MODEL_DIR/example_ids/process_<i>.jsonl, and
    per-task example/token counts (summed over the data shards) as metrics."""

    def __init__(self, cfg: TrainConfig, shard: int, num_shards: int, start_batch: int):
        from flanjax import example_ids

        self.mod = example_ids
        self.stream = example_ids.ExampleIdStream(
            cfg.data, process_index=shard, process_count=num_shards, start_batch=start_batch
        )
        self.tasks = self.stream.task_names
        self.counts = np.zeros((len(self.tasks), 3), np.int64)
        self.scale = num_shards / jax.process_count()  # processes sharing a shard count once
        path = os.path.join(cfg.model_dir, "example_ids", f"process_{jax.process_index()}.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = open(path, "a")  # noqa: SIM115  (open for the whole run; closed in close())

    def add(self, step: int, batch: dict[str, np.ndarray]) -> None:
        records = self.stream.take(batch)
        self.counts += self.mod.task_counts(records, self.tasks)
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


def train(cfg: TrainConfig) -> dict[str, float]:
    """Trains until `cfg.train_steps`, resuming from MODEL_DIR; returns the last metrics."""
    distributed.initialize(cfg.distributed)
    mesh = partitioning.make_mesh(cfg.mesh)
    check_microbatches(cfg, mesh)
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    ckpt = checkpointing.Checkpointer(cfg.model_dir, cfg.checkpoint)
    shard, num_shards = partitioning.data_layout(mesh, cfg.mesh.rules, cfg.data.batch_size)
    with jax.set_mesh(mesh):
        start = _restore_or_init(cfg, tx, mesh, ckpt)
        step_fn = compile_train_step(cfg, tx, schedule, mesh, start.shardings)
        data = BatchIterator(
            cfg.data,
            process_index=shard,
            process_count=num_shards,
            start_batch=start.batches_consumed,
        )
        examples = None
        if cfg.record_example_ids:
            examples = ExampleLog(cfg, shard, num_shards, start.batches_consumed)
        last = _loop(cfg, mesh, ckpt, start, step_fn, data, num_shards, examples)
        ckpt.close()
        if examples:
            examples.close()
    return last


def _loop(cfg, mesh, ckpt, start: Start, step_fn, data, num_shards, examples) -> dict[str, float]:
    """The step loop: train, log every `log_every`, checkpoint every `save_every` and last."""
    meta = {"model": checkpointing.model_config_to_json(cfg.model), "data": repr(cfg.data)}
    state, step = start.state, int(start.state.step)
    if not start.resumed and cfg.checkpoint.save_initial and step < cfg.train_steps:
        ckpt.save(step, state, data.state(), meta, force=True)
    main = jax.process_index() == 0
    writer = MetricWriter(cfg.model_dir, "train", enabled=main)
    progress = Progress(cfg.train_steps, enabled=main and cfg.show_progress)
    last: dict[str, float] = {}
    window = None
    while step < cfg.train_steps:
        batch_np = next(data)
        if window is None:
            shapes = {k: (v.shape[0] * num_shards, *v.shape[1:]) for k, v in batch_np.items()}
            window = Throughput(flops.batch_flops(cfg.model, shapes))
        window.add(batch_np, num_shards)
        if examples:
            examples.add(step + 1, batch_np)
        batch = partitioning.host_local_batch(mesh, cfg.mesh.rules, batch_np, num_shards)
        state, metrics = step_fn(state, batch)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.train_steps:
            last = {k: float(v) for k, v in jax.device_get(metrics).items()}
            last |= window.read_and_reset()
            if examples:
                last |= examples.read_and_reset()
            writer.write(step, last)
            progress.update(step, last)
        if step % cfg.checkpoint.save_every == 0 or step == cfg.train_steps:
            ckpt.save(step, state, data.state(), meta, force=True)
    progress.close()
    writer.close()
    return last
