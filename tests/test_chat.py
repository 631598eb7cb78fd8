"""Chat templates (flanjax/data/chat.py): Hugging Face's rendering, token for token."""

from __future__ import annotations

import numpy as np
import pytest
import seqio

from flanjax.data import binding, chat, pipeline
from flanjax.data.chat import ChatFormat, ChatTemplateError
from flanjax.data.vocabularies import HfTokenizerVocabulary

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_chatml_pieces_are_literal():
    fmt = ChatFormat.from_template(CHATML, {}, "chatml")
    assert fmt.prompt("Is 3 odd?") == (
        "<|im_start|>user\nIs 3 odd?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert fmt.target("yes") == "yes<|im_end|>\n"
    assert not fmt.trims_content and not fmt.append_eos


def test_a_trimming_template_trims_the_content():
    text = (
        "{{ bos_token }}{% for m in messages %}<|h|>{{ m['role'] }}<|e|>\n\n"
        "{{ m['content'] | trim }}<|eot|>{% endfor %}"
        "{% if add_generation_prompt %}<|h|>assistant<|e|>\n\n{% endif %}"
    )
    fmt = ChatFormat.from_template(text, {"bos_token": "<B>"}, "trim")
    assert fmt.trims_content
    assert fmt.prompt("  hi \n") == "<B><|h|>user<|e|>\n\nhi<|eot|><|h|>assistant<|e|>\n\n"
    assert fmt.target(" ok ") == "ok<|eot|>"


def test_a_template_that_depends_on_the_content_is_refused():
    text = (
        "{% for m in messages %}{% if 'A' in m['content'] %}X{% endif %}"
        "{{ m['content'] }}|{% endfor %}{% if add_generation_prompt %}>{% endif %}"
    )
    with pytest.raises(ChatTemplateError, match="renders differently"):
        ChatFormat.from_template(text, {}, "branchy.jinja")


def test_a_generation_prompt_that_is_not_the_prefix_is_refused():
    text = (
        "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
        "{% if add_generation_prompt %}<go>{% endif %}"
    )
    with pytest.raises(ChatTemplateError, match="generation prompt"):
        ChatFormat.from_template(text, {}, "odd.jinja")


def test_a_broken_template_is_named(tmp_path):
    (tmp_path / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }")
    with pytest.raises(ChatTemplateError, match="chat_template.jinja"):
        ChatFormat.from_folder(str(tmp_path))
    with pytest.raises(ChatTemplateError, match="no chat template"):
        ChatFormat.from_folder(str(tmp_path / "missing"))


def _hf_ids(tokenizer, messages, generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt
    )
    ids = out["input_ids"] if hasattr(out, "keys") else out
    return list(ids)


@pytest.mark.parametrize(
    "inputs, targets",
    [
        ("Premise: It rains.\nHypothesis: The ground is wet.\nOPTIONS:\n- yes\n- no", "yes"),
        ("Translate to French: good morning", " Bonjour !\n"),
    ],
)
def test_smollm2_chat_ids_equal_apply_chat_template(smollm2_dir, inputs, targets):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(smollm2_dir))
    vocab = HfTokenizerVocabulary(str(smollm2_dir))
    fmt = ChatFormat.from_folder(str(smollm2_dir))
    prompt_ids = list(vocab.encode(fmt.prompt(inputs)))
    target_ids = list(vocab.encode(fmt.target(targets)))
    user = [{"role": "user", "content": inputs}]
    assert prompt_ids == _hf_ids(tokenizer, user, generation_prompt=True)
    both = [*user, {"role": "assistant", "content": targets}]
    assert prompt_ids + target_ids == _hf_ids(tokenizer, both, generation_prompt=False)
    assert target_ids[-2:] == [vocab.eos_id, vocab.encode("\n")[0]]  # <|im_end|> "\n"


def test_training_batches_put_the_loss_on_the_assistant_turn_and_its_end(smollm2_dir, shared_data):
    import flanjax.tasks  # noqa: F401

    vocab_dir = str(smollm2_dir)
    cfg = pipeline.DataConfig(
        "flan.rte",
        {"inputs": 256, "targets": 32},
        batch_size=2,
        pack=False,
        shuffle=False,
        feature_converter="prefix_lm",
        vocabulary=vocab_dir,
        prompt_format="chat",
        chat_template=vocab_dir,
    )
    batch = next(pipeline.BatchIterator(cfg))
    vocab = HfTokenizerVocabulary(vocab_dir)
    fmt = ChatFormat.from_folder(vocab_dir)
    for row in range(2):
        weights = batch["decoder_loss_weights"][row]
        tokens = batch["decoder_target_tokens"][row]
        scored = tokens[weights > 0].tolist()
        assert scored, "empty loss mask"
        assert scored[-2] == vocab.eos_id  # the end of the assistant turn is trained
        assert vocab.decode(scored).strip()  # the answer's text (special tokens dropped)
        first = int(np.argmax(weights > 0))
        prompt = tokens[:first].tolist()
        head, tail = vocab.encode(fmt.before_user), vocab.encode(fmt.before_answer)
        assert prompt[: len(head)] == head and prompt[-len(tail) :] == tail
    name = pipeline.task_name(cfg)
    assert name.startswith("flan.rte:hf") and "_chat" in name
    assert binding.base_name(name) == "flan.rte"


def test_plain_layout_appends_eos_only_to_the_targets(shared_data):
    import flanjax.tasks  # noqa: F401

    vocab = seqio.ByteVocabulary()
    task = seqio.get_mixture_or_task(binding.bind("flan.rte", vocab, chat.PLAIN))
    ex = next(
        task.get_dataset({"inputs": 512, "targets": 16}, "train", shuffle=False).as_numpy_iterator()
    )
    assert vocab.decode(ex["inputs"].tolist()).endswith("\n")
    assert ex["inputs"][-1] != vocab.eos_id
    assert ex["targets"][-1] == vocab.eos_id
    assert np.all(ex["targets"][:-1] != vocab.eos_id)


@pytest.mark.parametrize("kind", ["plain", "chat"])
def test_the_evaluator_lays_pairs_out_as_training_did(smollm2_dir, shared_data, kind):
    import flanjax.tasks  # noqa: F401
    from flanjax.evaluation.encoding import Layout

    vocab = HfTokenizerVocabulary(str(smollm2_dir))
    fmt = chat.PLAIN if kind == "plain" else ChatFormat.from_folder(str(smollm2_dir))
    lengths = {"inputs": 512, "targets": 64}

    def first(name: str) -> dict:
        task = seqio.get_mixture_or_task(name)
        return next(task.get_dataset(lengths, "validation", shuffle=False).as_numpy_iterator())

    text = first("flan.cb")  # the rendered pair, as the task's own vocabulary saw it
    trained = first(binding.bind("flan.cb", vocab, fmt))
    layout = Layout(vocab, encoder_decoder=False, kind=kind, pair=fmt)
    prompt, target = layout.encode(
        text["inputs_pretokenized"].decode(), text["targets_pretokenized"].decode()
    )
    assert prompt == [0, *trained["inputs"].tolist()]  # 0: the converter's shifted-in start
    assert target == trained["targets"].tolist()
