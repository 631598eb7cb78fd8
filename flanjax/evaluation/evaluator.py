"""Held-out evaluation of Orbax checkpoints: every record through every template.

For each task of the evaluation mixture and each of its templates:
  * templates with answer choices: rank classification. Every choice is scored
    by its log-likelihood given the inputs (the encoder runs once per example);
    the prediction is the highest summed log-likelihood ("accuracy") or the
    highest per-token mean ("accuracy_len_norm").
  * other templates: greedy decoding, scored by the task's metric.
Scores are aggregated per template, per task (mean over templates with std,
min and max) and per cluster (mean over its tasks), and written per checkpoint
to MODEL_DIR/eval/<mixture>/step_<N>.json; `report.py` turns those into a markdown table.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import seqio
from flax import nnx

from flanjax import checkpointing, inference, partitioning, train_state
from flanjax.data import registry
from flanjax.data.templates import RenderedExample, Template
from flanjax.evaluation import metrics as metrics_lib

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    model_dir: str
    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    batch_size: int = 32
    split: str = "validation"
    max_examples_per_task: int = 0  # 0: all records
    checkpoints: str = "new"  # "new": not yet evaluated; "latest"; "all"
    # Continuous mode: watch MODEL_DIR and evaluate each new checkpoint as it lands.
    continuous: bool = False
    poll_seconds: float = 10.0
    stop_after_step: int = -1  # stop once a checkpoint at or past this step is evaluated
    max_idle_seconds: float = 0.0  # stop after this long without a new checkpoint; 0: never

    def __post_init__(self) -> None:
        if self.checkpoints not in ("new", "latest", "all"):
            raise ValueError(f"EvalConfig.checkpoints {self.checkpoints!r}: use new, latest or all")


def eval_dir(model_dir: str, mixture: str) -> str:
    """MODEL_DIR/eval/<mixture>/: one folder per evaluated mixture."""
    return os.path.join(model_dir, "eval", mixture)


def results_path(model_dir: str, mixture: str, step: int) -> str:
    return os.path.join(eval_dir(model_dir, mixture), f"step_{step}.json")


class TokenizedTemplate:
    """A template's rendered records as padded token arrays."""

    def __init__(self, examples: Sequence[RenderedExample], vocab: seqio.Vocabulary, lengths):
        self.examples = examples
        eos = vocab.eos_id

        def ids(text: str, n: int) -> list[int]:
            return list(vocab.encode(text))[: n - 1] + [eos]

        self.inputs = inference.pad_rows(
            [ids(e.inputs, lengths["inputs"]) for e in examples], lengths["inputs"]
        )
        self.num_choices = max((len(e.choices) for e in examples), default=0)
        if self.num_choices:
            rows, self.choice_mask = [], np.zeros((len(examples), self.num_choices), bool)
            for i, e in enumerate(examples):
                for c in range(self.num_choices):
                    has = c < len(e.choices)
                    self.choice_mask[i, c] = has
                    rows.append(ids(e.choices[c], lengths["targets"]) if has else [])
            self.choices = inference.pad_rows(rows, lengths["targets"])
            self.choice_lengths = (self.choices != 0).sum(-1).reshape(len(examples), -1)


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield start, min(start + batch_size, n)


def _pad_to(x: np.ndarray, rows: int) -> np.ndarray:
    return (
        np.concatenate([x, np.zeros((rows - len(x), *x.shape[1:]), x.dtype)])
        if len(x) < rows
        else x
    )


def rank_classify(model: nnx.Module, tt: TokenizedTemplate, batch_size: int) -> np.ndarray:
    """Log-likelihoods [N, C] of every choice (-inf for padding choices)."""
    c, out = tt.num_choices, []
    for s, e in _batches(len(tt.examples), batch_size):
        inputs = _pad_to(tt.inputs[s:e], batch_size)
        choices = _pad_to(tt.choices[s * c : e * c], batch_size * c)
        ll = np.asarray(inference.score_choices(model, inputs, choices, num_choices=c))
        out.append(ll[: e - s])
    ll = np.concatenate(out)
    return np.where(tt.choice_mask, ll, -np.inf)


def generate(
    model: nnx.Module, tt: TokenizedTemplate, vocab, batch_size: int, max_length: int
) -> list[str]:
    texts = []
    for s, e in _batches(len(tt.examples), batch_size):
        out = np.asarray(
            inference.greedy_decode(model, _pad_to(tt.inputs[s:e], batch_size), max_length)
        )
        for row in out[: e - s]:
            ids = [int(t) for t in row if t != 0]
            ids = ids[: ids.index(vocab.eos_id)] if vocab.eos_id in ids else ids
            texts.append(vocab.decode(ids))
    return texts


