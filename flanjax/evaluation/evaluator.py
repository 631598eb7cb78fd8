"""Held-out evaluation of Orbax checkpoints: every record through every template.

For each task of the evaluation mixture and each of its templates:
  * templates with answer choices: rank classification. Every choice is scored
    by its log-likelihood given the inputs (the encoder, or the decoder-only
    prompt, runs once per example); the prediction is the highest summed
    log-likelihood ("accuracy") or the highest per-token mean ("accuracy_len_norm").
  * other templates: greedy decoding, scored by the task's metric.
Text is re-tokenized with the checkpoint's own vocabulary (`encoding.py`), so a
Hugging Face decoder (SmolLM2) is evaluated on tasks registered with T5's.
Every template runs zero-shot and, for each k in `EvalConfig.few_shot`, with k
exemplars (`flanjax.data.few_shot`). Scores are aggregated per template, per task
and per cluster (`aggregate.py`) and written per checkpoint to
MODEL_DIR/eval/<mixture>/step_<N>.json; the initial checkpoint named by
`baseline_checkpoint_path` goes to baseline.json; `report.py` compares them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import seqio
from flax import nnx

from flanjax import checkpointing, inference, model_loading, partitioning
from flanjax.data import few_shot, registry
from flanjax.data.templates import RenderedExample, Template
from flanjax.evaluation import aggregate, encoding
from flanjax.evaluation import metrics as metrics_lib
from flanjax.evaluation.encoding import Layout, TokenizedTemplate, resolve_vocabulary

log = logging.getLogger(__name__)

BASELINE = "baseline"
TEMPLATE_SELECTIONS = ("task_metric", "all")
_SAME_METRIC = {"exact_match": "accuracy"}
# A decoder-only model that runs on past its answer starts a new exemplar here.
DECODER_STOP = "\n\n"


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What `flanjax eval` evaluates, and how.

    mixture_or_task_name: a task or mixture, or several joined by commas
      ("flan.eval_entailment,flan.sst2").
    max_examples_per_task: the first N records of each task's split (0: all).
    split_fallbacks: tried in order for a task without `split` (TREC has only
      train/test, GSM8K only train here); the split used is recorded per task.
    vocabulary: None: MODEL_DIR/vocab/ when the checkpoint carries one (a
      Hugging Face conversion), else each task's own; "task": the task's own; or
      a spec ("byte", a .model file, a tokenizer.json or its folder).
    prompt_separator: appended to decoder-only prompts before the answer, with
      a Hugging Face tokenizer (see encoding.py).
    prompt_format: the decoder-only layout: None (the one MODEL_DIR was trained
      with, MODEL_DIR/vocab/layout.json; for a converted checkpoint "hf", its
      tokenizer's own), "hf", "seqio", "plain" or "chat" (encoding.Layout). The
      baseline checkpoint is scored in the same layout.
    chat_template: with "chat": a tokenizer folder holding the template (None:
      MODEL_DIR/vocab/).
    few_shot: k values evaluated beside zero-shot (exemplars from the train
      split, or from the evaluation split itself, never the query, without one).
    templates: "task_metric" (default): the templates that pose the task itself,
      as FLAN evaluates it: not inverted (inverted templates are training
      augmentation), and rank-classified or scored by the task's own metric
      (exact match counting as accuracy); "all": every template.
    baseline_checkpoint_path: the initial (not instruction-tuned) checkpoint, a
      MODEL_DIR or MODEL_DIR/checkpoints/<step> (the run's
      INITIAL_CHECKPOINT_PATH); evaluated once, the report's gain is over it.
    """

    model_dir: str
    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    batch_size: int = 32
    split: str = "validation"
    split_fallbacks: tuple[str, ...] = ("test", "train")
    max_examples_per_task: int = 0  # 0: all records
    checkpoints: str = "new"  # "new": not yet evaluated; "latest"; "all"
    vocabulary: str | None = None
    prompt_separator: str = "\n"
    prompt_format: str | None = None
    chat_template: str | None = None
    few_shot: tuple[int, ...] = ()
    few_shot_seed: int = 0
    templates: str = "task_metric"
    baseline_checkpoint_path: str | None = None
    # Continuous mode: watch MODEL_DIR and evaluate each new checkpoint as it lands.
    continuous: bool = False
    poll_seconds: float = 10.0
    stop_after_step: int = -1  # stop once a checkpoint at or past this step is evaluated
    max_idle_seconds: float = 0.0  # stop after this long without a new checkpoint; 0: never

    def __post_init__(self) -> None:
        if self.checkpoints not in ("new", "latest", "all"):
            raise ValueError(f"EvalConfig.checkpoints {self.checkpoints!r}: use new, latest or all")
        if self.templates not in TEMPLATE_SELECTIONS:
            raise ValueError(f"EvalConfig.templates {self.templates!r}: use {TEMPLATE_SELECTIONS}")
        if any(k < 1 for k in self.few_shot):
            raise ValueError(f"EvalConfig.few_shot {self.few_shot}: every k must be >= 1")
        if self.max_examples_per_task < 0:
            raise ValueError(f"EvalConfig.max_examples_per_task {self.max_examples_per_task} < 0")


