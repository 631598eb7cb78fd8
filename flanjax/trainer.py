"""The training run: the one place where data, model, optimizer and checkpoints meet."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time

import jax
import numpy as np

from flanjax import checkpointing, optimizers, partitioning, train_state
from flanjax.data.pipeline import BatchIterator, DataConfig, nonpadding_fraction
from flanjax.metric_writers import MetricWriter, Progress
from flanjax.models import ModelConfig
from flanjax.train_step import LossConfig, TrainState, train_step

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. Gin binds it in gin_configs/runs/*.gin (T5X's macro names)."""

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


def _restore_or_init(cfg: TrainConfig, tx, mesh, ckpt: checkpointing.Checkpointer):
    """(state, shardings, batches already consumed) from MODEL_DIR or fresh."""
    rules = cfg.mesh.rules
    latest = ckpt.latest_step()
    if latest is None:
        state, shardings = train_state.init_state(cfg.model, tx, mesh, rules, cfg.seed)
        return state, shardings, 0
    checkpointing.check_same_model(ckpt.read_meta(latest), cfg.model, ckpt.directory)
    abstract = train_state.abstract_state(cfg.model, tx, cfg.seed)
    shardings = train_state.state_shardings(abstract, mesh, rules)
    target = train_state.with_shardings(abstract, shardings)
    (params, opt_state), data_state, meta = ckpt.restore(latest, target)
    step = jax.device_put(np.int32(meta["step"]), shardings.step)
    log.info("resumed from %s step %d", ckpt.directory, meta["step"])
    return TrainState(step, params, opt_state), shardings, int(data_state["batches_consumed"])


def compile_train_step(cfg: TrainConfig, tx, schedule, mesh, shardings: TrainState):
    """The jitted train step: state sharded by the rules, donated, batch sharded on data axes."""
    graphdef = train_state.graphdef_of(cfg.model, cfg.mesh.rules)
    dropout = getattr(cfg.model, "dropout_rate", 0.0) > 0
    step_fn = functools.partial(
        train_step,
        graphdef=graphdef,
        tx=tx,
        schedule=schedule,
        loss_cfg=cfg.loss,
        dropout_seed=cfg.seed if dropout else None,
    )
    batch_sharding = partitioning.batch_sharding(mesh, cfg.mesh.rules)
    return jax.jit(
        step_fn,
        in_shardings=(shardings, batch_sharding),
        out_shardings=(shardings, None),
        donate_argnums=(0,),
    )


class Throughput:
    """Tokens/s (input and target positions, padding included) and the non-padding
    fraction over the steps since the last read."""

    def __init__(self) -> None:
        self.read_and_reset()

    def add(self, local_batch: dict[str, np.ndarray], process_count: int) -> None:
        keys = ("encoder_input_tokens", "decoder_target_tokens")
        self.tokens += process_count * sum(local_batch[k].size for k in keys if k in local_batch)
        self.nonpad += nonpadding_fraction(local_batch)
        self.steps += 1

    def read_and_reset(self) -> dict[str, float]:
        now = time.perf_counter()
        out = {}
        if getattr(self, "steps", 0):
            out = {
                "tokens_per_sec": self.tokens / (now - self.t0),
                "nonpadding_fraction": self.nonpad / self.steps,
            }
        self.tokens, self.nonpad, self.steps, self.t0 = 0, 0.0, 0, now
        return out


def train(cfg: TrainConfig) -> dict[str, float]:
    """Trains until `cfg.train_steps`, resuming from MODEL_DIR; returns the last metrics."""
    mesh = partitioning.make_mesh(cfg.mesh)
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    ckpt = checkpointing.Checkpointer(cfg.model_dir, cfg.checkpoint)
    meta = {"model": checkpointing.model_config_to_json(cfg.model), "data": repr(cfg.data)}
    with jax.set_mesh(mesh):
        state, shardings, start_batch = _restore_or_init(cfg, tx, mesh, ckpt)
        step_fn = compile_train_step(cfg, tx, schedule, mesh, shardings)
        data = BatchIterator(
            cfg.data,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            start_batch=start_batch,
        )
        step = int(state.step)
        if step == 0 and cfg.checkpoint.save_initial:
            ckpt.save(0, state, data.state(), meta, force=True)
        main = jax.process_index() == 0
        writer = MetricWriter(cfg.model_dir, "train", enabled=main)
        progress = Progress(cfg.train_steps, enabled=main and cfg.show_progress)
        last: dict[str, float] = {}
        window = Throughput()
        while step < cfg.train_steps:
            batch_np = next(data)
            window.add(batch_np, jax.process_count())
            batch = partitioning.host_local_batch(mesh, cfg.mesh.rules, batch_np)
            state, metrics = step_fn(state, batch)
            step += 1
            if step % cfg.log_every == 0 or step == cfg.train_steps:
                last = {k: float(v) for k, v in jax.device_get(metrics).items()}
                last |= window.read_and_reset()
                writer.write(step, last)
                progress.update(step, last)
            if step % cfg.checkpoint.save_every == 0 or step == cfg.train_steps:
                ckpt.save(step, state, data.state(), meta, force=True)
        progress.close()
        ckpt.close()
        writer.close()
    return last
