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

Faults. SIGTERM (a preemption notice, a SLURM time limit) lets the current step
finish, saves a checkpoint at it and returns (the CLI exits 0); in a
multi-process run the processes agree every step on whether any of them got
the signal, so all stop at the same step. A corrupt newest checkpoint is skipped
(see checkpointing.restore_newest_valid). A step whose loss, gradients or update
is NaN or Inf leaves parameters and optimizer state unchanged (inside the
jitted step); `on_nonfinite="stop"` then stops with `NonFiniteError` naming the
step, before anything after it is saved, and `"skip"` logs it and goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from flanjax import (
    checkpointing,
    distributed,
    flops,
    lora_state,
    model_loading,
    optimizers,
    partitioning,
    run_setup,
    stop_signal,
    throughput,
    train_state,
)
from flanjax.data.pipeline import BatchIterator, DataConfig
from flanjax.metric_writers import MetricWriter, Progress
from flanjax.models import LoraConfig, ModelConfig
from flanjax.train_state import TrainState
from flanjax.train_step import LossConfig, train_step

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
    model: None takes the architecture from the run's checkpoint, with
      `model_overrides` (field -> value) for what a run may choose over it:
      checkpointing.INITIAL_CHOICES (see run_setup.py).
    record_example_ids: debug: record the ids of the examples in every batch
      and log per-task example/token counts (a second read of the data; see
      flanjax/example_ids.py).
    lora: LoRA fine-tuning when `lora.rank` > 0: adapters train on the frozen weights
      of `initial_checkpoint_path`, and checkpoints hold the adapters (lora_state.py).
    on_nonfinite: what a step with a NaN/Inf loss, gradient or update does: "stop"
      (raise NonFiniteError naming the step; the last good checkpoint stays the
      newest) or "skip" (the step leaves parameters and optimizer state unchanged;
      its batch is consumed). Either way no non-finite value is ever saved.
    """

    model_dir: str
    data: DataConfig
    model: ModelConfig | None  # None: the checkpoint's architecture (run_setup.prepare)
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
    on_nonfinite: str = "stop"  # stop | skip
    lora: LoraConfig = LoraConfig()  # rank 0: full fine-tuning
    model_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.on_nonfinite not in NONFINITE_MODES:
            raise ValueError(
                f"TrainConfig.on_nonfinite {self.on_nonfinite!r}: use one of {NONFINITE_MODES}"
            )


NONFINITE_MODES = ("stop", "skip")


class NonFiniteError(FloatingPointError):
    """A step's loss, gradients or update were NaN or Inf (on_nonfinite="stop")."""


@dataclasses.dataclass
class Start:
    """Where a run starts: its state, the state's shardings, and the data position."""

    state: TrainState
    shardings: TrainState
    batches_consumed: int
    resumed: bool
    base: Any = None  # a LoRA run's frozen base weights (lora_state.py)
    meta: dict = dataclasses.field(default_factory=dict)  # extra checkpoint meta


def _from_initial_checkpoint(cfg: TrainConfig, tx, mesh, shardings) -> TrainState:
    """Parameters from `cfg.initial_checkpoint_path` (model_loading.restore_params: in
    the run's layer layout, sharded by its rules), fresh optimizer state."""
    model_dir, step = checkpointing.locate_checkpoint(cfg.initial_checkpoint_path)
    sharding_of = functools.partial(train_state.param_shardings, mesh=mesh, rules=cfg.mesh.rules)
    where = f"{model_dir} (initial checkpoint)"
    params = model_loading.restore_params(model_dir, step, cfg.model, sharding_of, where)
    meta = checkpointing.Checkpointer(model_dir, read_only=True).read_meta(step)
    start = int(meta.get("step", step))
    log.info("initialized parameters from %s step %d", model_dir, start)
    return train_state.state_from_params(params, tx, shardings, start)


def _restore_or_init(cfg: TrainConfig, tx, mesh, ckpt: checkpointing.Checkpointer) -> Start:
    """The run's start: MODEL_DIR's latest checkpoint, the initial checkpoint, or fresh."""
    if cfg.lora.enabled:
        return Start(*lora_state.restore_or_init(cfg, tx, mesh, ckpt))
    rules = cfg.mesh.rules
    abstract = train_state.abstract_state(cfg.model, tx, cfg.seed)
    shardings = train_state.state_shardings(abstract, mesh, rules)
    target = train_state.with_shardings(abstract, shardings)
    found = ckpt.restore_newest_valid(
        target, lambda meta: lora_state.check_run(meta, cfg, ckpt.directory)
    )
    if found is not None:
        _, (params, opt_state), data_state, meta = found
        step = jax.device_put(np.int32(meta["step"]), shardings.step)
        log.info("resumed from %s step %d", ckpt.directory, meta["step"])
        state = TrainState(step, params, opt_state)
        return Start(state, shardings, int(data_state["batches_consumed"]), True)
    if cfg.initial_checkpoint_path:
        state = _from_initial_checkpoint(cfg, tx, mesh, shardings)
        return Start(state, shardings, 0, False)
    state, shardings = train_state.init_state(cfg.model, tx, mesh, rules, cfg.seed)
    return Start(state, shardings, 0, False)


