"""Reliability of training: SIGTERM and kill -9 resume exactly, corrupt or partial
checkpoints are never loaded, NaN/Inf steps stop or are skipped without touching the
state, a full disk during a save loses nothing, a MODEL_DIR of another model is refused.

(A gin typo and a missing required value are covered in tests/test_cli.py:
test_bad_input_gets_a_clear_error, test_missing_required_value_is_named; the data-side
bad inputs in tests/test_bad_input.py.)
"""

import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler

from flanjax import cli, stop_signal, trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
FLAGS = [
    "--gin_file=runs/quickstart.gin",
    "--gin.MIXTURE_OR_TASK_NAME='builtin.addition'",  # one task: a quick input pipeline
    "--gin_file=models/t5_micro.gin",
    "--gin.BATCH_SIZE=8",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}",
    "--gin.CheckpointConfig.save_every=2",
    "--gin.CheckpointConfig.keep=3",
    "--gin.TrainConfig.log_every=1",
    "--gin.TrainConfig.show_progress=False",
]
STEPS = 12  # the reference run's length


def _argv(model_dir, steps: int, *extra: str) -> list[str]:
    return [*FLAGS, f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}", *extra]


def _train(model_dir, steps: int, *extra: str) -> int:
    return cli.main(["train", *_argv(model_dir, steps, *extra)])


def _rows(model_dir) -> list[dict]:
    text = pathlib.Path(model_dir, "train_metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _losses(model_dir) -> dict[int, float]:
    """Each step's loss; a step trained twice (redone after a kill) keeps its last."""
    return {r["step"]: r["loss"] for r in _rows(model_dir)}


def _steps(model_dir) -> list[int]:
    """The complete checkpoints (Orbax renames a step's folder to its number when done)."""
    folder = pathlib.Path(model_dir, "checkpoints")
    return (
        sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit()) if folder.exists() else []
    )


