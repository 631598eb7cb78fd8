"""Orbax checkpoints in MODEL_DIR/checkpoints/<step>/.

Each checkpoint holds four items: `params` and `opt_state` (arrays, restorable
onto any mesh by passing abstract arrays with the target shardings), `data` (the
input pipeline's position, JSON) and `meta` (step, model family and config,
JSON). The evaluator restores `params` and `meta` only. Orbax writes a step
under a temporary name and renames it when complete, so a partial save is never
listed as a checkpoint.

Failures. A checkpoint that cannot be restored (a truncated or missing array
file, unreadable JSON, non-finite values) is reported with its path and moved
aside to MODEL_DIR/corrupt_checkpoints/<step> (kept as evidence, and so that the
step can be saved again); the one before it is used (`restore_newest_valid`). A
save that fails (a full disk) raises `CheckpointWriteError` naming the step and
the complete checkpoints, which stay untouched; Orbax's temporary folder of the
failed save is never listed as a step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from flanjax.models import ModelConfig, family_named, family_of

log = logging.getLogger(__name__)


def model_config_to_json(cfg: ModelConfig) -> dict[str, Any]:
    return {"family": family_of(cfg).name, "config": dataclasses.asdict(cfg)}


def model_config_from_json(d: dict[str, Any]) -> ModelConfig:
    """The config saved in a checkpoint's meta; fields added since take their
    defaults, and the old `remat: bool` becomes `remat_policy`."""
    cls = family_named(d["family"]).config_cls
    saved = dict(d["config"])
    if saved.pop("remat", False) and "remat_policy" not in saved:
        saved["remat_policy"] = "full"
    names = {f.name for f in dataclasses.fields(cls)}
    # JSON has no tuples: tuple-valued fields (rope_scaling) come back as lists
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names}
    return cls(**fields)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk is full); earlier ones are intact."""


class CorruptCheckpointError(RuntimeError):
    """No checkpoint in MODEL_DIR could be restored."""


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    save_every: int = 1000
    keep: int = 3  # newest checkpoints kept; 0 keeps all
    keep_every: int = 0  # also keep every checkpoint at a multiple of this step
    save_initial: bool = True  # a step-0 checkpoint, the baseline for evaluation
    async_save: bool = True