def compile_train_step(
    cfg: TrainConfig, tx, schedule, mesh, shardings: TrainState, *, donate: bool = True, frozen=None
):
    """The jitted train step: state sharded by the rules (donated), batch sharded on
    the batch axes; activations constrained by the same rules while tracing. `frozen`
    (a LoRA run's base weights) is bound as a further input, neither donated nor trained."""
    rules = cfg.mesh.rules
    graphdef = train_state.graphdef_of(cfg.model, rules, cfg.lora)
    dropout = getattr(cfg.model, "dropout_rate", 0.0) > 0 or cfg.lora.dropout > 0
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
    def with_rules(state: TrainState, batch: dict, *base) -> tuple[TrainState, dict]:
        with nnx.logical_axis_rules(rules), jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return step_fn(state, batch, *base)

    base_shardings = () if frozen is None else (lora_state.frozen_shardings(frozen),)
    jitted = jax.jit(
        with_rules,
        in_shardings=(shardings, partitioning.batch_sharding(mesh, rules), *base_shardings),
        out_shardings=(shardings, None),
        donate_argnums=(0,) if donate else (),
    )
    return jitted if frozen is None else _WithBase(jitted, frozen)


class _WithBase:
    """A jitted step with a LoRA run's frozen base bound as its last input."""

    def __init__(self, jitted, base) -> None:
        self.jitted, self.base = jitted, base

    def __call__(self, state: TrainState, batch: dict):
        return self.jitted(state, batch, self.base)

    def lower(self, state: TrainState, batch: dict):
        """Lowered with the base as an input (compile-check counts its memory)."""
        return self.jitted.lower(state, batch, self.base)


def check_microbatches(cfg: TrainConfig, mesh) -> None:
    """Refuses a microbatch count that does not split every data shard's rows evenly."""
    shards = int(np.prod([mesh.shape[a] for a in partitioning.BATCH_AXES]))
    if cfg.microbatches < 1 or cfg.data.batch_size % (cfg.microbatches * shards):
        raise ValueError(
            f"TrainConfig.microbatches {cfg.microbatches}: batch size {cfg.data.batch_size} "
            f"must divide into {cfg.microbatches} microbatches x {shards} batch shards"
        )


def train(cfg: TrainConfig) -> dict[str, float]:
    """Trains until `cfg.train_steps`, resuming from MODEL_DIR; returns the last metrics
    plus `step`, the step reached (less than `train_steps` if stopped by SIGTERM or
    SIGINT), and `signal`, the signal's name, when this process received one."""
    cfg = run_setup.prepare(cfg)  # refuses a mismatched model, converter or vocabulary
    with stop_signal.StopSignal() as stop:
        distributed.initialize(cfg.distributed)
        mesh = partitioning.make_mesh(cfg.mesh)
        check_microbatches(cfg, mesh)
        tx, schedule = optimizers.make_optimizer(cfg.optimizer)
        ckpt = checkpointing.Checkpointer(cfg.model_dir, cfg.checkpoint)
        if jax.process_index() == 0:
            run_setup.write_run_files(cfg)
        shard, num_shards = partitioning.data_layout(mesh, cfg.mesh.rules, cfg.data.batch_size)
        examples = None
        try:
            with jax.set_mesh(mesh):
                start = _restore_or_init(cfg, tx, mesh, ckpt)
                step_fn = compile_train_step(
                    cfg, tx, schedule, mesh, start.shardings, frozen=start.base
                )
                data = BatchIterator(
                    cfg.data,
                    process_index=shard,
                    process_count=num_shards,
                    start_batch=start.batches_consumed,
                    restore_from=_input_position(cfg, start),
                )
                if cfg.record_example_ids:
                    from flanjax import example_ids  # debug only: a second input pipeline

                    examples = example_ids.ExampleLog(
                        cfg, shard, num_shards, start.batches_consumed
                    )
                loop = _Loop(cfg, mesh, ckpt, step_fn, data, num_shards, examples, stop)
                loop.meta.update(start.meta)
                result = loop.run(start)
                return {**result, "signal": stop.received} if stop.received else result
        finally:
            ckpt.close()  # Orbax's last deletions are done: prune their input positions too
            checkpointing.prune_input_positions(cfg.model_dir, step=2**62)
            if examples:
                examples.close()


