"""A decoder's own chat template applied to (inputs, targets) pairs.

A Hugging Face chat model was tuned on conversations rendered by the Jinja
template it ships (`chat_template.jinja`, or `chat_template` in
tokenizer_config.json). `ChatFormat` lays an instruction pair out the same way:
the user turn is the inputs, the assistant turn the targets.

    prompt(inputs)  = <text before the user's content> inputs <text up to the answer>
    target(targets) = targets <the end of the assistant turn, e.g. "<|im_end|>\\n">

The template is rendered once, as Hugging Face renders it (a sandboxed Jinja
environment with trim_blocks and lstrip_blocks, `raise_exception`, `tojson`),
with sentinel strings for the two contents, and cut at the sentinels; a second
rendering with other sentinels must give the same pieces, so a template that
branches on the content is refused rather than silently mis-rendered. A
template that trims the content (Llama 3's `| trim`) is detected the same way
and the content is trimmed. The rendered prompt with `add_generation_prompt`
must equal the conversation's text up to the answer.

Training therefore puts the loss on the assistant's tokens only (the targets
and the end-of-turn token, which is the tokenizer's EOS for SmolLM2 and Qwen2),
and the evaluator scores and generates after exactly the training prompt.
`strftime_now` renders a fixed date (`FIXED_DATE`), so data do not change with
the day they are rendered.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

TEMPLATE_FILE = "chat_template.jinja"
FIXED_DATE = datetime.datetime(2024, 7, 26)
_SENTINELS = (("\x02USER_A\x03", "\x02ASSISTANT_A\x03"), ("\x02USER_B\x03", "\x02ASSISTANT_B\x03"))
_PADDED = (" \n\x02USER_C\x03 \n", " \n\x02ASSISTANT_C\x03 \n")


class ChatTemplateError(ValueError):
    """A chat template that cannot be used for (inputs, targets) pairs."""


def find_template(folder: str) -> tuple[str, str]:
    """(template text, the file it came from) in a tokenizer folder."""
    path = os.path.join(folder, TEMPLATE_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            return f.read(), path
    config = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(config):
        with open(config) as f:
            template = json.load(f).get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            named = {t.get("name"): t.get("template") for t in template}
            template = named.get("default")
        if isinstance(template, str):
            return template, config
    raise ChatTemplateError(
        f"{folder}: no chat template ({TEMPLATE_FILE}, or chat_template in tokenizer_config.json)"
    )


def special_tokens(folder: str) -> dict[str, str]:
    """bos_token, eos_token, ... as the template sees them (tokenizer_config.json)."""
    out: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            config = json.load(f)
        for key, value in config.items():
            if key.endswith("_token"):
                value = value.get("content") if isinstance(value, dict) else value
                if isinstance(value, str):
                    out[key] = value
    return out


def compile_template(text: str):
    """The Jinja template, in an environment like transformers' apply_chat_template."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):  # `{% generation %}` marks assistant text
        tags = frozenset({"generation"})

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(
                lineno
            )

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = FIXED_DATE.strftime
    return env.from_string(text)


@dataclasses.dataclass(frozen=True)
class ChatFormat:
    """(inputs, targets) laid out as one user turn and one assistant turn (or, as
    `PLAIN`, the inputs, a newline, and the targets followed by EOS)."""

    before_user: str
    before_answer: str
    after_answer: str
    trims_content: bool
    source: str  # the file the template came from
    append_eos: bool = False  # EOS after the targets (a template ends the turn itself)

    @classmethod
    def from_folder(cls, folder: str) -> ChatFormat:
        text, source = find_template(folder)
        return cls.from_template(text, special_tokens(folder), source)

    @classmethod
    def from_template(cls, text: str, tokens: Mapping[str, str], source: str) -> ChatFormat:
        def render(user: str, answer: str | None) -> str:
            messages = [{"role": "user", "content": user}]
            if answer is not None:
                messages.append({"role": "assistant", "content": answer})
            return template.render(
                messages=messages, add_generation_prompt=answer is None, **dict(tokens)
            )

        try:
            template = compile_template(text)
            pieces = [_cut(render(u, a), u, a, source) for u, a in _SENTINELS]
            prompts = [render(u, None) for u, _ in _SENTINELS]
            padded = render(*_PADDED)
        except Exception as e:  # a Jinja error: name the template
            if isinstance(e, ChatTemplateError):
                raise
            raise ChatTemplateError(f"{source}: the chat template does not render: {e}") from e
        if pieces[0] != pieces[1]:
            raise ChatTemplateError(
                f"{source}: the chat template renders differently for different contents; "
                "flanjax cannot lay (inputs, targets) pairs out with it"
            )
        before_user, before_answer, after_answer = pieces[0]
        for (user, _), prompt in zip(_SENTINELS, prompts):
            if prompt != before_user + user + before_answer:
                raise ChatTemplateError(
                    f"{source}: the generation prompt ({prompt!r}) is not the conversation's "
                    "text up to the answer; evaluation would not see the training prompt"
                )
        trims = _PADDED[0] not in padded
        return cls(before_user, before_answer, after_answer, trims, source)

    def prompt(self, inputs: str) -> str:
        return (
            self.before_user
            + (inputs.strip() if self.trims_content else inputs)
            + (self.before_answer)
        )

    def target(self, targets: str) -> str:
        return (targets.strip() if self.trims_content else targets) + self.after_answer

    def tf_preprocessor(self):
        """A seqio preprocessor: text `inputs`/`targets` -> the chat layout (tf.strings)."""

        def fmt(ds: tf.data.Dataset) -> tf.data.Dataset:
            def one(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
                ex = dict(ex)
                inputs, targets = ex["inputs"], ex["targets"]
                if self.trims_content:
                    inputs, targets = tf.strings.strip(inputs), tf.strings.strip(targets)
                ex["inputs"] = tf.strings.join([self.before_user, inputs, self.before_answer])
                ex["targets"] = tf.strings.join([targets, self.after_answer])
                return ex

            return ds.map(one, num_parallel_calls=tf.data.AUTOTUNE)

        return fmt

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@functools.cache
def load(folder: str) -> ChatFormat:
    """`ChatFormat.from_folder`, once per folder (the pipeline, the run's checks and the
    evaluator's tasks all ask for it)."""
    return ChatFormat.from_folder(folder)


# A decoder-only layout without a chat template, for Hugging Face tokenizers: the
# prompt, "\n", the answer, EOS (the newline never merges with the next token in
# byte-level BPE, so prompt and answer tokenize apart as they do together).
PLAIN = ChatFormat("", "\n", "", False, "plain", append_eos=True)


def _cut(text: str, user: str, answer: str, source: str) -> tuple[str, str, str]:
    """(before the user's content, between it and the answer, after the answer)."""
    if text.count(user) != 1 or text.count(answer) != 1:
        raise ChatTemplateError(
            f"{source}: the chat template does not render the user and assistant contents "
            "exactly once each"
        )
    head, rest = text.split(user)
    middle, tail = rest.split(answer) if answer in rest else (None, None)
    if middle is None:
        raise ChatTemplateError(f"{source}: the chat template puts the answer before the question")
    return head, middle, tail
