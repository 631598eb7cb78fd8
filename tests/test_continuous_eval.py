"""Continuous evaluation beside a concurrent `flanjax train`: each checkpoint once,
and a killed evaluator resumes without evaluating anything twice."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

MIX = "builtin.eval_comparison"
FLAGS = [
    "--gin_file=runs/quickstart.gin",
    "--gin_file=models/t5_micro.gin",
    "--gin.TRAIN_STEPS=6",
    "--gin.BATCH_SIZE=8",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 128, 'targets': 16}",
    "--gin.CheckpointConfig.save_every=2",
    "--gin.CheckpointConfig.save_initial=False",
    "--gin.TrainConfig.show_progress=False",
    "--gin.EvalConfig.max_examples_per_task=4",
    "--gin.EvalConfig.continuous=True",
    "--gin.EvalConfig.poll_seconds=1.0",
    "--gin.EvalConfig.stop_after_step=6",
    "--gin.EvalConfig.max_idle_seconds=240.0",
]


def _start(cmd: str, model_dir: str, log: pathlib.Path) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    argv = [sys.executable, "-m", "flanjax.cli", cmd, *FLAGS, f"--gin.MODEL_DIR='{model_dir}'"]
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait_for(path: pathlib.Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"process exited early with {proc.returncode}"
        assert time.monotonic() < end, f"timed out waiting for {path}"
        time.sleep(0.5)


def test_continuous_eval_beside_training_survives_a_kill(tmp_path):
    model_dir = tmp_path / "run"
    eval_rows = model_dir / f"eval_{MIX}_metrics.jsonl"
    evaluator = _start("eval", str(model_dir), tmp_path / "eval1.log")  # starts before training
    trainer = _start("train", str(model_dir), tmp_path / "train.log")
    try:
        _wait_for(eval_rows, evaluator)
        evaluator.send_signal(signal.SIGKILL)  # killed mid-run, after its first checkpoint
        evaluator.wait(30)
        assert trainer.wait(300) == 0, (tmp_path / "train.log").read_text()[-2000:]
        evaluator = _start("eval", str(model_dir), tmp_path / "eval2.log")
        assert evaluator.wait(300) == 0, (tmp_path / "eval2.log").read_text()[-2000:]
    finally:
        for p in (trainer, evaluator):
            if p.poll() is None:
                p.kill()
    steps = [json.loads(x)["step"] for x in eval_rows.read_text().splitlines()]
    assert sorted(steps) == [2, 4, 6]  # each checkpoint evaluated exactly once
    for s in (2, 4, 6):
        assert (model_dir / "eval" / MIX / f"step_{s}.json").exists()
    assert "| cluster | step 2 | step 4 | step 6 | gain |" in (tmp_path / "eval2.log").read_text()