def _input_position(cfg: TrainConfig, start: Start) -> str | None:
    """The saved input position of the resumed checkpoint (constant-time resume), or None:
    a fresh start, or a checkpoint without one (the pipeline then replays its batches)."""
    if not start.resumed or not start.batches_consumed:
        return None
    step = int(start.state.step)
    prefix = checkpointing.input_position_prefix(cfg.model_dir, step)
    if checkpointing.has_input_position(prefix):
        return prefix
    log.warning(
        "no saved input position at %s (checkpoint of an older flanjax, or another process "
        "count): replaying %d batches to resume the data exactly; this takes time linear "
        "in the batch index",
        prefix,
        start.batches_consumed,
    )
    return None


class _Loop:
    """The step loop: train, log every `log_every`, checkpoint every `save_every` and
    last; stop cleanly on SIGTERM; handle non-finite steps (see the module docstring)."""

    def __init__(self, cfg, mesh, ckpt, step_fn, data, num_shards, examples, stop) -> None:
        self.cfg, self.mesh, self.ckpt, self.step_fn = cfg, mesh, ckpt, step_fn
        self.data, self.num_shards, self.examples, self.stop = data, num_shards, examples, stop
        self.meta = {"model": checkpointing.model_config_to_json(cfg.model), "data": repr(cfg.data)}
        self.pending: tuple[int, dict] | None = None  # the newest step's unread metrics
        self.saved_step = -1
        self.skipped = 0

    def save(self, step: int, state: TrainState) -> None:
        self.check_pending()  # never save the state of a step not yet known to be finite
        # The input position first: a committed checkpoint always has its position.
        self.data.save_position(checkpointing.input_position_prefix(self.cfg.model_dir, step))
        self.ckpt.save(step, state, self.data.state(), self.meta, force=True)
        checkpointing.prune_input_positions(self.cfg.model_dir, step)
        self.saved_step = step

    def check_pending(self) -> None:
        """Reads the newest step's non-finite flag (one step behind the device, so the
        host does not wait every step) and stops or logs a skipped step."""
        if self.pending is None:
            return
        step, metrics = self.pending
        self.pending = None
        if not float(metrics["nonfinite"]):
            return
        values = {k: float(metrics[k]) for k in ("loss", "grad_norm")}
        if self.cfg.on_nonfinite == "skip":
            self.skipped += 1
            log.warning("step %d: non-finite loss or gradients %s; step skipped", step, values)
            return
        self.ckpt.wait()
        good = self.ckpt.latest_step()
        raise NonFiniteError(
            f"step {step}: non-finite loss or gradients ({values}) in {self.cfg.model_dir}. "
            f"Nothing from this step was saved; the newest checkpoint is step {good}. Lower "
            f"the learning rate, check the data, or set TrainConfig.on_nonfinite='skip'."
        )

    def run(self, start: Start) -> dict[str, float]:
        cfg = self.cfg
        state, step = start.state, int(start.state.step)
        if not start.resumed and cfg.checkpoint.save_initial and step < cfg.train_steps:
            self.save(step, state)
        main = jax.process_index() == 0
        writer = MetricWriter(cfg.model_dir, "train", enabled=main)
        progress = Progress(cfg.train_steps, enabled=main and cfg.show_progress)
        last: dict[str, float] = {}
        window = None
        while step < cfg.train_steps and not self.stop.requested():
            batch_np = next(self.data)
            if window is None:
                shapes = {
                    k: (v.shape[0] * self.num_shards, *v.shape[1:]) for k, v in batch_np.items()
                }
                window = throughput.Throughput(flops.batch_flops(cfg.model, shapes))
            window.add(batch_np, self.num_shards)
            if self.examples:
                self.examples.add(step + 1, batch_np)
            batch = partitioning.host_local_batch(
                self.mesh, cfg.mesh.rules, batch_np, self.num_shards
            )
            state, metrics = self.step_fn(state, batch)
            self.check_pending()
            step += 1
            self.pending = (step, metrics)
            if step % cfg.log_every == 0 or step == cfg.train_steps:
                self.check_pending()
                last = {k: float(v) for k, v in jax.device_get(metrics).items()}
                last |= window.read_and_reset() | {"skipped_steps": float(self.skipped)}
                if self.examples:
                    last |= self.examples.read_and_reset()
                writer.write(step, last)
                progress.update(step, last)
            if step % cfg.checkpoint.save_every == 0 or step == cfg.train_steps:
                self.save(step, state)
        self.check_pending()
        progress.close()
        writer.close()
        if step < cfg.train_steps:
            self.stopped(step, state)
        return {**last, "step": step}

    def stopped(self, step: int, state: TrainState) -> None:
        """After a stop request: a checkpoint at this step (if not saved yet), complete."""
        if self.saved_step != step:
            self.save(step, state)
        self.ckpt.wait()
        log.warning(
            "%s: stopped at step %d of %d; checkpoint saved in %s; rerun to resume",
            self.stop.received or "stop requested on another process",
            step,
            self.cfg.train_steps,
            self.ckpt.directory,
        )
