"""The command line: the quickstart path end to end, and clear errors on bad input."""

import json
import os
import pathlib

import pytest

from flanjax import cli

TINY = [
    "--gin_file=models/t5_micro.gin",
    "--gin.TRAIN_STEPS=4",
    "--gin.BATCH_SIZE=8",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 128, 'targets': 16}",
    "--gin.CheckpointConfig.save_every=2",
    "--gin.TrainConfig.show_progress=False",
    "--gin.EvalConfig.max_examples_per_task=4",
]


def test_quickstart_path_end_to_end(tmp_path, capsys):
    model_dir = str(tmp_path / "qs")
    flags = ["--gin_file=runs/quickstart.gin", f"--gin.MODEL_DIR='{model_dir}'", *TINY]
    assert cli.main(["train", *flags]) == 0
    assert sorted(os.listdir(f"{model_dir}/checkpoints")) == ["0", "2", "4"]
    assert os.path.exists(f"{model_dir}/config.gin")
    rows = [
        json.loads(x)
        for x in pathlib.Path(f"{model_dir}/train_metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [4]  # log_every 25: only the last step
    assert {"loss", "learning_rate", "tokens_per_sec", "nonpadding_fraction"} <= set(rows[-1])
    assert os.listdir(f"{model_dir}/tensorboard/train")
    assert cli.main(["eval", *flags]) == 0
    out = capsys.readouterr().out
    assert "| cluster | step 0 | step 2 | step 4 | gain |" in out
    res = json.loads(
        pathlib.Path(f"{model_dir}/eval/builtin.eval_comparison/step_4.json").read_text()
    )
    assert set(res["tasks"]) == {
        "builtin.larger_number",
        "builtin.parity",
        "builtin.alphabetical_first",
    }
    # A second eval finds nothing new and evaluates nothing twice.
    assert cli.main(["eval", *flags]) == 0
    assert "already evaluated" in capsys.readouterr().out


def test_tasks_list_and_show(capsys):
    assert cli.main(["tasks", "list"]) == 0
    assert "builtin.train_without_comparison (9 tasks)" in capsys.readouterr().out
    assert (
        cli.main(["tasks", "show", "builtin.addition", "--num", "2", "--split", "validation"]) == 0
    )
    out = capsys.readouterr().out
    assert out.count("[inputs] (") == 2 and "tokens)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--gin.MIXTURE_OR_TASK_NAME='builtin.train_without_comparisn'"],
         "unknown task or mixture 'builtin.train_without_comparisn'"),
        (["--gin.TrainConfig.trian_steps=3"], "trian_steps"),
        (["--gin.T5Confg.d_model=3"], "T5Confg"),
        (["--gin_file=runs/nonexistent.gin"], "runs/nonexistent.gin"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_error(tmp_path, capsys, argv, message):
    flags = ["--gin_file=runs/quickstart.gin", f"--gin.MODEL_DIR='{tmp_path}/x'", *TINY]
    assert cli.main(["train", *flags, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_required_value_is_named(capsys):
    argv = ["train", "--gin_file=models/t5_1_1_tiny.gin", "--gin_file=runs/finetune.gin"]
    assert cli.main(argv) == 2
    assert "MODEL_DIR" in capsys.readouterr().err