class Checkpointer:
    """A thin layer over `ocp.CheckpointManager` with flanjax's items."""

    def __init__(self, model_dir: str, cfg: CheckpointConfig = CheckpointConfig(), read_only=False):
        self.directory = os.path.join(os.path.abspath(model_dir), "checkpoints")
        policies = [ocp.checkpoint_managers.LatestN(cfg.keep or None)]
        if cfg.keep_every:
            policies.append(ocp.checkpoint_managers.EveryNSteps(cfg.keep_every))
        if cfg.save_initial:  # the step-0 baseline is never deleted
            policies.append(ocp.checkpoint_managers.CustomSteps([0]))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=cfg.async_save,
            create=not read_only,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("params", "opt_state", "data", "meta")
        )
        self._in_flight: int | None = None  # the step of the asynchronous save in flight

    def all_steps(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(
        self, step: int, state: Any, data_state: dict, meta: dict, force: bool = False
    ) -> bool:
        """A run's checkpoint: the state's params and opt_state (None: a model without
        optimizer state, `save_model`), the data pipeline's state, and meta."""
        items = {"params": ocp.args.StandardSave(state.params)}
        if state.opt_state is not None:
            items["opt_state"] = ocp.args.StandardSave(state.opt_state)
        args = ocp.args.Composite(
            **items,
            data=ocp.args.JsonSave(data_state),
            meta=ocp.args.JsonSave({**meta, "step": int(step)}),
        )
        self.wait()  # Orbax waits for the save in flight too; this names its step if it failed
        try:
            saved = self.manager.save(step, args=args, force=force)
        except Exception as e:
            self._raise_write_error(step, e)
            raise
        self._in_flight = step if saved else None
        return saved

    def _raise_write_error(self, step: int | None, e: BaseException) -> None:
        error = self._write_error(step, e)
        if error is not None:
            raise error from e

    def _write_error(self, step: int | None, e: BaseException) -> CheckpointWriteError | None:
        """A CheckpointWriteError for an OSError anywhere in `e`'s chain (Orbax may wrap
        the error of its background writer), else None."""
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            return None
        which = f"checkpoint {step}" if step is not None else "a checkpoint"
        complete = self.all_steps()
        return CheckpointWriteError(
            f"writing {which} in {self.directory} failed: {cause}. The complete checkpoints "
            f"{complete} are untouched; free space and rerun the same command to resume "
            f"from step {complete[-1] if complete else 0}."
        )

    def read_meta(self, step: int) -> dict:
        path = os.path.join(self.directory, str(step), "meta", "metadata")
        with open(path) as f:
            return json.load(f)

    def restore(self, step: int, abstract: Any) -> tuple[Any, dict, dict]:
        """(params, opt_state) onto `abstract`'s shardings, plus data state and meta."""
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract.params),
                opt_state=ocp.args.StandardRestore(abstract.opt_state),
                data=ocp.args.JsonRestore(),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return (out["params"], out["opt_state"]), out["data"], out["meta"]

    def restore_params(self, step: int, abstract_params: Any) -> Any:
        out = self.manager.restore(
            step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params))
        )
        return out["params"]

    def wait(self) -> None:
        """Blocks until the asynchronous save in flight is complete (or raises its error)."""
        step, self._in_flight = self._in_flight, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            self._raise_write_error(step, e)
            raise

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.manager.close()

    def restore_newest_valid(self, abstract: Any, check=None) -> tuple[int, Any, dict, dict] | None:
        """(step, (params, opt_state), data state, meta) of the newest checkpoint that
        restores, or None if MODEL_DIR has none.

        `check(meta)` runs first and may raise (a different model config): that error
        propagates. Any other failure marks the checkpoint corrupt: it is reported with
        its path, moved aside (`corrupt_checkpoints/`), and the previous one is tried.
        In a multi-process run all processes agree on the outcome of every step.
        """
        steps = self.all_steps()
        for step in reversed(steps):
            path = os.path.join(self.directory, str(step))
            error = None
            try:
                meta = self.read_meta(step)
            except (OSError, ValueError) as e:
                meta, error = None, e
            if meta is not None and check is not None:
                check(meta)
            if error is None:
                try:
                    restored = self.restore(step, abstract)
                    _check_finite(restored[0])
                except Exception as e:  # any failure to read is corruption
                    error = e
            if _all_processes_ok(error is None):
                return (step, *restored)
            self._move_aside(step, path, error)
        if steps:
            raise CorruptCheckpointError(
                f"no checkpoint in {self.directory} could be restored (steps {steps} were moved "
                f"to {self._corrupt_dir()}); rerun to start from scratch, or restore one by hand"
            )
        return None

    def _corrupt_dir(self) -> str:
        return os.path.join(os.path.dirname(self.directory), "corrupt_checkpoints")

    def _move_aside(self, step: int, path: str, error: BaseException | None) -> None:
        dest = os.path.join(self._corrupt_dir(), str(step))
        n = 1
        while os.path.exists(dest):
            dest, n = os.path.join(self._corrupt_dir(), f"{step}.{n}"), n + 1
        reason = f"{type(error).__name__}: {error}" if error else "failed on another process"
        reason = reason.split(" [tensorstore_spec")[0]  # the file and the problem, not the spec
        log.error(
            "checkpoint %s is corrupt or incomplete and is skipped (moved to %s): %s",
            path,
            dest,
            reason[:2000],
        )
        if jax.process_index() == 0:
            os.makedirs(self._corrupt_dir(), exist_ok=True)
            shutil.move(path, dest)
        _barrier(f"flanjax_move_aside_{step}")
        self.manager.reload()


