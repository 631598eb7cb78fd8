"""Tokenizers as seqio Vocabularies: SentencePiece, Hugging Face `tokenizers`, bytes.

* `sentencepiece_vocabulary(path)`: seqio's own SentencePieceVocabulary (T5).
* `HfTokenizerVocabulary(path)`: a Hugging Face `tokenizer.json` (GPT-2, SmolLM2,
  Llama-3 style byte-level BPE, or any other `tokenizers` model). `encode` adds
  no special tokens (seqio's contract: the features add EOS); `prefix_ids` and
  `suffix_ids` are what the tokenizer's post-processor would add around a text
  (e.g. Llama-3's BOS), for callers that want Hugging Face's layout. `decode`
  skips special tokens, as SentencePiece renders its controls as nothing.
  eos/pad/unk/bos ids come from tokenizer_config.json (or special_tokens_map.json)
  beside tokenizer.json. `pad_id` is the tokenizer's own pad token where it has
  one (SmolLM2: <|im_end|>, which is also its EOS); flanjax's arrays still pad
  with 0 and carry lengths where 0 is a real token.
* `vocabulary_for_model_dir(model_dir)`: the vocabulary saved in MODEL_DIR/vocab/
  by `flanjax convert --from hf`; `vocabulary_from_spec` resolves the command
  line's `--vocabulary` ("byte", a .model file, a tokenizer.json or a folder).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

SPECIAL_TOKEN_NAMES = ("bos", "eos", "pad", "unk")
# A tokenizer's files in a Hugging Face folder, as MODEL_DIR/vocab/ keeps them.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "spiece.model",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
EXTRA_ID = re.compile(r"<extra_id_\d+>")


def sentencepiece_vocabulary(path: str, extra_ids: int = 0) -> seqio.SentencePieceVocabulary:
    """seqio's SentencePiece vocabulary of a .model file (T5: 100 extra ids)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no SentencePiece model")
    return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)


