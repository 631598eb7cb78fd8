"""The small-scale FLAN experiment: instruction tuning with a cluster held out, against
FLAN's ablations, on a pretrained checkpoint.

Variants, each trained from the same checkpoint for the same steps on the same
tasks and records (only the rendering differs):
  templates     `<suite>.train_without_<cluster>`: every record through its task's
                natural-language templates (FLAN);
  no_template   the inputs alone (data/ablations.py);
  dataset_name  the inputs prefixed by the dataset's name.
Each variant's final checkpoint and the untuned checkpoint are then evaluated on
`<suite>.eval_<cluster>` zero-shot, with instructions, by rank classification and
the tasks' metrics, per template (mean, std, min and max over templates). The
table, with the examples and tokens each run saw, goes to WORK_DIR/experiment.md.

A rerun resumes: finished trainings and evaluations are reused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence

from flanjax import checkpointing, optimizers, partitioning, trainer
from flanjax.data import ablations
from flanjax.data.pipeline import DataConfig
from flanjax.evaluation import evaluator

VARIANTS = ("templates", "no_template", "dataset_name")
# FLAN (Wei et al., 2021, fig. 8): the held-out zero-shot score of each setup relative to
# instruction tuning with templates (FLAN 137B): no template and dataset name fall far below.
PUBLISHED = {
    "untuned": "the base model's zero-shot score",
    "templates": "best: FLAN's gain over the untuned model",
    "no_template": "much lower than templates (most of the gain lost)",
    "dataset_name": "lower than templates, above no template",
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    work_dir: str
    base_checkpoint: str  # a MODEL_DIR, e.g. `flanjax convert --from hf` of SmolLM2
    suite: str = "flan"
    held_out: str = "entailment"
    variants: tuple[str, ...] = ("templates", "no_template")
    train_steps: int = 100
    batch_size: int = 8
    feature_lengths: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"inputs": 256, "targets": 64}
    )
    optimizer: optimizers.OptimizerConfig = optimizers.OptimizerConfig(
        name="adamw", learning_rate=2e-5, schedule="constant"
    )
    prompt_format: str | None = "chat"
    mesh: partitioning.MeshConfig = partitioning.MeshConfig()
    pack: bool = True  # several examples per row (as T5X tunes FLAN); counted exactly
    eval_batch_size: int = 16
    max_eval_examples: int = 0  # per task; 0: all
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"ExperimentConfig.variants {bad}: use {VARIANTS}")


def train_mixture(cfg: ExperimentConfig, variant: str) -> str:
    mixture = f"{cfg.suite}.train_without_{cfg.held_out}"
    return mixture if variant == "templates" else ablations.register_ablation(mixture, variant)


def train_config(cfg: ExperimentConfig, variant: str) -> trainer.TrainConfig:
    data = DataConfig(
        train_mixture(cfg, variant),
        dict(cfg.feature_lengths),
        cfg.batch_size,
        pack=cfg.pack,
        seed=cfg.seed,
        feature_converter="auto",
        prompt_format=cfg.prompt_format,
    )
    return trainer.TrainConfig(
        model_dir=os.path.join(cfg.work_dir, variant),
        data=data,
        model=None,  # the checkpoint's architecture
        train_steps=cfg.train_steps,
        optimizer=cfg.optimizer,
        mesh=cfg.mesh,
        checkpoint=checkpointing.CheckpointConfig(
            save_every=cfg.train_steps, save_initial=False, async_save=False
        ),
        initial_checkpoint_path=cfg.base_checkpoint,
        seed=cfg.seed,
        log_every=1,  # every step's token counts, for the table
        record_example_ids=True,  # the examples (per task) behind every packed batch
        show_progress=True,
    )


def eval_config(cfg: ExperimentConfig, variant: str) -> evaluator.EvalConfig:
    return evaluator.EvalConfig(
        model_dir=os.path.join(cfg.work_dir, variant),
        mixture_or_task_name=f"{cfg.suite}.eval_{cfg.held_out}",
        task_feature_lengths=dict(cfg.feature_lengths),
        batch_size=cfg.eval_batch_size,
        max_examples_per_task=cfg.max_eval_examples,
        checkpoints="latest",
        baseline_checkpoint_path=cfg.base_checkpoint,
    )


def seen(model_dir: str) -> dict[str, float]:
    """Steps, examples and real (non-padding) tokens a run trained on, from the per-task
    counts its example log wrote into train_metrics.jsonl."""
    path = os.path.join(model_dir, "train_metrics.jsonl")
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]

    def total(prefix: str) -> float:
        return sum(v for r in rows for k, v in r.items() if k.startswith(prefix))

    return {
        "steps": len(rows),
        "examples": int(total("task_examples/")),
        "tokens": total("task_tokens/"),
        "target_tokens": sum(r.get("target_tokens", 0.0) for r in rows),
        "first_loss": rows[0]["loss"] if rows else float("nan"),
        "last_loss": rows[-1]["loss"] if rows else float("nan"),
    }


def _reuse_baseline(cfg: ExperimentConfig, variant: str) -> None:
    """The untuned checkpoint is evaluated once: a variant trained in the same prompt
    layout (MODEL_DIR/vocab/layout.json) takes an earlier variant's baseline.json."""
    mixture = f"{cfg.suite}.eval_{cfg.held_out}"
    mine = os.path.join(cfg.work_dir, variant)
    dst = evaluator.results_path(mine, mixture, evaluator.BASELINE)
    for other in (os.path.join(cfg.work_dir, v) for v in cfg.variants if v != variant):
        src = evaluator.results_path(other, mixture, evaluator.BASELINE)
        if os.path.exists(dst) or not os.path.exists(src):
            continue
        if _read(os.path.join(other, "vocab", "layout.json")) == _read(
            os.path.join(mine, "vocab", "layout.json")
        ):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)


