"""Tokenizers as seqio Vocabularies: Hugging Face tokenizer.json, SentencePiece, bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import seqio
import tensorflow as tf

from flanjax.data import vocabularies
from flanjax.data.vocabularies import HfTokenizerVocabulary

TEXTS = (
    "The capital of France is Paris.",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Ünïcödé, emoji 🙂 and  double  spaces\ttabs",
    "<|im_start|>user\nName three colors.<|im_end|>\n",
    "Question: 17 + 25 = ? Answer: 42",
)


def test_smollm2_ids_match_transformers(smollm2_dir: Path) -> None:
    import transformers

    reference = transformers.AutoTokenizer.from_pretrained(smollm2_dir)
    vocab = HfTokenizerVocabulary(str(smollm2_dir))
    for text in TEXTS:
        ids = list(vocab.encode(text))
        assert ids == reference(text, add_special_tokens=False).input_ids
        assert ids == reference(text).input_ids  # SmolLM2's tokenizer adds nothing
    assert (vocab.eos_id, vocab.pad_id, vocab.unk_id, vocab.bos_id) == (
        reference.eos_token_id, reference.pad_token_id, reference.unk_token_id,
        reference.bos_token_id,
    )  # fmt: skip
    assert (vocab.prefix_ids, vocab.suffix_ids) == ((), ())
    assert vocab.vocab_size == len(reference) == 49152


def test_smollm2_round_trip_and_tf(smollm2_dir: Path) -> None:
    vocab = HfTokenizerVocabulary(str(smollm2_dir / "tokenizer.json"))
    for text in TEXTS[:3]:
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text
        tf_ids = vocab.encode_tf(tf.constant(text))
        assert tf_ids.dtype == tf.int32 and tf_ids.numpy().tolist() == list(ids)
        assert vocab.decode_tf(tf.constant(list(ids) + [vocab.eos_id, 5, 6])).numpy() == (
            text.encode()
        )
    ragged = vocab.encode_tf(tf.constant(list(TEXTS[:2])))
    assert ragged.to_list() == [list(vocab.encode(t)) for t in TEXTS[:2]]
    # Special tokens are encoded as themselves and skipped when decoding; decoding
    # stops at EOS (seqio's contract).
    ids = list(vocab.encode(TEXTS[3]))
    assert ids[0] == vocab.bos_id and vocab.eos_id in ids
    assert vocab.decode(vocab.encode("a b") + [vocab.eos_id] + vocab.encode(" c")) == "a b"
    assert vocab == HfTokenizerVocabulary(str(smollm2_dir)) and hash(vocab) == hash(
        HfTokenizerVocabulary(str(smollm2_dir))
    )


def test_hf_vocabulary_works_as_a_seqio_feature(smollm2_dir: Path) -> None:
    vocab = HfTokenizerVocabulary(str(smollm2_dir))
    ds = tf.data.Dataset.from_tensors({"targets": "Hello there"})
    out = seqio.preprocessors.tokenize(ds, {"targets": seqio.Feature(vocab)})
    assert next(out.as_numpy_iterator())["targets"].tolist() == list(vocab.encode("Hello there"))


def _toy_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer.json whose post-processor wraps texts in <s> ... </s>."""
    import tokenizers
    from tokenizers import models, pre_tokenizers, processors

    words = ["<pad>", "</s>", "<unk>", "<s>", "hello", "world", "!"]
    tok = tokenizers.Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<pad>", "</s>", "<unk>", "<s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 3), ("</s>", 1)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {"eos_token": {"content": "</s>"}, "unk_token": "<unk>", "bos_token": "<s>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_special_ids_and_post_processor_tokens(tmp_path: Path) -> None:
    vocab = HfTokenizerVocabulary(str(_toy_tokenizer(tmp_path / "toy")))
    assert (vocab.eos_id, vocab.unk_id, vocab.bos_id, vocab.pad_id) == (1, 2, 3, 0)
    assert (vocab.prefix_ids, vocab.suffix_ids) == ((3,), (1,))
    assert list(vocab.encode("hello world !")) == [4, 5, 6]
    assert list(vocab.encode("hello mars")) == [4, 2]
    assert vocab.decode([4, 5, 1, 6]) == "hello world"
    assert vocab.vocab_size == 7


def test_t5_sentencepiece_matches_transformers(shared_data: Path, tmp_path: Path) -> None:
    import transformers

    spiece = shared_data / "tokenizers" / "t5_spiece.model"
    vocab = vocabularies.sentencepiece_vocabulary(str(spiece), extra_ids=100)
    folder = tmp_path / "t5"
    folder.mkdir()
    shutil.copy(spiece, folder / "spiece.model")
    reference = transformers.T5Tokenizer.from_pretrained(str(folder))
    for text in (*TEXTS[:3], "translate English to German: That is good. <extra_id_0>"):
        assert list(vocab.encode(text)) == reference(text, add_special_tokens=False).input_ids
    assert vocab.decode(vocab.encode(TEXTS[0])) == TEXTS[0]
    assert (vocab.eos_id, vocab.vocab_size) == (reference.eos_token_id, len(reference))


def test_vocabulary_for_model_dir(shared_data: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    with pytest.raises(FileNotFoundError, match="--vocabulary"):
        vocabularies.vocabulary_for_model_dir(str(model_dir))
    assert isinstance(
        vocabularies.vocabulary_for_model_dir(str(model_dir), "byte"), seqio.ByteVocabulary
    )
    _toy_tokenizer(model_dir / "vocab")
    assert isinstance(vocabularies.vocabulary_for_model_dir(str(model_dir)), HfTokenizerVocabulary)
    # A T5 folder: spiece.model is preferred, its extra ids counted from the config.
    shutil.copy(
        shared_data / "tokenizers" / "t5_spiece.model", model_dir / "vocab" / "spiece.model"
    )
    (model_dir / "vocab" / "tokenizer_config.json").write_text(json.dumps({"extra_ids": 100}))
    vocab = vocabularies.vocabulary_for_model_dir(str(model_dir))
    assert isinstance(vocab, seqio.SentencePieceVocabulary) and vocab.vocab_size == 32100
    with pytest.raises(FileNotFoundError, match="--vocabulary"):
        vocabularies.vocabulary_from_spec(str(tmp_path / "nope"))
