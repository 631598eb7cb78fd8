"""Rendered examples as token arrays, laid out for the model family being evaluated.

The FLAN tasks tokenize with the T5 SentencePiece vocabulary, but a checkpoint
converted from Hugging Face (e.g. SmolLM2) has its own tokenizer, saved in
MODEL_DIR/vocab/. The evaluator therefore re-tokenizes the rendered text with
the checkpoint's vocabulary (`resolve_vocabulary`), and lays tokens out as
`inference.encode_example` does for `flanjax score`:

* encoder-decoder: inputs + EOS to the encoder, each choice + EOS scored.
  Long inputs keep their start (seqio's truncation).
* decoder-only, Hugging Face tokenizer: what the tokenizer puts before a text
  (e.g. Llama-3's BOS; nothing for SmolLM2), the inputs, then `separator`
  (default "\\n", the separator few-shot exemplars put before their answers);
  no EOS. Each choice is scored as the prompt's continuation, tokenized on its
  own (a "\\n" never merges with the token after it in byte-level BPE).
  Long prompts keep their end, where the question is.
* decoder-only, seqio vocabulary (models trained in flanjax): seqio's decoder
  layout, 0 + inputs + EOS, then the target + EOS; no separator.

Rows are right-padded with 0 to a power-of-two width (capped by the task
feature lengths), and lengths travel with them because 0 is a real token in
Hugging Face vocabularies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import seqio

from flanjax import inference
from flanjax.data import chat, vocabularies
from flanjax.data.chat import PLAIN, ChatFormat
from flanjax.data.templates import RenderedExample

log = logging.getLogger(__name__)

TASK_VOCABULARY = "task"
DEFAULT_SEPARATOR = "\n"


def resolve_vocabulary(spec: str | None, model_dir: str) -> seqio.Vocabulary | None:
    """The vocabulary to re-tokenize with; None means each task's own vocabulary.

    `spec`: None (MODEL_DIR/vocab/ when the checkpoint carries one, else the
    tasks' own), "task" (the tasks' own), or a `--vocabulary` spec ("byte", a
    .model file, a tokenizer.json or a folder holding one).
    """
    if spec == TASK_VOCABULARY:
        return None
    if spec:
        return vocabularies.vocabulary_from_spec(spec)
    if os.path.isdir(os.path.join(model_dir, "vocab")):
        return vocabularies.vocabulary_for_model_dir(model_dir)
    return None


LAYOUTS = ("hf", "seqio", "plain", "chat")


def read_layout(model_dir: str) -> str | None:
    """The prompt layout a run recorded in MODEL_DIR/vocab/layout.json (None: none)."""
    path = os.path.join(model_dir, "vocab", "layout.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)["layout"]


def pair_format(kind: str | None, model_dir: str, chat_template: str | None) -> ChatFormat | None:
    """The pair format of layout `kind` ("chat": the template in `chat_template` or
    MODEL_DIR/vocab/)."""
    if kind == "plain":
        return PLAIN
    if kind == "chat":
        return chat.load(chat_template or os.path.join(model_dir, "vocab"))
    return None


def resolve_layout(spec: str | None, model_dir: str) -> str | None:
    """`EvalConfig.prompt_format`: None takes the layout MODEL_DIR was trained with
    (vocab/layout.json), else the family's default (None here: "hf" for a decoder with
    a Hugging Face tokenizer, as converted, "seqio" otherwise)."""
    if spec is not None and spec not in LAYOUTS:
        raise ValueError(f"EvalConfig.prompt_format {spec!r}: use one of {LAYOUTS}")
    return spec if spec is not None else read_layout(model_dir)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one model family sees (inputs, target) text.

    `kind` (decoder-only): "hf" (a converted checkpoint's own: the tokenizer's
    prefix, inputs + separator, the answer), "seqio" (0 + inputs + EOS, target +
    EOS), "plain" / "chat" (0 + the `pair` format's prompt, its target: the
    layout flanjax trained with, data/chat.py); None: "hf" for a Hugging Face
    tokenizer, else "seqio".
    """

    vocab: seqio.Vocabulary
    encoder_decoder: bool
    separator: str = DEFAULT_SEPARATOR  # kind "hf" only
    kind: str | None = None
    pair: ChatFormat | None = None  # kinds "plain" and "chat"

    @property
    def decoder_kind(self) -> str:
        if self.kind is not None:
            return self.kind
        return "hf" if vocabularies.is_hf_tokenizer(self.vocab) else "seqio"

    @property
    def prompt_suffix(self) -> str:
        if self.encoder_decoder or self.decoder_kind != "hf":
            return ""
        return self.separator

    def encode(self, inputs: str, target: str) -> tuple[list[int], list[int]]:
        kind = self.decoder_kind
        if self.encoder_decoder or kind == "hf":
            return inference.encode_example(
                self.vocab,
                inputs + self.prompt_suffix,
                target,
                encoder_decoder=self.encoder_decoder,
            )
        if kind == "seqio":
            eos = [self.vocab.eos_id]
            return [0, *self.vocab.encode(inputs), *eos], [*self.vocab.encode(target), *eos]
        if self.pair is None:
            raise ValueError(f"prompt layout {kind!r} needs its pair format")
        tgt = list(self.vocab.encode(self.pair.target(target)))
        if self.pair.append_eos:
            tgt.append(self.vocab.eos_id)
        return [0, *self.vocab.encode(self.pair.prompt(inputs))], tgt

    def truncate_prompt(self, ids: list[int], length: int) -> list[int]:
        """Encoder inputs keep their start and EOS; decoder-only prompts their end."""
        if len(ids) <= length:
            return ids
        if self.encoder_decoder:
            return ids[: length - 1] + ids[-1:]
        return ids[-length:]

    @property
    def eos_id(self) -> int | None:
        return self.vocab.eos_id


