"""The TPU pod and SLURM launchers (scripts/launch_*.sh) print, with --dry_run, a
command whose arguments reach `flanjax train` exactly; the partitioning files they
document parse into the meshes they describe."""

import os
import pathlib
import shlex
import subprocess

import pytest

from flanjax import gin_launch, partitioning, trainer

REPO = pathlib.Path(__file__).resolve().parents[1]

# An argument with quotes, braces and spaces: what a shell must pass through intact.
TRAIN_ARGS = [
    "--gin_file=models/t5_1_1_small.gin",
    "--gin_file=runs/finetune.gin",
    '--gin.MODEL_DIR="gs://bucket/flan_small"',
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 256, 'targets': 32}",
]


def _dry_run(script: str, env: dict[str, str]) -> list[str]:
    path = REPO / "scripts" / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    out = subprocess.run(
        ["bash", str(path), "--dry_run", *TRAIN_ARGS],
        env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return shlex.split(out.stdout)


def test_tpu_pod_launcher_runs_train_on_every_worker():
    env = {"TPU_NAME": "flan-v4-32", "ZONE": "us-central2-b", "PROJECT": "my-proj",
           "FLANJAX_DIR": "/opt/flanjax"}  # fmt: skip
    argv = _dry_run("launch_tpu_pod.sh", env)
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "flan-v4-32"]
    assert {"--zone=us-central2-b", "--project=my-proj", "--worker=all"} <= set(argv)
    remote = next(a for a in argv if a.startswith("--command="))[len("--command=") :]
    assert shlex.split(remote) == [
        "cd", "/opt/flanjax", "&&", "/opt/flanjax/.venv/bin/flanjax", "train", *TRAIN_ARGS
    ]  # fmt: skip
    missing = subprocess.run(
        ["bash", str(REPO / "scripts/launch_tpu_pod.sh"), "--dry_run", *TRAIN_ARGS],
        env={k: v for k, v in os.environ.items() if k != "TPU_NAME"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode != 0 and "TPU_NAME" in missing.stderr


@pytest.mark.parametrize(("per", "tasks"), [("gpu", "8"), ("node", "1")])
def test_slurm_launcher_one_process_per_gpu_or_node(per, tasks):
    env = {"NODES": "4", "GPUS_PER_NODE": "8", "PER": per, "PARTITION": "a100",
           "FLANJAX_BIN": "/opt/flanjax/.venv/bin/flanjax"}  # fmt: skip
    argv = _dry_run("launch_slurm.sh", env)
    assert argv[0] == "sbatch"
    assert {"--nodes=4", f"--ntasks-per-node={tasks}", "--gpus-per-node=8",
            "--partition=a100"} <= set(argv)  # fmt: skip
    wrapped = next(a for a in argv if a.startswith("--wrap="))[len("--wrap=") :]
    job = shlex.split(wrapped)
    assert job[0] == "srun" and job[job.index("train") - 1] == "/opt/flanjax/.venv/bin/flanjax"
    assert job[job.index("train") + 1 :] == TRAIN_ARGS


@pytest.mark.parametrize(
    ("name", "devices", "shape"),
    [("gpu_1", 1, (1, 1, 1, 1)), ("gpu_8", 8, (1, 1, 8, 1)), ("gpu_8", 16, (2, 1, 8, 1))],
)
def test_gpu_partitioning_files(name, devices, shape):
    gin_launch.parse(
        ["models/t5_1_1_tiny.gin", "runs/finetune.gin", f"partitioning/{name}.gin"],
        ['MODEL_DIR="/tmp/x"', 'MIXTURE_OR_TASK_NAME="builtin.all"',
         "TASK_FEATURE_LENGTHS={'inputs': 8, 'targets': 8}", "TRAIN_STEPS=1"],
    )  # fmt: skip
    cfg = gin_launch.build(trainer.TrainConfig)
    assert cfg.mesh.shape(devices) == shape
    assert cfg.mesh.rules == partitioning.DEFAULT_RULES
