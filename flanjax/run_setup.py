"""What a training run settles before anything runs or is written.

`prepare(cfg)` returns the TrainConfig the run will use, refusing, with a
message naming the checkpoint, the mixture and what differs:

* the model: `TrainConfig.model` None takes the architecture from the run's
  checkpoint (its own MODEL_DIR's newest, else the initial checkpoint), with
  `model_overrides` for what a run may choose over a pretrained checkpoint
  (checkpointing.INITIAL_CHOICES: compute dtype, remat, attention
  implementation, dropout, causal -> prefix attention, scan layout). A model
  given explicitly must have the checkpoint's architecture; the choices that
  differ are logged.
* the feature converter: "auto" becomes the family's default; one whose
  batches the family cannot read is refused.
* the vocabulary (data/binding.py): by default the checkpoint's own (vocab/,
  written by `flanjax convert --from hf` and by every run that used one), else
  the tasks' own. One that differs from the checkpoint's, by identity, is
  refused, and so is one with more ids than the embedding table.
* the prompt layout of decoder-only pairs: "plain" for a Hugging Face
  tokenizer, "seqio" otherwise, or "chat" through the checkpoint's template.

`write_run_files` then records the vocabulary and the prompt layout in
MODEL_DIR/vocab/, where the evaluator, `flanjax score/generate` and the
converter find them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil

import seqio

from flanjax import checkpointing, models
from flanjax.data import binding, pipeline, vocabularies
from flanjax.data import chat as chat_lib
from flanjax.data.chat import ChatFormat, find_template
from flanjax.data.vocabularies import TOKENIZER_FILES

log = logging.getLogger(__name__)

VOCAB_DIR = "vocab"
LAYOUT_FILE = "layout.json"  # in vocab/: {"layout": "seqio" | "plain" | "chat"}, by a run


def has_checkpoints(model_dir: str) -> bool:
    folder = os.path.join(model_dir, "checkpoints")
    return os.path.isdir(folder) and any(n.isdigit() for n in os.listdir(folder))


def source_checkpoint(cfg) -> tuple[str | None, bool]:
    """(the checkpoint whose model the run continues, whether it is the run's own)."""
    if has_checkpoints(cfg.model_dir):
        return cfg.model_dir, True
    return cfg.initial_checkpoint_path, False


def resolve_model(cfg, source: str | None, own: bool) -> models.ModelConfig:
    """The run's model config: explicit (checked against the checkpoint) or the checkpoint's."""
    free = checkpointing.RUNTIME_FIELDS if own else checkpointing.INITIAL_CHOICES
    if cfg.model is None:
        if source is None:
            raise ValueError(
                "no model: pass a model file (--gin_file=models/<name>.gin) or "
                "INITIAL_CHECKPOINT_PATH, whose architecture the run then takes"
            )
        saved, where, step = checkpointing.read_model_config(source)
        bad = sorted(set(cfg.model_overrides) - free)
        if bad:
            raise ValueError(
                f"model_overrides {bad} would change the architecture of {where} (step "
                f"{step}); a run may choose only {sorted(free)}"
            )
        model = dataclasses.replace(saved, **dict(cfg.model_overrides))
        log.info("model from %s step %d: %s", where, step, model)
        return model
    if cfg.model_overrides:
        raise ValueError("TrainConfig.model_overrides go with model=None (the checkpoint's)")
    if source is not None:
        saved, where, _ = checkpointing.read_model_config(source)
        meta = {"model": checkpointing.model_config_to_json(saved)}
        label = os.path.join(where, "checkpoints") if own else f"{where} (initial checkpoint)"
        chosen = checkpointing.check_same_model(meta, cfg.model, label, also_free=free)
        for field, (old, new) in chosen.items():
            log.info("model %s: %r (the checkpoint has %r)", field, new, old)
    return cfg.model


def resolve_converter(data: pipeline.DataConfig, model: models.ModelConfig) -> str:
    converter = data.feature_converter
    if converter == pipeline.AUTO:
        converter = models.feature_converters(model)[0]
    models.check_feature_converter(model, converter)
    return converter


def checkpoint_vocab_dir(source: str | None) -> str | None:
    """The checkpoint's vocab/ folder, if it carries one."""
    if source is None:
        return None
    model_dir, _ = checkpointing.split_checkpoint_path(source)
    folder = os.path.join(model_dir, VOCAB_DIR)
    return folder if os.path.isdir(folder) else None


def resolve_vocabulary(data: pipeline.DataConfig, vocab_dir: str | None, source: str | None):
    """(DataConfig.vocabulary resolved to a spec or None, the vocabulary used)."""
    spec = data.vocabulary
    if spec is None:
        spec = vocab_dir
    elif spec == pipeline.MODEL:
        if vocab_dir is None:
            raise ValueError(
                f"DataConfig.vocabulary 'model': the checkpoint {source} carries no vocab/ folder"
            )
        spec = vocab_dir
    elif spec == pipeline.TASK_VOCABULARY:
        spec = None
    used = pipeline.data_vocabulary(dataclasses.replace(data, vocabulary=spec))
    if used is None:
        used = binding.task_vocabulary(data.mixture_or_task_name)
    return spec, used


def check_vocabulary(cfg, model, used: seqio.Vocabulary, vocab_dir: str | None, source) -> None:
    name = cfg.data.mixture_or_task_name
    if vocab_dir is not None:
        own = vocabularies.vocabulary_from_path(vocab_dir)
        if not binding.same_vocabulary(own, used):
            raise ValueError(
                f"vocabulary mismatch: {name!r} would be tokenized with {binding.describe(used)}, "
                f"but the checkpoint {source} was trained with {binding.describe(own)} "
                f"({vocab_dir}). Leave DataConfig.vocabulary unset (the checkpoint's) or "
                "start from a checkpoint of that vocabulary"
            )
    if used.vocab_size > model.vocab_size:
        raise ValueError(
            f"vocabulary {binding.describe(used)} of {name!r} has more ids than the model's "
            f"embedding table ({model.vocab_size}{f', {source}' if source else ''})"
        )


def resolve_format(data, model, used: seqio.Vocabulary, vocab_dir: str | None, source):
    """(prompt_format, chat_template) resolved: "plain" by default for a decoder with a
    Hugging Face tokenizer, "seqio" otherwise; "chat" takes the checkpoint's template."""
    decoder = models.feature_converters(model)[0] != "enc_dec"
    fmt = data.prompt_format
    if fmt is None:
        fmt = "plain" if decoder and vocabularies.is_hf_tokenizer(used) else "seqio"
    if fmt != "seqio" and not decoder:
        raise ValueError(
            f"DataConfig.prompt_format {fmt!r} lays out decoder-only prompts; a "
            f"{type(model).__name__} reads inputs and targets separately (use 'seqio')"
        )
    chat = data.chat_template
    if fmt != "chat":
        if chat is not None:
            raise ValueError("DataConfig.chat_template goes with prompt_format 'chat'")
        return fmt, None
    chat = chat or vocab_dir
    if chat is None:
        raise ValueError(
            f"DataConfig.prompt_format 'chat': the checkpoint {source} has no vocab/ folder with "
            "a chat template; set DataConfig.chat_template to a tokenizer folder"
        )
    ChatFormat.from_folder(chat)  # a template that cannot be used fails here, named
    return fmt, chat


def prepare(cfg):
    """The run's TrainConfig with model, converter, vocabulary and chat template resolved."""
    source, own = source_checkpoint(cfg)
    model = resolve_model(cfg, source, own)
    converter = resolve_converter(cfg.data, model)
    vocab_dir = checkpoint_vocab_dir(source)
    spec, used = resolve_vocabulary(cfg.data, vocab_dir, source)
    check_vocabulary(cfg, model, used, vocab_dir, source)
    fmt, chat = resolve_format(cfg.data, model, used, vocab_dir, source)
    data = dataclasses.replace(
        cfg.data,
        feature_converter=converter,
        vocabulary=spec,
        prompt_format=fmt,
        chat_template=chat,
    )
    pipeline.task_name(data)  # binds the tokenization now: a task that cannot be re-bound fails
    return dataclasses.replace(cfg, model=model, data=data, model_overrides={})


def write_run_files(cfg) -> None:
    """MODEL_DIR/vocab/: the vocabulary's files (when it is a file or folder) and
    layout.json, the prompt layout the evaluator must use. Process 0 only."""
    folder = os.path.join(cfg.model_dir, VOCAB_DIR)
    spec = cfg.data.vocabulary
    if spec and os.path.exists(spec) and os.path.abspath(spec) != os.path.abspath(folder):
        os.makedirs(folder, exist_ok=True)
        if os.path.isdir(spec):
            names = [n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(spec, n))]
            for n in names:
                shutil.copyfile(os.path.join(spec, n), os.path.join(folder, n))
        else:
            target = "spiece.model" if spec.endswith(".model") else "tokenizer.json"
            shutil.copyfile(spec, os.path.join(folder, target))
    chat = cfg.data.chat_template
    if chat and os.path.abspath(chat) != os.path.abspath(folder):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, chat_lib.TEMPLATE_FILE), "w") as f:
            f.write(find_template(chat)[0])
    if os.path.isdir(folder):
        with open(os.path.join(folder, LAYOUT_FILE), "w") as f:
            json.dump({"layout": cfg.data.prompt_format or "seqio"}, f)