INPUT_POSITIONS = "input_positions"  # MODEL_DIR/input_positions/<step>/process_<i>-of-<n>.*


def input_position_prefix(model_dir: str, step: int) -> str:
    """Where this process writes the input pipeline's position at `step` (tf.train.Checkpoint
    files with this prefix), beside the Orbax checkpoint of the same step."""
    name = f"process_{jax.process_index()}-of-{jax.process_count()}"
    return os.path.join(os.path.abspath(model_dir), INPUT_POSITIONS, str(step), name)


def has_input_position(prefix: str) -> bool:
    return os.path.exists(prefix + ".index")


def prune_input_positions(model_dir: str, step: int) -> None:
    """Deletes this process's input positions of steps before `step` whose checkpoint Orbax
    has deleted (read from the folder: asking the manager would reload it mid-save)."""
    model_dir = os.path.abspath(model_dir)
    root = os.path.join(model_dir, INPUT_POSITIONS)
    if not os.path.isdir(root):
        return
    name = f"process_{jax.process_index()}-of-{jax.process_count()}"
    for entry in os.listdir(root):
        kept = os.path.isdir(os.path.join(model_dir, "checkpoints", entry))
        if not entry.isdigit() or int(entry) >= step or kept:
            continue
        folder = os.path.join(root, entry)
        for f in os.listdir(folder):
            if f.startswith(name + "."):
                os.remove(os.path.join(folder, f))
        if not os.listdir(folder):
            shutil.rmtree(folder, ignore_errors=True)


def refuse_existing(model_dir: str) -> None:
    """Refuses a MODEL_DIR that already holds checkpoints (nothing is overwritten)."""
    directory = os.path.join(model_dir, "checkpoints")
    if os.path.isdir(directory) and os.listdir(directory):
        raise ValueError(f"{model_dir} already holds checkpoints; write into a new folder")


@dataclasses.dataclass(frozen=True)
class _Params:
    params: Any
    opt_state: Any = None


def save_model(model_dir: str, cfg: ModelConfig, params: Any, step: int = 0) -> None:
    """Checkpoint `step` of a new MODEL_DIR holding a model's parameters (a converted or
    exported checkpoint: no optimizer state; the data state of a run that has read
    nothing), written synchronously. A MODEL_DIR that already holds checkpoints is
    refused."""
    refuse_existing(model_dir)
    ckpt = Checkpointer(model_dir, CheckpointConfig(async_save=False))
    try:
        meta = {"model": model_config_to_json(cfg)}
        ckpt.save(step, _Params(params), {"batches_consumed": 0}, meta)
        ckpt.wait()
    finally:
        ckpt.close()


def _check_finite(arrays: Any) -> None:
    """Raises ValueError if a restored array holds NaN or Inf (flanjax never saves one)."""
    for kp, x in jax.tree_util.tree_leaves_with_path(arrays):
        if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact) and not bool(
            jax.numpy.isfinite(x).all()
        ):
            raise ValueError(f"non-finite values in {jax.tree_util.keystr(kp)}")


def _all_processes_ok(ok: bool) -> bool:
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.int32(ok))).min())


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# Fields that change how a model computes, not its parameters: a run may change them
# when it resumes or starts from a pretrained checkpoint.
RUNTIME_FIELDS = frozenset({"dtype", "dropout_rate", "remat_policy", "attention_impl"})
# What a run starting from a pretrained checkpoint may also choose: the layer layout
# (parameters are restacked) and a causal decoder trained as a prefix-LM.
INITIAL_CHOICES = RUNTIME_FIELDS | {"scan_layers", "attention"}
FLOAT_RTOL = 1e-6  # float32 round trips (1e-5 saved as 9.999999747378752e-06) compare equal


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=FLOAT_RTOL)
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return a == b


