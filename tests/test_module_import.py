"""Researchers' own task modules, outside the repo: `--module_import=NAME` and the
MIXTURE_OR_TASK_MODULE gin macro register tasks for `tasks`, `train` and `eval`.

The module is README.md's own example ("Adding a task or mixture"), written to a
temporary folder under a fresh name per command, so each command is shown to import
it (a module imported once stays in sys.modules).
"""

import json
import pathlib
import re

import pytest

import flanjax.trainer  # noqa: F401  (metric_writers.Progress binds sys.stderr at import: not under capsys)
from flanjax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
MICRO = [
    "--gin_file=runs/quickstart.gin",
    "--gin_file=models/t5_micro.gin",
    "--gin.BATCH_SIZE=8",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}",
    "--gin.TrainConfig.show_progress=False",
    "--gin.EvalConfig.max_examples_per_task=2",
]


def readme_module() -> str:
    """The python block of README.md's "Adding a task or mixture" section."""
    section = REPO.joinpath("README.md").read_text().split("### Adding a task or mixture")[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """write(name) -> the module `name` (README's example registering `name.capitals` and
    `name.mix`) in a folder outside the repo, which is the current folder."""
    monkeypatch.chdir(tmp_path)

    def write(name: str) -> str:
        source = readme_module().replace('"my.', f'"{name}.')
        (tmp_path / f"{name}.py").write_text(source)
        return name

    return write


def test_readme_module_registers_for_tasks_show(user_module, capsys):
    name = user_module("usershow_tasks")
    argv = ["tasks", "show", f"{name}.capitals", "--num", "5", "--split", "validation"]
    assert cli.main([*argv, f"--module_import={name}"]) == 0
    out = capsys.readouterr().out  # the two validation records, whichever template
    assert out.count("--- example") == 2 and "Chile" in out and "Egypt" in out


def test_tasks_list_imports_the_module_a_run_file_names(user_module, tmp_path, capsys):
    name = user_module("userlist_tasks")
    run = tmp_path / "my_run.gin"
    run.write_text(f"include 'runs/finetune.gin'\nMIXTURE_OR_TASK_MODULE = ['{name}']\n")
    assert cli.main(["tasks", "list", f"--gin_file={run}"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^{name}\.capitals\s+closed_book_qa\s+3  train 4, validation 2$", out, re.M)
    assert f"  {name}.mix (2 tasks)" in out


def test_module_not_found_is_named(user_module, capsys):
    assert cli.main(["tasks", "list", "--module_import=no_such_tasks_module"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "flanjax tasks: error: module_import 'no_such_tasks_module': no module named "
        "'no_such_tasks_module' in the current folder ("
    )


def test_train_and_eval_on_a_task_of_a_user_module(user_module, tmp_path, capsys):
    train_mod, eval_mod = user_module("usertrain_tasks"), user_module("usereval_tasks")
    model_dir = tmp_path / "run"
    flags = [*MICRO, f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=2"]
    task = f"--gin.MIXTURE_OR_TASK_NAME='{train_mod}.capitals'"
    assert cli.main(["train", *flags, task, f"--module_import={train_mod}"]) == 0
    assert "done at step 2" in capsys.readouterr().out
    mixture = f"{eval_mod}.capitals"
    eval_flags = [f"--module_import={eval_mod}", f"--gin.EVAL_MIXTURE_OR_TASK_NAME='{mixture}'"]
    assert cli.main(["eval", *flags, *eval_flags]) == 0
    result = json.loads((model_dir / "eval" / mixture / "step_2.json").read_text())
    assert sorted(result["tasks"][mixture]["templates"]) == ["t0", "t2"]  # t1 is inverted
    assert result["tasks"][mixture]["cluster"] == "closed_book_qa"
