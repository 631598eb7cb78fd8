"""Two processes x 4 CPU devices (`jax.distributed` on 127.0.0.1, gloo collectives):
train, checkpoint, stop, resume; the resumed run equals the uninterrupted one step for
step, and no example is skipped or repeated.

The processes are real: this file is also the driver each of them runs
(`python tests/test_multihost.py PROCESS_ID NUM_PROCESSES PORT MODEL_DIR STEPS`).
To keep to two launches (each pays for imports, the input pipeline and compilation):

1. two processes train `full` to step 6, checkpointing at steps 3 and 6;
2. `cut` is what they would have left had they been stopped right after the step-3
   checkpoint (a copy of `full` without the later checkpoint and log rows); two new
   processes resume it to step 6.

The mesh is fsdp=8 over both processes, so each process holds half of every
parameter (and writes it into each checkpoint) and reads its half of every batch.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

NUM_PROCESSES = 2
DEVICES_PER_PROCESS = 4
TRAIN_STEPS = 6
STOP_AT = 3
TIMEOUT_S = 240


def _driver(process_id: int, num_processes: int, port: int, model_dir: str, steps: int) -> None:
    """One process of the run: joins the others and trains (or resumes) `model_dir`."""
    import logging

    import flanjax.tasks  # noqa: F401  (registers the built-in tasks)
    from flanjax import checkpointing, distributed, partitioning, trainer
    from flanjax.data import mixing
    from flanjax.data.pipeline import DataConfig
    from flanjax.models.t5 import T5Config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # A two-task mixture of built-in tasks: mixture sampling at a tenth of the set-up cost.
    mixing.register_mixture("multihost.mix", ["builtin.addition", "builtin.reverse_word"])

    model = T5Config(vocab_size=384, d_model=32, num_heads=4, head_dim=8, d_ff=64,
                     num_encoder_layers=1, num_decoder_layers=1)  # fmt: skip
    cfg = trainer.TrainConfig(
        model_dir=model_dir,
        data=DataConfig("multihost.mix", {"inputs": 32, "targets": 8}, 8),
        model=model,
        train_steps=steps,
        mesh=partitioning.MeshConfig(data=1, fsdp=-1),
        checkpoint=checkpointing.CheckpointConfig(save_every=STOP_AT, keep=0, save_initial=False),
        log_every=1,
        show_progress=False,
        record_example_ids=True,
        distributed=distributed.DistributedConfig(
            coordinator_address=f"127.0.0.1:{port}",
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=TIMEOUT_S,
        ),
    )
    trainer.train(cfg)


if __name__ == "__main__":
    # Unoptimized machine code halves the compile time that dominates each process.
    os.environ["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS} "
        "--xla_backend_optimization_level=0"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"
    _driver(*map(int, sys.argv[1:4]), sys.argv[4], int(sys.argv[5]))
    sys.exit(0)

import pytest  # noqa: E402  (the driver above needs none of the test's imports)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(model_dir: pathlib.Path, process: int) -> pathlib.Path:
    return model_dir.parent / f"{model_dir.name}.process_{process}.log"


def _launch(model_dir: pathlib.Path, steps: int) -> float:
    """Trains `model_dir` to `steps` in NUM_PROCESSES processes; returns the wall time.
    On failure (or a hang past TIMEOUT_S) every process is killed and their logs shown."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    port, t0, procs = _free_port(), time.perf_counter(), []
    for i in range(NUM_PROCESSES):
        log = open(_log(model_dir, i), "w")  # noqa: SIM115  (the child's stdout)
        cmd = [sys.executable, __file__, str(i), str(NUM_PROCESSES), str(port), str(model_dir),
               str(steps)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        log.close()
    try:
        codes = [p.wait(timeout=max(1.0, TIMEOUT_S - (time.perf_counter() - t0))) for p in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if codes != [0] * NUM_PROCESSES:
        logs = "\n".join(
            f"--- process {i} ---\n" + _log(model_dir, i).read_text()[-3000:]
            for i in range(NUM_PROCESSES)
        )
        pytest.fail(
            f"{model_dir.name}: exit codes {codes} (None: timed out after {TIMEOUT_S}s)\n{logs}"
        )
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, pathlib.Path]:
    """MODEL_DIRs of the uninterrupted run (`full`) and the stopped-and-resumed one (`cut`)."""
    tmp = tmp_path_factory.mktemp("multihost")
    full, cut = tmp / "full", tmp / "cut"
    first = _launch(full, TRAIN_STEPS)
    _stop_after(full, cut, STOP_AT)
    resume = _launch(cut, TRAIN_STEPS)
    print(f"launch 1 (full run): {first:.1f}s, launch 2 (resume): {resume:.1f}s")
    return {"full": full, "cut": cut}


def _stop_after(src: pathlib.Path, dst: pathlib.Path, step: int) -> None:
    """`dst`: what `src`'s processes would have left had they been stopped right after
    checkpoint `step`: later checkpoints and later rows of the logs removed."""
    shutil.copytree(src, dst)
    for ckpt in (dst / "checkpoints").iterdir():
        if ckpt.name.isdigit() and int(ckpt.name) > step:
            shutil.rmtree(ckpt)
    for log in [dst / "train_metrics.jsonl", *(dst / "example_ids").iterdir()]:
        rows = [r for r in log.read_text().splitlines() if json.loads(r)["step"] <= step]
        log.write_text("".join(r + "\n" for r in rows))
    shutil.rmtree(dst / "tensorboard")


def _rows(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resumed_losses_equal_uninterrupted_run(runs):
    full = {r["step"]: r["loss"] for r in _rows(runs["full"] / "train_metrics.jsonl")}
    cut_rows = _rows(runs["cut"] / "train_metrics.jsonl")
    cut = {r["step"]: r["loss"] for r in cut_rows}
    steps = list(range(1, TRAIN_STEPS + 1))
    assert [r["step"] for r in cut_rows] == steps  # stopped at 3, resumed at 4, no step twice
    assert sorted(full) == steps
    # Bitwise: the same program on the same mesh and data, state restored exactly.
    assert [cut[s] for s in steps] == [full[s] for s in steps]
    assert full[TRAIN_STEPS] < full[1]


def test_no_example_skipped_or_repeated(runs):
    """Each process reads its own shard (disjoint ids); the resumed run sees exactly
    the uninterrupted run's examples, batch by batch, none twice."""
    every = []
    for i in range(NUM_PROCESSES):
        full = _rows(runs["full"] / "example_ids" / f"process_{i}.jsonl")
        cut = _rows(runs["cut"] / "example_ids" / f"process_{i}.jsonl")
        assert [r["step"] for r in cut] == list(range(1, TRAIN_STEPS + 1))
        assert cut == full, f"process {i}: the resumed run's examples differ"
        ids = [x for r in full for x in r["ids"]]
        assert all(r["ids"] for r in full) and len(set(ids)) == len(ids)
        every.append(set(ids))
    assert not every[0] & every[1], "the two processes read overlapping examples"


def test_checkpoint_written_by_both_processes(runs):
    """fsdp spans the processes, so each writes its half of the parameters (OCDBT
    keeps one folder per process); the data position is the step count."""
    assert _steps(runs["cut"]) == [STOP_AT, TRAIN_STEPS]
    for step in (STOP_AT, TRAIN_STEPS):  # the first launch's, and the resumed launch's
        ckpt = runs["cut"] / "checkpoints" / str(step)
        writers = sorted(p.name for p in (ckpt / "params").glob("ocdbt.process_*"))
        assert writers == [f"ocdbt.process_{i}" for i in range(NUM_PROCESSES)]
        data = json.loads((ckpt / "data" / "metadata").read_text())
        assert data == {"batches_consumed": step}


def _steps(model_dir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (model_dir / "checkpoints").iterdir() if p.name.isdigit())


def test_metrics_logged_with_task_counts_summed_over_processes(runs):
    """Issue 5's metrics are in every row; the per-task example counts are the global
    batch's (both processes' examples), matching the example-id records."""
    rows = _rows(runs["full"] / "train_metrics.jsonl")
    expected = {
        "loss",
        "accuracy",
        "z_loss",
        "grad_norm",
        "learning_rate",
        "tokens_per_sec",
        "nonpadding_fraction",
        "model_tflops_per_sec",
    }  # no "mfu" on CPU: no known peak (tests/test_flops.py checks it)
    ids = [_rows(runs["full"] / "example_ids" / f"process_{i}.jsonl") for i in range(2)]
    for row in rows:
        assert expected <= set(row), sorted(expected - set(row))
        per_task = {k: v for k, v in row.items() if k.startswith("task_examples/")}
        assert set(per_task) == {"task_examples/builtin.addition",
                                 "task_examples/builtin.reverse_word"}  # fmt: skip
        in_batch = sum(len(p[row["step"] - 1]["ids"]) for p in ids)
        assert sum(per_task.values()) == in_batch
        assert 0 < row["nonpadding_fraction"] <= 1