def _rows_now(model_dir) -> int:
    """The number of complete metrics lines of a run in progress."""
    path = pathlib.Path(model_dir, "train_metrics.jsonl")
    return path.read_text().count("\n") if path.exists() else 0


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """A persistent compilation cache for this module's runs (and its subprocesses): every
    run compiles the same programs, so only the first pays for compilation."""
    from jax._src import compilation_cache as cc

    folder = str(tmp_path_factory.mktemp("jax_cache"))
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {n: getattr(jax.config, n) for n in names}
    jax.config.update(names[0], folder)
    jax.config.update(names[1], 0.0)
    cc.reset_cache()
    env = {"JAX_COMPILATION_CACHE_DIR": folder, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for n, v in saved.items():
        jax.config.update(n, v)
    cc.reset_cache()
    for k, v in saved_env.items():
        if v is None:
            os.environ.pop(k)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[pathlib.Path, dict[int, float]]:
    """(MODEL_DIR, losses by step) of an uninterrupted 12-step run."""
    model_dir = tmp_path_factory.mktemp("reliability") / "reference"
    assert _train(model_dir, STEPS) == 0
    losses = _losses(model_dir)
    assert sorted(losses) == list(range(1, STEPS + 1))
    return model_dir, losses


def _assert_same_losses(model_dir, reference, upto: int = STEPS, compare: int = STEPS) -> None:
    """Every step 1..upto has a loss; steps 1..compare equal the reference run's."""
    losses = _losses(model_dir)
    assert sorted(losses) == list(range(1, upto + 1))
    steps = range(1, compare + 1)
    np.testing.assert_allclose(
        [losses[s] for s in steps], [reference[1][s] for s in steps], rtol=1e-6
    )


def _params(model_dir, step: int) -> list:
    """The arrays of checkpoint `step`'s params and opt_state, on the host."""
    folder = pathlib.Path(model_dir, "checkpoints", str(step))
    ckpt = ocp.PyTreeCheckpointer()
    return [np.asarray(x) for item in ("params", "opt_state")
            for x in jax.tree.leaves(ckpt.restore(folder / item))]  # fmt: skip


def _spawn(model_dir, log: pathlib.Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "flanjax.cli", "train", *_argv(model_dir, 10_000)]
    return subprocess.Popen(argv, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait(condition, proc: subprocess.Popen, log: pathlib.Path, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < end, f"timed out:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_kill_9_then_sigterm_resume_exactly(tmp_path, reference):
    """kill -9 mid-run: the next start resumes from the newest complete checkpoint.
    SIGTERM: the step finishes, a checkpoint is saved there, exit 0 with a message,
    and the next start resumes from it. Losses equal the uninterrupted run's."""
    model_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _spawn(model_dir, log)
    try:
        _wait(lambda: [s for s in _steps(model_dir) if s >= 2], proc, log)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
        newest, done = _steps(model_dir)[-1], _rows_now(model_dir)  # log_every 1: rows = steps
        proc = _spawn(model_dir, log)
        _wait(lambda: _rows_now(model_dir) > done, proc, log)  # training again
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped = int(log.read_text().split("stopped by a signal at step ")[1].split()[0])
    assert stopped in _steps(model_dir)
    rows = [r["step"] for r in _rows(model_dir)]
    assert rows[done] == newest + 1  # the restart resumed from the newest checkpoint
    assert rows[-1] == stopped
    assert _train(model_dir, max(STEPS, stopped + 1)) == 0  # resumes from the SIGTERM one
    assert [r["step"] for r in _rows(model_dir)][len(rows)] == stopped + 1
    _assert_same_losses(model_dir, reference, upto=max(STEPS, stopped + 1), compare=STEPS)


def test_sigterm_handler_is_restored_after_training():
    before = signal.getsignal(signal.SIGTERM)
    with stop_signal.StopSignal() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and stop.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def _truncate(path: pathlib.Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def test_corrupt_and_partial_checkpoints_are_never_loaded(tmp_path, reference, caplog):
    """Newest (12) has a truncated array file, the one before (10) a deleted one, and
    an unfinished save (Orbax's temporary folder) of step 14 lies beside them: both are
    reported with their paths and moved aside, the run resumes from step 8 and
    reproduces the uninterrupted losses."""
    model_dir = tmp_path / "run"
    shutil.copytree(reference[0], model_dir)
    ckpts = model_dir / "checkpoints"
    assert _steps(model_dir) == [0, 8, 10, 12]
    shutil.copytree(ckpts / "12", ckpts / "14.orbax-checkpoint-tmp-1234")
    _truncate(next((ckpts / "12" / "params").rglob("d/*")))
    os.remove(next((ckpts / "10" / "opt_state").rglob("d/*")))
    assert _steps(model_dir) == [0, 8, 10, 12]  # the unfinished save is not a step
    with caplog.at_level("ERROR", "flanjax.checkpointing"):
        assert _train(model_dir, STEPS) == 0
    for step in (12, 10):
        assert f"checkpoint {ckpts / str(step)} is corrupt" in caplog.text
        assert (model_dir / "corrupt_checkpoints" / str(step)).is_dir()  # evidence kept
    assert "Requested byte range" in caplog.text  # the truncated file, with its path
    rows = [r["step"] for r in _rows(model_dir)]
    assert rows[STEPS:] == [9, 10, 11, 12]
    _assert_same_losses(model_dir, reference)
    assert _steps(model_dir) == [0, 8, 10, 12]


def _poison(monkeypatch, at_batch: int) -> None:
    """Makes the `at_batch`-th batch (1-based) hold a token id far outside the
    vocabulary: its embedding lookup, hence the loss, is NaN."""
    original = trainer.BatchIterator.__next__

    def poisoned(self):
        batch = original(self)
        if self.batches_consumed == at_batch:
            batch = {**batch, "encoder_input_tokens": batch["encoder_input_tokens"].copy()}
            batch["encoder_input_tokens"][:, 0] = 10**6
        return batch

    monkeypatch.setattr(trainer.BatchIterator, "__next__", poisoned)


def test_nonfinite_loss_stops_naming_the_step(tmp_path, monkeypatch, capsys):
    model_dir = tmp_path / "run"
    _poison(monkeypatch, at_batch=3)
    assert _train(model_dir, 6) == 1
    err = capsys.readouterr().err
    assert "step 3: non-finite loss or gradients" in err
    assert "the newest checkpoint is step 2" in err and "Traceback" not in err
    assert _steps(model_dir) == [0, 2]  # the last good checkpoint is kept, nothing after
    assert all(np.isfinite(x).all() for x in _params(model_dir, 2))


@pytest.mark.parametrize("platform", ["cpu", "tpu"])  # lax.cond, and the select off CPUs
def test_nonfinite_step_is_skipped_leaving_the_state_unchanged(tmp_path, monkeypatch, platform):
    from flanjax import partitioning

    monkeypatch.setattr(partitioning, "target_platform", lambda: platform)
    model_dir = tmp_path / "run"
    _poison(monkeypatch, at_batch=3)
    extra = ("--gin.TrainConfig.on_nonfinite='skip'", "--gin.CheckpointConfig.save_every=1")
    assert _train(model_dir, 4, *extra) == 0
    rows = {r["step"]: r for r in _rows(model_dir)}
    assert [rows[s]["nonfinite"] for s in (1, 2, 3, 4)] == [0, 0, 1, 0]
    assert not np.isfinite(rows[3]["loss"]) and rows[4]["skipped_steps"] == 1
    assert _steps(model_dir) == [0, 2, 3, 4]
    two, three, four = (_params(model_dir, s) for s in (2, 3, 4))
    for a, b in zip(two, three, strict=True):
        np.testing.assert_array_equal(a, b)  # params and optimizer state: step 3 skipped
    assert any(not np.array_equal(a, b) for a, b in zip(three, four, strict=True))
    assert all(np.isfinite(x).all() for x in four)
    data = pathlib.Path(model_dir, "checkpoints", "3", "data", "metadata")
    assert json.loads(data.read_text()) == {"batches_consumed": 3}  # its batch was consumed


def test_model_dir_of_a_different_model_is_refused(tmp_path, reference, capsys):
    model_dir = tmp_path / "run"
    shutil.copytree(reference[0], model_dir)
    assert _train(model_dir, STEPS + 2, "--gin.T5Config.d_ff=128", "--gin.T5Config.d_model=48") == 2
    err = capsys.readouterr().err
    assert f"{model_dir / 'checkpoints'} holds checkpoints of a different model config" in err
    assert "'d_ff': (64, 128)" in err and "'d_model': (32, 48)" in err
    assert _steps(model_dir) == [0, 8, 10, 12]


def test_disk_full_during_a_save_loses_nothing(tmp_path, reference, monkeypatch, capsys):
    """ENOSPC while writing checkpoint 4 (in Orbax's background writer): a clear error,
    checkpoints 0 and 2 and the metrics untouched, and the rerun resumes from step 2."""
    model_dir = tmp_path / "run"
    original = json_checkpoint_handler.JsonCheckpointHandler._save_fn

    async def full_disk(self, x, directory):
        if x.get("step") == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
        return await original(self, x, directory)

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full_disk)
    assert _train(model_dir, 6) == 1
    err = capsys.readouterr().err
    assert "writing checkpoint 4" in err and "No space left on device" in err
    assert "complete checkpoints [0, 2] are untouched" in err and "Traceback" not in err
    assert _steps(model_dir) == [0, 2]
    written = _rows(model_dir)  # every line intact
    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", original)
    assert _train(model_dir, STEPS) == 0
    rows = [r["step"] for r in _rows(model_dir)]
    assert rows[len(written)] == 3  # resumed from checkpoint 2
    _assert_same_losses(model_dir, reference)
