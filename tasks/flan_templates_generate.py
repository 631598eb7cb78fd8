"""Templates for generation: NQ-open (closed-book QA), E2E (data to text), Self-Instruct seeds.

NQ-open targets are the first gold answer (scored with `squad`: exact match and
token F1); E2E targets are the first human reference (`bleu`); inverted
templates (answer -> question, text -> meaning representation, output ->
instruction) are scored with `rouge`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flanjax.tasks.flan_templates_common import DatasetTemplates, Record, as_question, gen, inv

# ------------------------------------------------------------------- NQ-open


def prepare_nq_open(record: Mapping[str, Any]) -> Record:
    return {**record, "question_text": as_question(record["question"])}


def _qa(tid: str, inputs: str) -> Any:
    return gen(tid, inputs, "{answer}", "squad")


NQ_OPEN = DatasetTemplates(
    templates=(
        _qa("t0", "{question_text}"),
        _qa("t1", "Answer the following question.\n{question_text}"),
        _qa("t2", "Q: {question_text}\nA:"),
        _qa("t3", "Trivia question: {question_text}\nWhat is the answer?"),
        _qa("t4", "Please give a short answer: {question_text}"),
        _qa("t5", "Question: {question_text}\nShort answer:"),
        _qa("t6", "Here is something I have always wondered: {question_text} Do you know?"),
        _qa("t7", "Without looking anything up, answer in a few words: {question_text}"),
        inv("t8", 'Write a trivia question whose answer is "{answer}".', "{question_text}"),
        inv("t9", "Answer: {answer}\nWhat is a question that this answers?", "{question_text}"),
    ),
    prepare=prepare_nq_open,
    metric="squad",
)


# ----------------------------------------------------------------------- E2E

E2E_ATTRIBUTE_NAMES = {
    "eatType": "type",
    "familyFriendly": "family friendly",
    "priceRange": "price range",
}


def prepare_e2e(record: Mapping[str, Any]) -> Record:
    attributes = record["attributes"]
    pairs = [(E2E_ATTRIBUTE_NAMES.get(k, k), v) for k, v in attributes.items()]
    return {
        **record,
        "reference": record["references"][0],
        "name": attributes.get("name", "this place"),
        "attributes_text": "; ".join(f"{k}: {v}" for k, v in pairs),
        "attributes_lines": "\n".join(f"- {k}: {v}" for k, v in pairs),
        "attribute_names": ", ".join(attributes),
    }


def _d2t(tid: str, inputs: str) -> Any:
    return gen(tid, inputs, "{reference}", "bleu")


E2E = DatasetTemplates(
    templates=(
        _d2t("t0", "Describe this restaurant in one sentence:\n{meaning_representation}"),
        _d2t("t1", "Attributes: {attributes_text}\nWrite a sentence that expresses all of them."),
        _d2t("t2", "{meaning_representation}\n\nTurn this data into natural language."),
        _d2t("t3", "Write a short description of {name} using these facts: {attributes_text}"),
        _d2t("t4", "Data: {meaning_representation}\nSentence:"),
        _d2t("t5", "Here is structured information about a place to eat.\n{attributes_lines}\n"
             "Write it up as one or two sentences for a review site."),
        _d2t("t6", "Generate a description of {name}.\nFacts: {meaning_representation}"),
        _d2t("t7", "{attributes_text}\n\nWhat would a sentence that contains all of this "
             "information look like?"),
        inv("t8", "{reference}\n\nExtract the facts in the sentence above as a meaning "
            "representation: attribute[value] pairs separated by commas.",
            "{meaning_representation}"),
        inv("t9", "Sentence: {reference}\nList the restaurant attributes it mentions, in the "
            "form key[value], separated by commas.", "{meaning_representation}"),
        inv("t10", "Which attributes of the restaurant does this sentence mention?\n{reference}",
            "{attribute_names}"),
    ),
    prepare=prepare_e2e,
    metric="bleu",
)  # fmt: skip


# -------------------------------------------------------------- Self-Instruct


def prepare_self_instruct(record: Mapping[str, Any]) -> Record:
    text = record["input"].strip()
    return {
        **record,
        "input_block": f"\n\n{text}" if text else "",
        "input_line": f"\nInput: {text}" if text else "",
        "input_or_none": text or "(none)",
        "task_title": record["task"].replace("_", " "),
    }


def _follow(tid: str, inputs: str) -> Any:
    return gen(tid, inputs, "{output}", "rouge")


SELF_INSTRUCT = DatasetTemplates(
    templates=(
        _follow("t0", "{instruction}{input_block}"),
        _follow("t1", "Instruction: {instruction}{input_line}\nResponse:"),
        _follow("t2", "Task: {task_title}\n{instruction}{input_block}"),
        _follow("t3", "Carry out the request below.\n\n{instruction}{input_block}"),
        _follow("t4", "{instruction}\nInput: {input_or_none}\nOutput:"),
        _follow("t5", "You are a helpful assistant. {instruction}{input_block}"),
        _follow("t6", "### Request\n{instruction}{input_block}\n\n### Reply"),
        _follow("t7", "Here is a task for you: {instruction}{input_line}"),
        inv("t8", "Input: {input_or_none}\nOutput: {output}\n\nWrite an instruction that would "
            "turn this input into this output.", "{instruction}"),
        inv("t9", "Someone received this response:\n{output}\n\nWhat did they most likely ask "
            "for?", "{instruction}"),
        inv("t10", 'Instruction: {instruction}\nOutput: {output}\nWhat input was given? (Write '
            '"(none)" if there was none.)', "{input_or_none}"),
    ),
    prepare=prepare_self_instruct,
    metric="rouge",
)  # fmt: skip


DATASETS: dict[str, DatasetTemplates] = {
    "nq_open": NQ_OPEN,
    "e2e": E2E,
    "self_instruct": SELF_INSTRUCT,
}
