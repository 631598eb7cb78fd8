"""The FLAN experiment runner and FLAN's instruction ablations, on a tiny model and the
built-in suite (the real run is in EXPERIMENTS.md)."""

from __future__ import annotations

import jax
from flax import nnx

import flanjax.tasks  # noqa: F401
from flanjax import checkpointing, flan_experiment, optimizers
from flanjax.data import ablations, registry
from flanjax.data.templates import Template
from flanjax.models import DecoderConfig, create_model

TINY = DecoderConfig(
    vocab_size=384, d_model=16, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8, d_ff=32
)


def test_bare_templates_keep_the_fields_and_drop_the_words():
    t = Template("t0", 'Premise: {premise}\n\nIs "{hypothesis}" true?\n{options}', "{answer}",
                 choices=("yes", "no"))  # fmt: skip
    assert ablations.bare(t).inputs == "{premise}\n{hypothesis}\n{options}"
    named = ablations.bare(t, "dataset_name", "rte")
    assert (
        named.inputs == "rte\n{premise}\n{hypothesis}\n{options}" and named.id == "t0_dataset_name"
    )
    record = {"id": "r0", "premise": "It rains.", "hypothesis": "It is wet.", "answer": "yes"}
    rendered = ablations.bare(t).render(record)
    assert rendered.inputs.startswith("It rains.\nIt is wet.\n") and rendered.targets == "yes"


def test_ablated_mixture_keeps_tasks_and_rates():
    name = ablations.register_ablation("builtin.train_without_comparison", "no_template")
    original = registry.get_mixture_or_task("builtin.train_without_comparison")
    ablated = registry.get_mixture_or_task(name)
    assert [t.name for t in ablated.tasks] == [f"{t.name}.no_template" for t in original.tasks]
    assert [ablated.get_rate(t) for t in ablated.tasks] == [
        original.get_rate(t) for t in original.tasks
    ]
    info = registry.get_task_info("builtin.addition.no_template")
    assert [t.inputs for t in info.templates] == ["{a}\n{b}"]


def test_the_experiment_trains_evaluates_and_tabulates(tmp_path):
    base = tmp_path / "base"
    with nnx.use_eager_sharding(False):
        params = nnx.state(create_model(TINY, nnx.Rngs(params=0)), nnx.Param)
    checkpointing.save_model(str(base), TINY, jax.device_get(params))
    cfg = flan_experiment.ExperimentConfig(
        work_dir=str(tmp_path / "exp"),
        base_checkpoint=str(base),
        suite="builtin",
        held_out="comparison",
        variants=("templates", "no_template"),
        train_steps=2,
        batch_size=8,
        feature_lengths={"inputs": 48, "targets": 8},
        optimizer=optimizers.OptimizerConfig(name="adamw", learning_rate=1e-3),
        prompt_format=None,
        max_eval_examples=4,
        eval_batch_size=4,
        pack=False,  # one example per row: the example log counts steps x batch
    )
    table = flan_experiment.run(cfg)
    lines = table.splitlines()
    assert lines[2].startswith("| run | examples / tokens seen | cluster |")
    assert [row.split(" | ")[0] for row in lines[4:]] == [
        "| untuned",
        "| templates",
        "| no_template",
    ]
    assert "| 16 / " in lines[5] and "| 16 / " in lines[6]  # 2 steps x 8 examples
    cluster_cells = [float(row.split(" | ")[2]) for row in lines[4:]]
    assert all(0.0 <= c <= 100.0 for c in cluster_cells), cluster_cells  # in %
    assert (tmp_path / "exp" / "experiment.md").read_text() == table
    baselines = [
        tmp_path / "exp" / v / "eval" / "builtin.eval_comparison" / "baseline.json"
        for v in ("templates", "no_template")
    ]
    assert baselines[0].read_text() == baselines[1].read_text()  # the base evaluated once
    assert flan_experiment.run(cfg) == table  # a rerun reuses the trained and evaluated runs