def _read(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def run_variant(cfg: ExperimentConfig, variant: str) -> dict:
    """Trains (or resumes) one variant and evaluates its last checkpoint and the base."""
    tcfg = train_config(cfg, variant)
    trainer.train(tcfg)
    ecfg = eval_config(cfg, variant)
    _reuse_baseline(cfg, variant)
    baseline = evaluator.evaluate_baseline(ecfg)
    step = evaluator.all_steps(ecfg.model_dir)[-1]
    path = evaluator.results_path(ecfg.model_dir, ecfg.mixture_or_task_name, step)
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
    else:
        result = evaluator.evaluate_checkpoint(ecfg, step)
    stats = seen(tcfg.model_dir)
    return {
        "result": result,
        "baseline": baseline,
        "seen": stats,
        "mixture": tcfg.data.mixture_or_task_name,
    }


def run(cfg: ExperimentConfig) -> str:
    """Every variant, then the table (also written to WORK_DIR/experiment.md)."""
    os.makedirs(cfg.work_dir, exist_ok=True)
    runs = {v: run_variant(cfg, v) for v in cfg.variants}
    table = format_table(cfg, runs)
    with open(os.path.join(cfg.work_dir, "experiment.md"), "w") as f:
        f.write(table)
    with open(os.path.join(cfg.work_dir, "experiment.json"), "w") as f:
        json.dump({"config": repr(cfg), "runs": runs}, f, indent=1, default=str)
    return table


def _row(name: str, result: Mapping, cluster: str, tasks: Sequence[str], seen: str) -> str:
    c = result["clusters"][cluster]
    cells = [f"{c['mean']:.1f}"]  # scores are in % already
    for t in tasks:
        s = result["tasks"][t]
        cells.append(f"{s['mean']:.1f} ± {s['std']:.1f} [{s['min']:.1f}, {s['max']:.1f}]")
    return f"| {name} | {seen} | " + " | ".join(cells) + f" | {PUBLISHED[name]} |"


def format_table(cfg: ExperimentConfig, runs: Mapping[str, dict]) -> str:
    cluster = cfg.held_out
    first = next(iter(runs.values()))
    tasks = sorted(first["result"]["tasks"])
    head = "| run | examples / tokens seen | cluster | " + " | ".join(tasks) + " | FLAN's finding |"
    rule = "|" + "---|" * (len(tasks) + 4)
    lines = [
        f"Held-out cluster `{cluster}` ({cfg.suite}.eval_{cluster}), zero-shot, score in % "
        "(task: mean ± std [min, max] over templates)",
        "",
        head,
        rule,
        _row("untuned", first["baseline"], cluster, tasks, "0 / 0"),
    ]
    for variant, r in runs.items():
        s = r["seen"]
        loss = f"loss {s['first_loss']:.2f} -> {s['last_loss']:.2f}"
        seen = f"{s['examples']:,} / {s['tokens']:,.0f} ({loss})"
        lines.append(_row(variant, r["result"], cluster, tasks, seen))
    return "\n".join(lines) + "\n"