def eval_dir(model_dir: str, mixture: str) -> str:
    """MODEL_DIR/eval/<mixture>/: one folder per evaluated mixture."""
    return os.path.join(model_dir, "eval", mixture)


def results_path(model_dir: str, mixture: str, step: int | str) -> str:
    name = BASELINE if step == BASELINE else f"step_{step}"
    return os.path.join(eval_dir(model_dir, mixture), f"{name}.json")


def task_names(name: str) -> list[str]:
    """The flanjax tasks of one or more comma-separated tasks or mixtures, in order."""
    names = [n.strip() for n in name.split(",") if n.strip()]
    if not names:
        raise ValueError("EvalConfig.mixture_or_task_name is empty")
    return list(dict.fromkeys(t for n in names for t in registry.tasks_of(n)))


def eval_split(info: registry.TaskInfo, cfg: EvalConfig) -> str:
    for split in (cfg.split, *cfg.split_fallbacks):
        if split in info.num_examples:
            return split
    raise ValueError(
        f"task {info.name!r} has none of the splits {[cfg.split, *cfg.split_fallbacks]} "
        f"(it has {list(info.num_examples)}); set EvalConfig.split or split_fallbacks"
    )


def poses_task(template: Template, info: registry.TaskInfo) -> bool:
    """The template asks the task's own question, scored like the task (see `templates`)."""
    if template.inverted:
        return False
    same = _SAME_METRIC.get(template.metric, template.metric)
    return template.has_choices or same == _SAME_METRIC.get(info.metric, info.metric)


def eval_templates(info: registry.TaskInfo, cfg: EvalConfig) -> list[Template]:
    if cfg.templates == "all":
        return list(info.templates)
    chosen = [t for t in info.templates if poses_task(t, info)]
    if not chosen:
        raise ValueError(
            f"task {info.name!r}: no template poses the task with its metric {info.metric!r}; "
            "set EvalConfig.templates = 'all'"
        )
    return chosen


def _head(records: Sequence, n: int) -> list:
    """The first n records (all if n is 0), reading no further when the source can."""
    if not n:
        return list(records)
    head = getattr(records, "head", None)
    return head(n) if head else list(records[:n])


def _batches(lengths: np.ndarray, batch_size: int):
    """Row indices of each batch, the rows in order of length (longest first): a batch
    then holds rows of similar length and is cut to its own width (`_width`)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _width(lengths: np.ndarray, cap: int) -> int:
    """The padded width of a batch's rows: a power of two (few compiled shapes)."""
    return min(inference.bucket(int(lengths.max(initial=1))), cap)


def _pad_to(x: np.ndarray, rows: int) -> np.ndarray:
    return (
        np.concatenate([x, np.zeros((rows - len(x), *x.shape[1:]), x.dtype)])
        if len(x) < rows
        else x
    )


def rank_classify(model: nnx.Module, tt: TokenizedTemplate, batch_size: int) -> np.ndarray:
    """Log-likelihoods [N, C] of every choice (-inf for padding choices)."""
    c = tt.num_choices
    out = np.zeros((len(tt.examples), c), np.float32)
    for rows in _batches(tt.input_lengths, batch_size):
        lengths, choice_lengths = tt.input_lengths[rows], tt.choice_lengths[rows].reshape(-1)
        choice_rows = (rows[:, None] * c + np.arange(c)).reshape(-1)
        inputs = tt.inputs[rows, : _width(lengths, tt.inputs.shape[1])]
        choices = tt.choices[choice_rows, : _width(choice_lengths, tt.choices.shape[1])]
        ll = inference.score_choices(
            model,
            _pad_to(inputs, batch_size),
            _pad_to(choices, batch_size * c),
            num_choices=c,
            input_lengths_B=_pad_to(lengths, batch_size),
            choice_lengths_BC=_pad_to(choice_lengths, batch_size * c),
        )
        out[rows] = np.asarray(ll)[: len(rows)]
    return np.where(tt.choice_mask, out, -np.inf)


