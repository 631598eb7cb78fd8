"""Tasks and mixtures tokenized with the model's vocabulary, bound when a run uses them.

A task is registered with a vocabulary (the flan tasks with T5's SentencePiece
model, the built-in suite with bytes), but the vocabulary belongs to the model:
a converted SmolLM2 must read every task through its own tokenizer. A task
whose text features are tokenized by seqio's `tokenize` preprocessor (every
task flanjax registers, and any researcher's task written the usual seqio way)
can be re-bound: `bind(name, vocab, chat)` registers, once, an ordinary seqio
Task `<task>:<vocabulary id>` with the same source and preprocessors and
`vocab` in its output features (and, with a `ChatFormat`, the pair laid out
through the chat template before tokenizing, with no EOS appended: the
template ends the assistant turn; `chat.PLAIN` is the decoder layout without
one). A mixture is re-bound task by task with its rates and sampling kept,
nested mixtures too. The bound names are what the input pipeline reads; the
flanjax metadata (cluster, templates, records) is shared with the original task.

A task that tokenizes its own way (a source of token ids, a custom tokenizer)
cannot be re-bound: `bind` refuses it, naming the task.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import seqio

from flanjax.data import registry
from flanjax.data.chat import PLAIN, ChatFormat

SEPARATOR = ":"
_TOKENIZE = (seqio.preprocessors.tokenize, seqio.preprocessors.tokenize_and_append_eos)


def fingerprint(vocab: seqio.Vocabulary) -> str:
    """A short id of a vocabulary's identity (its model, special tokens, extra ids)."""
    if isinstance(vocab, seqio.ByteVocabulary):
        return f"byte{vocab.extra_ids or ''}"
    if isinstance(vocab, seqio.SentencePieceVocabulary):
        digest = hashlib.sha256(vocab.sp_model).hexdigest()[:8]
        return f"spm{digest}x{vocab.extra_ids}"
    tokenizer = getattr(vocab, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "to_str"):
        key = tokenizer.to_str() + repr([vocab.eos_id, vocab.pad_id, vocab.unk_id, vocab.extra_ids])
        return "hf" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return type(vocab).__name__.lower() + hashlib.sha256(repr(vocab).encode()).hexdigest()[:8]


def describe(vocab: seqio.Vocabulary) -> str:
    """A vocabulary for error messages: its kind, size and identity."""
    path = getattr(vocab, "sentencepiece_model_file", None) or getattr(vocab, "_json_path", None)
    where = f" {path}" if path else ""
    return f"{type(vocab).__name__}{where} ({vocab.vocab_size} ids, id {fingerprint(vocab)})"


def task_vocabulary(name: str) -> seqio.Vocabulary:
    """The `targets` vocabulary of a task or mixture (a mixture's tasks share one)."""
    obj = registry.get_mixture_or_task(name)
    task = obj.tasks[0] if isinstance(obj, seqio.Mixture) else obj
    return task.output_features["targets"].vocabulary


def same_vocabulary(a: seqio.Vocabulary, b: seqio.Vocabulary) -> bool:
    return a is b or fingerprint(a) == fingerprint(b)


def bound_name(name: str, vocab: seqio.Vocabulary, chat: ChatFormat | None = None) -> str:
    tag = fingerprint(vocab)
    if chat is not None:
        kind = "plain" if chat == PLAIN else "chat"
        tag += f"_{kind}" + hashlib.sha256(repr(chat).encode()).hexdigest()[:6]
    return f"{base_name(name)}{SEPARATOR}{tag}"


def base_name(name: str) -> str:
    """The registered name a bound name was made from."""
    return name.split(SEPARATOR, 1)[0]


def bind(name: str, vocab: seqio.Vocabulary, chat: ChatFormat | None = None) -> str:
    """The name of task or mixture `name` tokenized with `vocab` (and laid out by
    `chat`), registering it on first use; `name` itself when nothing changes."""
    obj = registry.get_mixture_or_task(name)
    if chat is None and all(_uses(t, vocab) for t in _tasks(obj)):
        return name
    new = bound_name(name, vocab, chat)
    if new in seqio.MixtureRegistry.names() or new in seqio.TaskRegistry.names():
        return new
    if isinstance(obj, seqio.Mixture):
        members = [
            (bind(member, vocab, chat), obj._task_to_rate[member]) for member in obj._task_map
        ]
        seqio.MixtureRegistry.add(new, members, sample_fn=obj._sample_fn)
    else:
        _bind_task(obj, new, vocab, chat)
    return new


def _tasks(obj: seqio.Task | seqio.Mixture) -> list[seqio.Task]:
    return list(obj.tasks) if isinstance(obj, seqio.Mixture) else [obj]


def _uses(task: seqio.Task, vocab: seqio.Vocabulary) -> bool:
    return all(same_vocabulary(f.vocabulary, vocab) for f in task.output_features.values())


def _is_tokenizer(p: Callable) -> bool:
    fn = getattr(p, "func", p)  # functools.partial
    return fn in _TOKENIZE


def _add_eos(key: str, feature: seqio.Feature, chat: ChatFormat | None) -> bool:
    if chat is None:
        return feature.add_eos
    return key == "targets" and chat.append_eos


def _bind_task(task: seqio.Task, new: str, vocab: seqio.Vocabulary, chat: ChatFormat | None):
    preprocessors = list(task.preprocessors)
    at = next((i for i, p in enumerate(preprocessors) if _is_tokenizer(p)), None)
    if at is None:
        raise ValueError(
            f"task {task.name!r} does not tokenize with seqio.preprocessors.tokenize, so flanjax "
            f"cannot re-tokenize it with the model's vocabulary {describe(vocab)}; register it "
            "with a text source and the tokenize preprocessor, or with the model's vocabulary"
        )
    if chat is not None:
        preprocessors.insert(at, chat.tf_preprocessor())  # EOS as the format says
    features = {
        key: dataclasses.replace(feature, vocabulary=vocab, add_eos=_add_eos(key, feature, chat))
        for key, feature in task.output_features.items()
    }
    seqio.TaskRegistry.add(
        new,
        source=task.source,
        preprocessors=preprocessors,
        output_features=features,
        metric_fns=list(task.metric_fns),
        postprocess_fn=task.postprocessor,
        shuffle_buffer_size=task.shuffle_buffer_size,
    )
    if task.name in registry.task_infos():
        registry.register_alias(new, task.name)
