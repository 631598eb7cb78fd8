"""`flanjax preflight`: one check of a training run before any accelerator time is spent.

Each check is one line of the report, with a verdict (PASS, FAIL or SKIP and why):

  model / feature converter / vocabulary / prompt layout
                     run_setup's resolution, each part on its own line
  templates          every template of every task renders non-empty targets on the
                     first records of its training split
  held-out           the eval mixture (if given) shares no cluster or dataset with the
                     training mixture, and no training input contains an eval input
  loss mask          a real batch: every example has loss on real target tokens and the
                     loss covers EOS / the end of the assistant turn
  packing            packed and unpacked batches of the same examples give the same
                     per-example losses on the run's model
  microbatches       the loss and gradients of the batch in 2 (or the run's) microbatches
                     equal the whole batch's (loss normalization)
  transformers       an initial checkpoint converted from Hugging Face scores as
                     transformers does on a few rows (SKIP without transformers)
  memory fit         with a topology: the compile-check's verdict

The model checks run on the run's model with the checkpoint's weights when it has at
most `max_real_params` parameters, else on the same family shrunk to two layers with
random weights (which checks the code path, not the weights); the line says which.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import seqio
from flax import nnx

from flanjax import (
    checkpointing,
    losses,
    model_loading,
    models,
    partitioning,
    run_setup,
    train_state,
)
from flanjax.data import batch as bk
from flanjax.data import binding, heldout, pipeline, registry
from flanjax.train_step import accumulate_gradients, loss_weights, model_logits

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
SAMPLE = 4  # examples in the model checks' batch
TEMPLATE_RECORDS = 20


@dataclasses.dataclass
class Line:
    check: str
    verdict: str
    detail: str


@dataclasses.dataclass(frozen=True)
class PreflightConfig:
    train: Any  # trainer.TrainConfig as gin built it
    eval_mixture: str | None = None
    topology: str | None = None
    max_real_params: int = 500_000_000
    contamination_records: int = 200


class _Failed(Exception):
    """A check failed; the message is its line's detail."""


def run(cfg: PreflightConfig) -> list[Line]:
    """Every check's line; a check that cannot run because an earlier one failed is SKIP."""
    lines: list[Line] = []
    state: dict[str, Any] = {}
    for name, check in CHECKS:
        needs = NEEDS.get(name, ())
        missing = [n for n in needs if n not in state]
        if missing:
            lines.append(Line(name, SKIP, f"needs {', '.join(missing)}"))
            continue
        try:
            verdict, detail = check(cfg, state)
        except _Failed as e:
            verdict, detail = FAIL, str(e)
        except Exception as e:  # any error is this line's failure
            verdict, detail = FAIL, f"{type(e).__name__}: {e}"
            if not str(e):
                detail += traceback.format_exc(limit=2)
        lines.append(Line(name, verdict, detail))
    return lines