def evaluate_template(
    model, task: registry.TaskInfo, template: Template, records, cfg: EvalConfig
) -> dict:
    examples = [template.render(r, task=task.name) for r in records]
    vocab = seqio.get_mixture_or_task(task.name).output_features["targets"].vocabulary
    tt = TokenizedTemplate(examples, vocab, cfg.task_feature_lengths)
    targets = [e.targets for e in examples]
    if template.has_choices:
        ll = rank_classify(model, tt, cfg.batch_size)
        norm = ll / np.maximum(tt.choice_lengths, 1)
        pick = [e.choices[i] for e, i in zip(examples, ll.argmax(-1), strict=True)]
        pick_norm = [e.choices[i] for e, i in zip(examples, norm.argmax(-1), strict=True)]
        scores = {
            "accuracy": metrics_lib.accuracy(targets, pick)["accuracy"],
            "accuracy_len_norm": metrics_lib.accuracy(targets, pick_norm)["accuracy"],
        }
        primary = "accuracy"
    else:
        predictions = generate(
            model, tt, vocab, cfg.batch_size, cfg.task_feature_lengths["targets"]
        )
        scores = metrics_lib.get_metric(template.metric or task.metric)(targets, predictions)
        primary = next(iter(scores))
    return {
        "score": scores[primary],
        "metric": primary,
        "metrics": scores,
        "num_examples": len(examples),
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def evaluate_model(model: nnx.Module, cfg: EvalConfig) -> dict:
    """Scores per template, per task and per cluster for one model."""
    tasks, clusters = {}, {}
    for name in registry.tasks_of(cfg.mixture_or_task_name):
        info = registry.get_task_info(name)
        records = list(info.records(cfg.split))
        if cfg.max_examples_per_task:
            records = records[: cfg.max_examples_per_task]
        per_template = {
            t.id: evaluate_template(model, info, t, records, cfg) for t in info.templates
        }
        spread = _spread([r["score"] for r in per_template.values()])
        tasks[name] = {"cluster": info.cluster, "templates": per_template, **spread}
        clusters.setdefault(info.cluster, []).append(spread["mean"])
    return {
        "tasks": tasks,
        "clusters": {
            c: {"mean": statistics.fmean(v), "num_tasks": len(v)} for c, v in clusters.items()
        },
    }


def load_model(
    model_dir: str, step: int, mesh_cfg: partitioning.MeshConfig = partitioning.MeshConfig()
):
    """The model saved at `step` in MODEL_DIR, parameters sharded by the rules."""
    ckpt = checkpointing.Checkpointer(model_dir, read_only=True)
    model_cfg = checkpointing.model_config_from_json(ckpt.read_meta(step)["model"])
    mesh = partitioning.make_mesh(mesh_cfg)
    graphdef = train_state.graphdef_of(model_cfg, mesh_cfg.rules)
    abs_params = train_state.abstract_params(model_cfg)
    shardings = train_state.param_shardings(abs_params, mesh, mesh_cfg.rules)
    params = ckpt.restore_params(step, train_state.with_shardings(abs_params, shardings))
    ckpt.close()
    return nnx.merge(graphdef, params), mesh


def all_steps(model_dir: str) -> list[int]:
    """Committed checkpoint steps in MODEL_DIR ([] if there is none yet)."""
    if not os.path.isdir(os.path.join(model_dir, "checkpoints")):
        return []
    return checkpointing.Checkpointer(model_dir, read_only=True).all_steps()


def steps_to_evaluate(cfg: EvalConfig) -> list[int]:
    steps = all_steps(cfg.model_dir)
    if not steps:
        raise FileNotFoundError(f"no checkpoints in {os.path.join(cfg.model_dir, 'checkpoints')}")
    if cfg.checkpoints == "latest":
        return steps[-1:]
    if cfg.checkpoints == "new":
        return [
            s
            for s in steps
            if not os.path.exists(results_path(cfg.model_dir, cfg.mixture_or_task_name, s))
        ]
    return steps


def evaluate_checkpoint(cfg: EvalConfig, step: int) -> dict:
    """Evaluates one checkpoint and writes MODEL_DIR/eval/step_<step>.json."""
    model, mesh = load_model(cfg.model_dir, step)
    with jax.set_mesh(mesh):
        result = {"step": step, "mixture": cfg.mixture_or_task_name, "split": cfg.split,
                  **evaluate_model(model, cfg)}  # fmt: skip
    path = results_path(cfg.model_dir, cfg.mixture_or_task_name, step)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)  # never a half-written result
    return result