def model_differences(saved: ModelConfig, cfg: ModelConfig) -> dict[str, tuple[Any, Any]]:
    """field -> (saved, requested) for every field that differs (floats within FLOAT_RTOL)."""
    ours = dataclasses.asdict(cfg)
    return {
        k: (v, ours[k]) for k, v in dataclasses.asdict(saved).items() if not _same_value(v, ours[k])
    }


def check_same_model(
    meta: dict, cfg: ModelConfig, directory: str, also_free: frozenset[str] = frozenset()
) -> dict[str, tuple[Any, Any]]:
    """Refuses a checkpoint written by a model of a different architecture.

    Compute-only fields (`RUNTIME_FIELDS`: compute dtype, dropout, remat) may
    differ, and `also_free` ones (an initial checkpoint: `INITIAL_CHOICES`);
    fields missing from an older checkpoint count as their defaults, and floats
    compare within FLOAT_RTOL. Returns the free fields that differ (for the log).
    """
    saved = meta.get("model")
    if not saved:
        return {}
    if saved["family"] != model_config_to_json(cfg)["family"]:
        raise ValueError(f"{directory} holds a {saved['family']} model, not a {type(cfg).__name__}")
    diff = model_differences(model_config_from_json(saved), cfg)
    free = RUNTIME_FIELDS | also_free
    fixed = {k: v for k, v in diff.items() if k not in free}
    if fixed:
        raise ValueError(
            f"{directory} holds checkpoints of a different model config "
            f"(field: (saved, requested)): {fixed}. Use a new MODEL_DIR or the saved config; "
            f"only {sorted(free)} may differ from the checkpoint"
            + (" (a run's own MODEL_DIR)" if not also_free else "")
            + ". Leaving the model gin file out takes the architecture from the checkpoint."
        )
    return {k: v for k, v in diff.items() if k in free}


def read_model_config(path: str) -> tuple[ModelConfig, str, int]:
    """(model config, MODEL_DIR, step) of a MODEL_DIR's newest checkpoint or of one
    MODEL_DIR/checkpoints/<step> folder. Reads files only (no Orbax, no devices), so
    a run can check its config before `jax.distributed.initialize`."""
    model_dir, step = split_checkpoint_path(path)
    if step is None:
        folder = os.path.join(model_dir, "checkpoints")
        steps = sorted(
            int(n)
            for n in (os.listdir(folder) if os.path.isdir(folder) else [])
            if n.isdigit() and os.path.isfile(os.path.join(folder, n, "meta", "metadata"))
        )
        if not steps:
            raise FileNotFoundError(f"checkpoint {path}: no checkpoints in {folder}")
        step = steps[-1]
    meta_path = os.path.join(model_dir, "checkpoints", str(step), "meta", "metadata")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"checkpoint {path}: cannot read {meta_path}: {e}") from e
    if "model" not in meta:
        raise ValueError(f"{meta_path}: names no model config")
    return model_config_from_json(meta["model"]), model_dir, step


def split_checkpoint_path(path: str) -> tuple[str, int | None]:
    """(MODEL_DIR, step) of MODEL_DIR/checkpoints/<step>; (MODEL_DIR, None) of a MODEL_DIR."""
    path = os.path.abspath(path.rstrip("/"))
    parent, name = os.path.split(path)
    if name.isdigit() and os.path.basename(parent) == "checkpoints":
        return os.path.dirname(parent), int(name)
    return path, None


def locate_checkpoint(path: str) -> tuple[str, int]:
    """(MODEL_DIR, step) for an initial checkpoint path: a MODEL_DIR (its latest
    step; e.g. one written by `flanjax convert --from hf`), or one step's folder,
    MODEL_DIR/checkpoints/<step>."""
    path, step = split_checkpoint_path(path)
    if step is not None:
        return path, step
    ckpt = Checkpointer(path, read_only=True)
    step = ckpt.latest_step()
    ckpt.close()
    if step is None:
        raise FileNotFoundError(
            f"initial checkpoint {path}: no checkpoints in {os.path.join(path, 'checkpoints')}"
        )
    return path, step