def _model(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    train = cfg.train
    source, own = run_setup.source_checkpoint(train)
    state["source"], state["model"] = source, run_setup.resolve_model(train, source, own)
    where = f"from {source}" if train.model is None else "from the model file"
    return PASS, f"{type(state['model']).__name__} {where}"


def _converter(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    state["converter"] = run_setup.resolve_converter(cfg.train.data, state["model"])
    return PASS, state["converter"]


def _vocabulary(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    source = state["source"]
    vocab_dir = run_setup.checkpoint_vocab_dir(source)
    spec, used = run_setup.resolve_vocabulary(cfg.train.data, vocab_dir, source)
    run_setup.check_vocabulary(cfg.train, state["model"], used, vocab_dir, source)
    state["vocab_dir"], state["vocab_spec"], state["vocab"] = vocab_dir, spec, used
    return PASS, binding.describe(used)


def _layout(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    fmt, chat = run_setup.resolve_format(
        cfg.train.data, state["model"], state["vocab"], state["vocab_dir"], state["source"]
    )
    data = dataclasses.replace(
        cfg.train.data,
        feature_converter=state["converter"],
        vocabulary=state["vocab_spec"],
        prompt_format=fmt,
        chat_template=chat,
    )
    state["data"] = data
    state["task_name"] = pipeline.task_name(data)
    return PASS, fmt + (f" ({chat})" if chat else "")


def _templates(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    names = registry.tasks_of(cfg.train.data.mixture_or_task_name)
    checked = 0
    for name in names:
        if name not in registry.task_infos():
            continue
        info = registry.get_task_info(name)
        split = "train" if "train" in info.num_examples else next(iter(info.num_examples))
        records = list(itertools.islice(iter(info.records(split)), TEMPLATE_RECORDS))
        for template in info.templates:
            for record in records:
                ex = template.render(record, task=name)
                if not ex.targets.strip():
                    raise _Failed(
                        f"task {name!r} template {template.id!r}: the targets render empty "
                        f"for record {record.get('id')!r} (split {split!r})"
                    )
            checked += 1
    return PASS, f"{checked} templates of {len(names)} tasks, {TEMPLATE_RECORDS} records each"


def _heldout(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    if not cfg.eval_mixture:
        return SKIP, "no eval mixture given (--eval_mixture)"
    train = registry.tasks_of(cfg.train.data.mixture_or_task_name)
    evals = registry.tasks_of(cfg.eval_mixture)
    info = registry.get_task_info
    eval_clusters = {info(t).cluster for t in evals}
    eval_sets = {heldout.canonical_dataset(t.split(".", 1)[-1]): t for t in evals}
    for t in train:
        if info(t).cluster in eval_clusters:
            raise _Failed(f"training task {t!r} is in the held-out cluster {info(t).cluster!r}")
        shared = heldout.canonical_dataset(t.split(".", 1)[-1])
        if shared in eval_sets:
            raise _Failed(
                f"training task {t!r} shares dataset {shared!r} with {eval_sets[shared]!r}"
            )
    report = heldout.find_contamination(train, evals, max_records=cfg.contamination_records)
    if report.contaminated:
        raise _Failed(report.message(cfg.train.data.mixture_or_task_name, ", ".join(eval_clusters)))
    return PASS, (
        f"{len(train)} training tasks vs {len(evals)} held-out tasks: no shared cluster or "
        f"dataset; {report.train_examples} x {report.eval_examples} renders, no overlap"
    )


def _examples(state: dict, n: int):
    task = seqio.get_mixture_or_task(state["task_name"])
    lengths = dict(state["data"].task_feature_lengths)
    return task.get_dataset(lengths, "train", shuffle=False).take(n), lengths


def _batch(state: dict, pack: bool) -> dict[str, np.ndarray]:
    """The first SAMPLE training examples, packed or not; built once per run (the
    mixture's dataset takes seconds to build) and shared by the checks, which only read it."""
    key = "packed batch" if pack else "batch"
    if key not in state:
        ds, lengths = _examples(state, SAMPLE)
        converter = pipeline.FEATURE_CONVERTERS[state["converter"]](pack=pack)
        rows = list(converter(ds, lengths).as_numpy_iterator())
        state[key] = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    return state[key]


def _loss_mask(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    batch = _batch(state, pack=False)
    eos = state["vocab"].eos_id
    tokens, weights = batch[bk.DECODER_TARGET_TOKENS], batch[bk.DECODER_LOSS_WEIGHTS]
    for row in range(tokens.shape[0]):
        scored = tokens[row][weights[row] > 0]
        if not (scored != eos).any():
            raise _Failed(f"example {row} of the first batch has no loss on a target token")
    covered = sum(int((tokens[r][weights[r] > 0] == eos).any()) for r in range(tokens.shape[0]))
    if not covered:
        raise _Failed(f"no example's loss covers EOS (id {eos}): the model never learns to stop")
    return PASS, f"{tokens.shape[0]} examples; EOS (id {eos}) trained in {covered}"


def _check_model(cfg: PreflightConfig, state: dict) -> tuple[nnx.Module, str]:
    if "check_model" in state:
        return state["check_model"]
    model_cfg, source = state["model"], state["source"]
    abstract = train_state.abstract_params(model_cfg)
    n = sum(math.prod(x.shape) for x in jax.tree.leaves(abstract))
    if source is not None and n <= cfg.max_real_params:
        model_dir, step = checkpointing.locate_checkpoint(source)
        params = model_loading.restore_params(
            model_dir, step, model_cfg, model_loading.on_one_device
        )
        graphdef = train_state.graphdef_of(model_cfg, partitioning.DEFAULT_RULES)
        out = (nnx.merge(graphdef, params), f"the run's model, {n / 1e6:.0f}M parameters")
    else:
        small = dataclasses.replace(model_cfg, **_shrunk(model_cfg))
        with nnx.use_eager_sharding(False):
            model = models.create_model(small, nnx.Rngs(params=0))
        why = "no checkpoint" if source is None else f"{n / 1e9:.1f}B parameters"
        out = (model, f"the run's family shrunk to 2 layers, random weights ({why})")
    state["check_model"] = out
    return out


def _shrunk(cfg: models.ModelConfig) -> dict[str, int]:
    if models.family_of(cfg).encoder_decoder:
        return {"num_encoder_layers": 2, "num_decoder_layers": 2, "d_model": 64, "d_ff": 128,
                "num_heads": 2, "head_dim": 16}  # fmt: skip
    return {"num_layers": 2, "d_model": 64, "d_ff": 128, "num_heads": 2, "num_kv_heads": 1,
            "head_dim": 16}  # fmt: skip


def _per_example_nll(model: nnx.Module, batch: dict) -> list[tuple[int, float]]:
    """(target tokens, summed nll) per example, sorted (packing may reorder rows)."""
    arrays = {k: jnp.asarray(v) for k, v in batch.items()}
    nll, _ = losses.softmax_cross_entropy(
        model_logits(model, arrays, None), arrays[bk.DECODER_TARGET_TOKENS]
    )
    w = np.asarray(batch[bk.DECODER_LOSS_WEIGHTS]) > 0
    nll = np.where(w, np.asarray(nll), 0.0)
    segs = batch.get(bk.DECODER_SEGMENT_IDS, np.where(w, 1, 0))
    out = []
    for row in range(w.shape[0]):
        for s in sorted(set(segs[row][w[row]].tolist())):
            m = (segs[row] == s) & w[row]
            out.append((int(m.sum()), float(nll[row][m].sum())))
    return sorted(out)


def _packing(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    model, which = _check_model(cfg, state)
    unpacked = _per_example_nll(model, _batch(state, pack=False))
    packed = _per_example_nll(model, _batch(state, pack=True))
    if [n for n, _ in unpacked] != [n for n, _ in packed]:
        raise _Failed(f"packing changed the examples' target tokens: {unpacked} vs {packed}")
    diff = max(abs(a - b) / max(abs(a), 1.0) for (_, a), (_, b) in zip(unpacked, packed))
    if diff > 1e-4:
        raise _Failed(f"packed and unpacked per-example losses differ by {diff:.2e} ({which})")
    return PASS, f"{len(packed)} examples, max relative difference {diff:.1e} ({which})"


def _microbatches(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    model, which = _check_model(cfg, state)
    n = cfg.train.microbatches if cfg.train.microbatches > 1 else 2
    batch = {k: jnp.asarray(v) for k, v in _batch(state, pack=False).items()}
    if batch[bk.DECODER_TARGET_TOKENS].shape[0] % n:
        return SKIP, f"{SAMPLE} examples do not split into {n} microbatches"
    graphdef, params = nnx.split(model, nnx.Param)
    w, denom = loss_weights(batch, cfg.train.loss)

    z_loss = cfg.train.loss.z_loss

    @functools.partial(jax.jit, static_argnums=0)
    def grads(m: int, params, batch, w):
        g, t = accumulate_gradients(params, graphdef, batch, w, None, z_loss, m)
        return jax.tree.map(lambda x: x / denom, g), t["loss_sum"] / denom

    (g1, l1), (gn, ln) = grads(1, params, batch, w), grads(n, params, batch, w)
    rel = max(
        float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-12))
        for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(gn))
    )
    loss_diff = abs(float(l1) - float(ln)) / max(abs(float(l1)), 1e-9)
    if rel > 1e-4 or loss_diff > 1e-5:
        raise _Failed(f"{n} microbatches: loss differs by {loss_diff:.1e}, gradients by {rel:.1e}")
    return (
        PASS,
        f"{n} microbatches: loss within {loss_diff:.0e}, gradients within {rel:.0e} ({which})",
    )


def _transformers(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    import os
    import tempfile

    source = cfg.train.initial_checkpoint_path
    if not source:
        return SKIP, "no initial checkpoint"
    model_dir, step = checkpointing.locate_checkpoint(source)
    if not os.path.exists(os.path.join(model_dir, "hf_config.json")):
        return SKIP, "the initial checkpoint was not converted from Hugging Face"
    try:
        import torch
        import transformers
    except ImportError:
        return SKIP, "transformers is not installed (pip install 'flanjax[convert]')"
    from flanjax.conversion import hf

    model, which = _check_model(cfg, state)
    if "random weights" in which:
        return SKIP, f"the model is too large to load here ({which})"
    batch = _batch(state, pack=False)
    with tempfile.TemporaryDirectory() as tmp:
        hf.convert_to_hf(model_dir, tmp, step=step)
        auto = getattr(transformers, models.family_of(state["model"]).hf_auto_class)
        theirs = auto.from_pretrained(tmp, dtype=torch.float32).eval()
    rows = slice(0, 2)
    arrays = {k: jnp.asarray(v[rows]) for k, v in batch.items()}
    ours = np.asarray(model_logits(model, {**arrays, bk.DECODER_SEGMENT_IDS: None}, None))
    with torch.no_grad():
        dec = torch.tensor(np.asarray(arrays[bk.DECODER_INPUT_TOKENS]), dtype=torch.long)
        if models.family_of(model).encoder_decoder:
            enc = torch.tensor(np.asarray(arrays[bk.ENCODER_INPUT_TOKENS]), dtype=torch.long)
            out = theirs(input_ids=enc, attention_mask=enc > 0, decoder_input_ids=dec).logits
        else:
            out = theirs(input_ids=dec).logits
    mask = np.asarray(batch[bk.DECODER_LOSS_WEIGHTS][rows]) > 0
    diff = float(np.max(np.abs(ours - out.numpy())[mask]))
    if diff > 2e-3:
        raise _Failed(f"logits differ from transformers' by {diff:.2e} on the targets")
    return (
        PASS,
        f"2 rows, target logits within {diff:.1e} of transformers {transformers.__version__}",
    )


def _memory(cfg: PreflightConfig, state: dict) -> tuple[str, str]:
    if not cfg.topology:
        return SKIP, "no --topology given"
    from flanjax.perf import compile_check

    train = dataclasses.replace(
        cfg.train, model=state["model"], data=state["data"], model_overrides={}
    )
    check = compile_check.CheckConfig(
        train=train, topology=cfg.topology, score_step=False, oom_breakdown=False
    )
    report = compile_check.run(check)
    memory = report["train_step"]["memory"]
    size = ""
    if memory.get("total") and memory.get("hbm"):
        size = f": {memory['total'] / 2**30:.2f} of {memory['hbm'] / 2**30:.2f} GiB per device"
    detail = f"{report['topology']}{size}: {memory['verdict']}"
    return (FAIL if memory["verdict"] == "DOES NOT FIT" else PASS), detail


CHECKS: Sequence[tuple[str, Callable]] = (
    ("model", _model),
    ("feature converter", _converter),
    ("vocabulary", _vocabulary),
    ("prompt layout", _layout),
    ("templates", _templates),
    ("held-out", _heldout),
    ("loss mask", _loss_mask),
    ("packing", _packing),
    ("microbatches", _microbatches),
    ("transformers", _transformers),
    ("memory fit", _memory),
)
NEEDS = {
    "feature converter": ("model",),
    "vocabulary": ("model",),
    "prompt layout": ("vocab", "converter"),
    "loss mask": ("data",),
    "packing": ("data",),
    "microbatches": ("data",),
    "transformers": ("data",),
    "memory fit": ("data",),
}


def format_report(lines: Sequence[Line]) -> str:
    width = max(len(line.check) for line in lines)
    out = [f"{'check':<{width}}  verdict  detail"]
    for line in lines:
        detail = line.detail.replace("\n", "\n" + " " * (width + 11))
        out.append(f"{line.check:<{width}}  {line.verdict:<7}  {detail}")
    failed = [line.check for line in lines if line.verdict == FAIL]
    out.append(f"preflight: {'FAILED: ' + ', '.join(failed) if failed else 'all checks passed'}")
    return "\n".join(out)


def failed(lines: Sequence[Line]) -> bool:
    return any(line.verdict == FAIL for line in lines)