def _widths(rows: Sequence[Sequence[int]], cap: int) -> int:
    return min(inference.bucket(max((len(r) for r in rows), default=1)), cap)


def _lengths(rows: Sequence[Sequence[int]]) -> np.ndarray:
    return np.asarray([len(r) for r in rows], np.int32)


class TokenizedTemplate:
    """One template's rendered examples as padded arrays with their lengths.

    inputs [N, L] / input_lengths [N]; with answer choices also choices
    [N * C, T] (example 0's C choices first), choice_lengths [N, C] and
    choice_mask [N, C] (False for the padding choices of examples with fewer).
    """

    def __init__(
        self,
        examples: Sequence[RenderedExample],
        layout: Layout,
        lengths: Mapping[str, int],
        *,
        where: str = "?",
        vocab_size: int | None = None,
    ):
        self.examples = examples
        encoded = [
            [layout.encode(e.inputs, c) for c in (e.choices or (e.targets,))] for e in examples
        ]
        prompts = [layout.truncate_prompt(rows[0][0], lengths["inputs"]) for rows in encoded]
        self.num_truncated = sum(len(p) < len(r[0][0]) for p, r in zip(prompts, encoded))
        if self.num_truncated:
            log.warning("%s: %d prompts truncated to %d tokens", where, self.num_truncated,
                        lengths["inputs"])  # fmt: skip
        self.inputs = inference.pad_rows(prompts, _widths(prompts, lengths["inputs"]))
        self.input_lengths = _lengths(prompts)
        self.num_choices = max((len(e.choices) for e in examples), default=0)
        if self.num_choices:
            self._choices(encoded, lengths["targets"])
        if vocab_size is not None:
            self._check_ids(vocab_size, where)

    def _choices(self, encoded: list[list[tuple[list[int], list[int]]]], cap: int) -> None:
        n, c = len(encoded), self.num_choices
        rows = [pairs[j][1][:cap] if j < len(pairs) else [] for pairs in encoded for j in range(c)]
        self.choices = inference.pad_rows(rows, _widths(rows, cap))
        self.choice_lengths = _lengths(rows).reshape(n, c)
        self.choice_mask = np.asarray([[j < len(pairs) for j in range(c)] for pairs in encoded])

    def _check_ids(self, vocab_size: int, where: str) -> None:
        arrays = [self.inputs] + ([self.choices] if self.num_choices else [])
        top = max(int(a.max(initial=0)) for a in arrays)
        if top >= vocab_size:
            raise ValueError(
                f"{where}: token id {top} is outside the model's vocabulary ({vocab_size}); "
                "evaluate with the checkpoint's own vocabulary (EvalConfig.vocabulary)"
            )