def generate(
    model: nnx.Module, tt: TokenizedTemplate, layout: Layout, batch_size: int, max_length: int
) -> list[str]:
    """Greedy continuations, cut at EOS (and, decoder-only, at DECODER_STOP)."""
    texts, eos = [""] * len(tt.examples), layout.eos_id
    for rows in _batches(tt.input_lengths, batch_size):
        lengths = tt.input_lengths[rows]
        out = inference.greedy_decode(
            model,
            _pad_to(tt.inputs[rows, : _width(lengths, tt.inputs.shape[1])], batch_size),
            max_length,
            eos_id=eos,
            input_lengths_B=_pad_to(lengths, batch_size),
        )
        for i, row in zip(rows, np.asarray(out)[: len(rows)].tolist(), strict=True):
            ids = row[: row.index(eos)] if eos in row else row
            text = layout.vocab.decode([t for t in ids if t != 0])
            texts[i] = text if layout.encoder_decoder else _first_answer(text)
    return texts


def _first_answer(text: str) -> str:
    return text.lstrip().split(DECODER_STOP)[0].strip()


def score_template(
    model: nnx.Module,
    examples: Sequence[RenderedExample],
    template: Template,
    metric: str,
    layout: Layout,
    cfg: EvalConfig,
    where: str = "?",
) -> dict:
    """One template's scores on its rendered examples."""
    tt = TokenizedTemplate(
        examples, layout, cfg.task_feature_lengths, where=where, vocab_size=model.cfg.vocab_size
    )
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
            model, tt, layout, cfg.batch_size, cfg.task_feature_lengths["targets"]
        )
        references = [e.references or e.targets for e in examples]  # best of several
        scores = metrics_lib.get_metric(metric)(references, predictions)
        primary = next(iter(scores))
    return {
        "score": scores[primary],
        "metric": primary,
        "metrics": scores,
        "num_examples": len(examples),
        "num_truncated": tt.num_truncated,
    }


def render(
    info: registry.TaskInfo,
    template: Template,
    records: Sequence[Mapping],
    k: int,
    pool: Sequence[Mapping],
    layout: Layout,
    cfg: EvalConfig,
) -> tuple[Template, list[RenderedExample]]:
    """(template, examples) zero-shot (k = 0), or with k exemplars drawn from `pool`
    (as many as fit the inputs length in the model's tokens)."""
    if not k:
        return template, [template.render(r, task=info.name) for r in records]
    fs = few_shot.FewShotConfig(
        k=k, seed=cfg.few_shot_seed, max_input_length=cfg.task_feature_lengths["inputs"]
    )

    def length(text: str) -> int:
        return len(layout.encode(text, "")[0])

    shots = [few_shot.render_few_shot(template, r, pool, fs, length, info.name) for r in records]
    return few_shot.few_shot_template(template, k), [s.example for s in shots]


def task_layout(
    info: registry.TaskInfo, model: nnx.Module, vocab: seqio.Vocabulary | None, cfg: EvalConfig
) -> Layout:
    """How `model` sees this task's text: `vocab`, or the task's own when None, in the
    prompt layout of `cfg` (resolved against cfg.model_dir)."""
    if vocab is None:
        vocab = seqio.get_mixture_or_task(info.name).output_features["targets"].vocabulary
    kind = encoding.resolve_layout(cfg.prompt_format, cfg.model_dir)
    pair = encoding.pair_format(kind, cfg.model_dir, cfg.chat_template)
    return Layout(vocab, inference.is_encoder_decoder(model), cfg.prompt_separator, kind, pair)


