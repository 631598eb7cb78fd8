"""The command line: the quickstart path end to end, and clear errors on bad input.

Every test here runs from a folder holding `runs/`, `models/` and `partitioning/`
that is also on sys.path (as the repo root is after scripts/quickstart.sh, under
pytest): gin files must still resolve to the shipped ones.
"""

import json
import os
import pathlib

import gin
import pytest

from flanjax import cli, gin_launch


@pytest.fixture(autouse=True)
def shadowing_folders(tmp_path_factory, monkeypatch) -> pathlib.Path:
    cwd = tmp_path_factory.mktemp("cwd")
    for name in ("runs/quickstart/checkpoints", "models", "partitioning"):
        (cwd / name).mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(cwd))
    return cwd


def test_shadowing_folders_trip_gin_alone_but_not_flanjax(shadowing_folders):
    with pytest.raises(TypeError):  # gin's importlib reader: a namespace package `runs`
        gin.parse_config_file("runs/finetune.gin")
    files = ["runs/quickstart.gin", "models/t5_micro.gin", "partitioning/gpu_1.gin"]
    gin_launch.parse(files, ["TRAIN_STEPS=3"])
    assert gin.query_parameter("%TRAIN_STEPS") == 3
    assert gin.query_parameter("T5Config.d_model") == 32  # models/t5_micro.gin, shipped
    (shadowing_folders / "runs" / "finetune.gin").write_text("TRAIN_STEPS = 7\n")
    gin_launch.parse(["runs/finetune.gin"], [])  # the current folder comes first
    assert gin.query_parameter("%TRAIN_STEPS") == 7


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


@pytest.mark.parametrize(
    "text, expected",
    [
        ("include 'runs/quickstart.gin'\n\nBATCH_SIZE = {'a': 1\n",
         "{path}:3: unclosed bracket or string (gin: EOF in multi-line statement): "
         "BATCH_SIZE = {{'a': 1"),
        ("include 'runs/quickstart.gin'\nTRAIN_STEPS = = 4\n",
         "{path}:2: Unable to parse value: TRAIN_STEPS = = 4"),
        ("include 'runs/quickstart.gin'\nTrainConfig.log_every = @nothing()\n",
         "No configurable matching reference '@nothing()'. "
         "(in {path}, line 2: TrainConfig.log_every = @nothing())"),
        ("include 'runs/quickstart.gin'\ninclude 'mine/absent.gin'\n",
         "gin file 'mine/absent.gin' not found in {cwd}, {shipped} "
         "(in {path}, line 2: include 'mine/absent.gin')"),
    ],
)  # fmt: skip
def test_gin_file_errors_name_file_line_and_text(tmp_path, capsys, text, expected):
    path = tmp_path / "run.gin"
    path.write_text(text)
    assert cli.main(["train", f"--gin_file={path}"]) == 2
    shipped = gin_launch.gin_configs_dir()
    expected = expected.format(path=path, cwd=os.getcwd(), shipped=shipped)
    assert capsys.readouterr().err == f"flanjax train: error: gin: {expected}\n"


@pytest.mark.parametrize(
    "binding, expected",
    [
        ("TASK_FEATURE_LENGTHS='256'",
         "TASK_FEATURE_LENGTHS = '256' (str): expected a dict of feature name to a positive "
         "int, e.g. {'inputs': 512, 'targets': 128}"),
        ("TASK_FEATURE_LENGTHS={'inputs': 256, 'targets': '32'}",
         "TASK_FEATURE_LENGTHS = {'inputs': 256, 'targets': '32'} (dict): expected a dict of "
         "feature name to a positive int, e.g. {'inputs': 512, 'targets': 128}"),
        ("BATCH_SIZE='8'", "BATCH_SIZE = '8' (str): expected a positive int, e.g. 128"),
        ("BATCH_SIZE=0", "BATCH_SIZE = 0 (int): expected a positive int, e.g. 128"),
        ("TRAIN_STEPS=1.5", "TRAIN_STEPS = 1.5 (float): expected a non-negative int, e.g. 2000"),
        ("BATCH_SIZE=(8", "--gin.BATCH_SIZE=(8: unclosed bracket or string "
                          "(gin: EOF in multi-line statement)"),
        ("TRAIN_STEPS==2",
         "--gin.TRAIN_STEPS==2: Couldn't parse statement, expected ':' or '=': TRAIN_STEPS==2"),
        ("T5Confg.d_model=3", "No configurable matching 'T5Confg'. (in --gin.T5Confg.d_model=3)"),
    ],
)  # fmt: skip
def test_macro_and_binding_errors_name_the_value_and_form(tmp_path, capsys, binding, expected):
    flags = ["--gin_file=runs/quickstart.gin", f"--gin.MODEL_DIR='{tmp_path}/x'"]
    assert cli.main(["train", *flags, f"--gin.{binding}"]) == 2
    assert capsys.readouterr().err == f"flanjax train: error: gin: {expected}\n"


def test_missing_required_value_is_named(capsys):
    argv = ["train", "--gin_file=models/t5_1_1_tiny.gin", "--gin_file=runs/finetune.gin"]
    assert cli.main(argv) == 2
    assert "MODEL_DIR" in capsys.readouterr().err