def _read_json(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _token_text(value: Any) -> str | None:
    """A special token's text, written as a string or as {"content": ...}."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class HfTokenizerVocabulary(seqio.Vocabulary):
    """A Hugging Face `tokenizers` tokenizer (tokenizer.json) as a seqio Vocabulary."""

    def __init__(self, path: str, extra_ids: int = 0):
        """`path`: a tokenizer.json, or the folder that holds it (and, optionally,
        tokenizer_config.json / special_tokens_map.json naming the special tokens)."""
        import tokenizers

        folder = path if os.path.isdir(path) else os.path.dirname(path)
        json_path = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
        if not os.path.isfile(json_path):
            raise FileNotFoundError(f"{json_path}: no Hugging Face tokenizer.json")
        self._json_path = json_path
        self._tokenizer = tokenizers.Tokenizer.from_file(json_path)
        self._special = self._special_ids(folder)
        self.prefix_ids, self.suffix_ids = self._added_around()
        super().__init__(extra_ids=extra_ids)

    def _special_ids(self, folder: str) -> dict[str, int | None]:
        config = _read_json(os.path.join(folder, "special_tokens_map.json"))
        config.update(_read_json(os.path.join(folder, "tokenizer_config.json")))
        ids: dict[str, int | None] = {}
        for name in SPECIAL_TOKEN_NAMES:
            text = _token_text(config.get(f"{name}_token"))
            ids[name] = None if text is None else self._tokenizer.token_to_id(text)
        if ids["unk"] is None:
            text = getattr(self._tokenizer.model, "unk_token", None)
            ids["unk"] = None if text is None else self._tokenizer.token_to_id(text)
        return ids

    def _added_around(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The ids the post-processor adds before and after a text's own ids."""
        plain = self._tokenizer.encode("a", add_special_tokens=False).ids
        full = self._tokenizer.encode("a", add_special_tokens=True).ids
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return tuple(full[:start]), tuple(full[start + len(plain) :])
        return (), ()

    @property
    def tokenizer(self):
        """The underlying `tokenizers.Tokenizer`."""
        return self._tokenizer

    @property
    def bos_id(self) -> int | None:
        return self._special["bos"]

    @property
    def eos_id(self) -> int | None:
        return self._special["eos"]

    @property
    def pad_id(self) -> int:
        pad = self._special["pad"]
        return seqio.vocabularies.PAD_ID if pad is None else pad

    @property
    def unk_id(self) -> int | None:
        return self._special["unk"]

    @property
    def _base_vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def _encode(self, s: str) -> Sequence[int]:
        return self._tokenizer.encode(s, add_special_tokens=False).ids

    def _decode(self, ids: Iterable[int]) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
        """Scalar string -> 1-D int32 ids; 1-D strings -> a ragged batch of ids."""
        if s.shape.rank == 0:
            ids = tf.py_function(lambda x: self._encode_np(x.numpy()), [s], tf.int32)
            return tf.ensure_shape(ids, [None])

        def encode_batch(x: tf.Tensor) -> tuple[np.ndarray, np.ndarray]:
            rows = [self._encode_np(t) for t in x.numpy()]
            lengths = np.array([len(r) for r in rows], np.int64)
            return np.concatenate([np.zeros(0, np.int32), *rows]), lengths

        flat, lengths = tf.py_function(encode_batch, [s], (tf.int32, tf.int64))
        return tf.RaggedTensor.from_row_lengths(tf.ensure_shape(flat, [None]), lengths)

    def _encode_np(self, text: bytes) -> np.ndarray:
        return np.asarray(self._encode(text.decode("utf-8")), np.int32)

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        """1-D ids -> a scalar string; 2-D ids -> 1-D strings (one per row)."""

        def decode(x: tf.Tensor) -> np.ndarray:
            array = x.numpy()
            if array.ndim == 1:
                return np.asarray(self._decode(array).encode("utf-8"), object)
            return np.asarray([self._decode(row).encode("utf-8") for row in array], object)

        out = tf.py_function(decode, [ids], tf.string)
        return tf.ensure_shape(out, ids.shape[:-1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HfTokenizerVocabulary):
            return False
        return (
            self._tokenizer.to_str() == other._tokenizer.to_str()
            and self._special == other._special
            and self.extra_ids == other.extra_ids
        )

    def __hash__(self) -> int:
        return hash((self._tokenizer.to_str(), self.extra_ids))

    def __repr__(self) -> str:
        return f"HfTokenizerVocabulary({self._json_path!r}, vocab_size={self.vocab_size})"


def is_hf_tokenizer(vocab: seqio.Vocabulary) -> bool:
    """A Hugging Face tokenizer (it knows what it adds around a text)."""
    return getattr(vocab, "prefix_ids", None) is not None


def _count_extra_ids(folder: str) -> int:
    """How many <extra_id_N> tokens a T5 tokenizer config declares (0 if none)."""
    config = _read_json(os.path.join(folder, "tokenizer_config.json"))
    if isinstance(config.get("extra_ids"), int) and config["extra_ids"]:
        return config["extra_ids"]
    texts = set(EXTRA_ID.findall(json.dumps(config)))
    texts |= set(EXTRA_ID.findall(json.dumps(_read_json(os.path.join(folder, "tokenizer.json")))))
    return len(texts)


def vocabulary_from_path(path: str) -> seqio.Vocabulary:
    """The vocabulary of a file or folder: a SentencePiece .model (spiece.model is
    preferred in a folder: T5's native vocabulary, its extra ids counted from the
    tokenizer config) or a Hugging Face tokenizer.json."""
    if os.path.isdir(path):
        for name in ("spiece.model", "tokenizer.json", "tokenizer.model"):
            if os.path.isfile(os.path.join(path, name)):
                if name.endswith(".model"):
                    return sentencepiece_vocabulary(
                        os.path.join(path, name), extra_ids=_count_extra_ids(path)
                    )
                return HfTokenizerVocabulary(path)
        raise FileNotFoundError(f"{path}: no spiece.model, tokenizer.json or tokenizer.model")
    if path.endswith(".json"):
        return HfTokenizerVocabulary(path)
    return sentencepiece_vocabulary(path)


def vocabulary_from_spec(spec: str) -> seqio.Vocabulary:
    """`--vocabulary`: "byte" (seqio's ByteVocabulary, the built-in suite's) or a path."""
    if spec == "byte":
        return seqio.ByteVocabulary()
    if not os.path.exists(spec):
        raise FileNotFoundError(
            f"--vocabulary {spec!r}: use 'byte', a SentencePiece .model file, a "
            "tokenizer.json or a folder holding one"
        )
    return vocabulary_from_path(spec)


def vocabulary_for_model_dir(model_dir: str, spec: str | None = None) -> seqio.Vocabulary:
    """`spec` if given, else the vocabulary in MODEL_DIR/vocab/ (saved by conversion)."""
    if spec:
        return vocabulary_from_spec(spec)
    folder = os.path.join(model_dir, "vocab")
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"{folder}: no saved vocabulary; pass --vocabulary (e.g. 'byte' for models "
            "trained on the built-in suite, or a tokenizer file)"
        )
    return vocabulary_from_path(folder)