def evaluate_task(
    model: nnx.Module, info: registry.TaskInfo, layout: Layout, cfg: EvalConfig
) -> tuple[dict[int, dict[str, dict]], dict[str, str]]:
    """({k: {template id: scores}} for k = 0 and every few-shot k, split info)."""
    split = eval_split(info, cfg)
    records = _head(info.records(split), cfg.max_examples_per_task)
    pool_split = "train" if "train" in info.num_examples else split
    pool = list(info.records(pool_split)) if cfg.few_shot else []
    out: dict[int, dict[str, dict]] = {}
    for k in (0, *cfg.few_shot):
        out[k] = {}
        for template in eval_templates(info, cfg):
            shown, examples = render(info, template, records, k, pool, layout, cfg)
            where = f"task {info.name!r}, template {shown.id!r}"
            metric = template.metric or info.metric
            out[k][shown.id] = score_template(model, examples, shown, metric, layout, cfg, where)
            log.info("%s: %s %.2f", where, out[k][shown.id]["metric"], out[k][shown.id]["score"])
    extra = {"split": split, **({"exemplar_split": pool_split} if cfg.few_shot else {})}
    return out, extra


def evaluate_model(
    model: nnx.Module, cfg: EvalConfig, vocab: seqio.Vocabulary | None = None
) -> dict:
    """Scores per template, per task and per cluster for one model, zero-shot at the
    top level and each few-shot setting under "few_shot"; `vocab` None: each task's."""
    per_k: dict[int, dict[str, dict]] = {k: {} for k in (0, *cfg.few_shot)}
    clusters, extras = {}, {}
    for name in task_names(cfg.mixture_or_task_name):
        info = registry.get_task_info(name)
        layout = task_layout(info, model, vocab, cfg)
        scores, extras[name] = evaluate_task(model, info, layout, cfg)
        clusters[name] = info.cluster
        for k, templates in scores.items():
            per_k[k][name] = templates
    result = aggregate.aggregate(per_k[0], clusters, extras)
    if cfg.few_shot:
        result["few_shot"] = {
            str(k): aggregate.aggregate(per_k[k], clusters, extras) for k in cfg.few_shot
        }
    return result


def load_model(
    model_dir: str, step: int, mesh_cfg: partitioning.MeshConfig = partitioning.MeshConfig()
):
    """(model saved at `step` in MODEL_DIR, parameters sharded by the rules; the mesh)."""
    mesh = partitioning.make_mesh(mesh_cfg)
    model, _ = model_loading.load_model(model_dir, step, mesh, mesh_cfg.rules)
    return model, mesh


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


def _evaluate_saved(cfg: EvalConfig, model_dir: str, step: int, vocab_dir: str) -> dict:
    vocab = resolve_vocabulary(cfg.vocabulary, vocab_dir)
    model, mesh = load_model(model_dir, step)
    with jax.set_mesh(mesh):
        result = evaluate_model(model, cfg, vocab)
    return {
        "step": step,
        "mixture": cfg.mixture_or_task_name,
        "split": cfg.split,
        "vocabulary": "task" if vocab is None else repr(vocab),
        "prompt_format": encoding.resolve_layout(cfg.prompt_format, cfg.model_dir) or "default",
        "few_shot_k": list(cfg.few_shot),
        **result,
    }


def _write(path: str, result: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)  # never a half-written result


def evaluate_checkpoint(cfg: EvalConfig, step: int) -> dict:
    """Evaluates one checkpoint and writes MODEL_DIR/eval/<mixture>/step_<step>.json."""
    result = _evaluate_saved(cfg, cfg.model_dir, step, cfg.model_dir)
    _write(results_path(cfg.model_dir, cfg.mixture_or_task_name, step), result)
    return result


def evaluate_baseline(cfg: EvalConfig) -> dict | None:
    """Evaluates `cfg.baseline_checkpoint_path` once into baseline.json (None if unset;
    the stored result if already done). Its vocabulary is its own MODEL_DIR's, else
    the evaluated MODEL_DIR's."""
    if not cfg.baseline_checkpoint_path:
        return None
    path = results_path(cfg.model_dir, cfg.mixture_or_task_name, BASELINE)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    model_dir, step = checkpointing.locate_checkpoint(cfg.baseline_checkpoint_path)
    has_vocab = os.path.isdir(os.path.join(model_dir, "vocab"))
    result = _evaluate_saved(cfg, model_dir, step, model_dir if has_vocab else cfg.model_dir)
    result["baseline"] = os.path.abspath(cfg.baseline_checkpoint_path)
    _write(path, result)
    return result
