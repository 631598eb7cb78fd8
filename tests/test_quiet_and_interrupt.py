"""The user's terminal: commands print no TensorFlow/absl/libtpu/CUDA chatter on stderr,
and Ctrl-C in `flanjax train` saves a checkpoint at the current step and exits 130; a
second Ctrl-C aborts at once.

Real subprocesses, started as a user would start them: no JAX_PLATFORMS and no
TF_CPP_MIN_LOG_LEVEL in the environment (tests/conftest.py sets both for pytest
itself), from a folder holding `runs/` and `models/` (the current folder is on
sys.path under `python -m`).
"""

import logging
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from flanjax import quiet

FLAGS = [
    "--gin_file=runs/quickstart.gin",
    "--gin.MIXTURE_OR_TASK_NAME='builtin.addition'",
    "--gin_file=models/t5_micro.gin",
    "--gin.BATCH_SIZE=8",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}",
    "--gin.CheckpointConfig.save_every=1000",
    "--gin.TrainConfig.log_every=1",
    "--gin.TrainConfig.show_progress=False",
    "--gin.TRAIN_STEPS=100000",
]
# flanjax's own lines: "flanjax <command>: ...", "flanjax: ..." and its loggers' warnings.
OURS = re.compile(r"^(flanjax[ :]|WARNING flanjax\.)")


@pytest.fixture
def user_env(tmp_path) -> dict[str, str]:
    for name in ("runs/quickstart", "models", "partitioning"):
        (tmp_path / name).mkdir(parents=True)
    env = {
        k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL")
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return env


def _flanjax(*argv: str) -> list[str]:
    return [sys.executable, "-m", "flanjax.cli", *argv]


def test_loading_chatter_is_dropped_and_other_lines_pass(capfd):
    with quiet.dropping_chatter():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n")  # fmt: skip
        os.write(2, b"I0000 00:00:1796160913.084030   11100 cudart_stub.cc:31] Could not find "
                    b"cuda drivers on your machine, GPU will not be used.\n")  # fmt: skip
        os.write(2, b"E0000 00:00:1796160927.175572   11100 cuda_platform.cc:52] failed call "
                    b"to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)\n")  # fmt: skip
        os.write(2, b"UserWarning: a warning that matters\n")
    assert capfd.readouterr().err == "UserWarning: a warning that matters\n"


def test_library_notices_are_filtered_and_other_warnings_stay(caplog):
    quiet.setup(verbose=False)
    absl = logging.getLogger("absl")
    absl.warning("Using an uncached FunctionDataset for training is not recommended ...")
    absl.warning("Given directory is read only=/tmp/run/checkpoints")
    absl.warning("a warning that matters")
    assert [r.getMessage() for r in caplog.records] == ["a warning that matters"]


def test_cpu_is_chosen_only_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(quiet, "_NVIDIA_DEVICES", ())
    monkeypatch.setattr(quiet, "_AMD_DEVICES", ())
    monkeypatch.setattr(quiet, "tpu_chips", lambda: 0)
    env = {"JAX_PLATFORMS": ""}
    assert quiet.choose_platforms(env) == "" and env == {"JAX_PLATFORMS": "cpu"}
    env = {"JAX_PLATFORMS": "tpu"}  # the user's choice stands
    assert quiet.choose_platforms(env) == "" and env == {"JAX_PLATFORMS": "tpu"}
    monkeypatch.setattr(quiet, "tpu_chips", lambda: 4)
    env = {}  # a TPU VM: jax chooses
    assert quiet.choose_platforms(env) == "" and env == {}


def test_tasks_list_prints_nothing_on_stderr(tmp_path, user_env):
    done = subprocess.run(
        _flanjax("tasks", "list"), cwd=tmp_path, env=user_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    assert "builtin.train_without_comparison (9 tasks)" in done.stdout


def _rows(model_dir: pathlib.Path) -> int:
    path = model_dir / "train_metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def _steps(model_dir: pathlib.Path) -> list[int]:
    folder = model_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())


def _start(tmp_path, env, model_dir) -> tuple[subprocess.Popen, pathlib.Path, pathlib.Path]:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    proc = subprocess.Popen(
        _flanjax("train", *FLAGS, f"--gin.MODEL_DIR='{model_dir}'"),
        cwd=tmp_path,
        env=env,
        stdout=out.open("w"),
        stderr=err.open("w"),
    )
    return proc, out, err


def _wait_for_rows(proc, model_dir, more_than: int, err: pathlib.Path) -> None:
    end = time.monotonic() + 300
    while _rows(model_dir) <= more_than:
        assert proc.poll() is None, f"exited early ({proc.returncode}):\n{err.read_text()[-3000:]}"
        assert time.monotonic() < end, err.read_text()[-3000:]
        time.sleep(0.05)


def test_ctrl_c_saves_at_the_step_and_a_second_one_aborts(tmp_path, user_env):
    model_dir = tmp_path / "run"
    proc, out, err = _start(tmp_path, user_env, model_dir)
    try:
        _wait_for_rows(proc, model_dir, 1, err)  # training (past step 1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = out.read_text(), err.read_text()
    stopped = int(re.search(r"stopped by a signal at step (\d+) of 100000 \(SIGINT\)", stdout)[1])
    assert stopped in _steps(model_dir) and stopped >= 2
    assert f"checkpoint saved in {model_dir}; rerun the same command to resume" in stdout
    lines = [line for line in stderr.splitlines() if line]
    assert lines[0] == "flanjax train: running on CPU: 8 devices"
    assert "flanjax: interrupt: finishing this step and saving a checkpoint" in stderr
    assert [line for line in lines if not OURS.match(line)] == []  # no library's line
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr

    # Resumed from the interrupted step; two Ctrl-C in a row: the process dies at once.
    proc, out, err = _start(tmp_path, user_env, model_dir)
    try:
        _wait_for_rows(proc, model_dir, stopped + 1, err)
        proc.send_signal(signal.SIGINT)
        end = time.monotonic() + 60
        while "flanjax: interrupt:" not in err.read_text():  # the first one is handled
            assert proc.poll() is None and time.monotonic() < end, err.read_text()[-3000:]
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)  # while it finishes the step and saves
        assert proc.wait(30) == -signal.SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "flanjax: second interrupt: aborting now" in err.read_text()
    assert _steps(model_dir)[-1] >= stopped  # the complete checkpoints stay
