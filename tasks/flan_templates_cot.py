"""Templates for GSM8K and the FLAN v2 chain-of-thought sets (cot_*).

Every dataset has three kinds of templates:

* direct: the question, the answer alone. Where the answer is one of a fixed
  set (yes/no, lettered or listed options, parsed out of the question) it is
  scored by rank classification (`accuracy`);
* chain of thought (kind="cot"): the target is the rationale, then the answer
  ("{rationale} So the answer is {answer}."); `DatasetTemplates.select(cot=
  False)` drops them;
* inverted: the answer (and rationale) given, write the question.

GSM8K's worked solution becomes `rationale` without its `<<...>>` calculator
annotations and final `#### N` line. Arithmetic answers are scored with
`gsm8k_answer_accuracy` (which reads the number after "answer is"). The other
CoT generations have no answer-extracting metric in METRICS yet: they use
`rouge` against the full target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flanjax.tasks.flan_templates_common import (
    DatasetTemplates,
    Record,
    Template,
    choice,
    cot,
    gen,
    inv,
)

MATH = "gsm8k_answer_accuracy"
_OPTIONS_HEADER = "\nOptions:\n"
_LETTERED = re.compile(r"\(([A-Z])\)\s*(.*)")
_SENTENCE = re.compile(r'(Sentence [A-Z]):\s*"?(.*?)"?\s*$')
_CALCULATOR = re.compile(r"<<[^>]*>>")


class OptionsError(ValueError):
    """A CoT question whose options cannot be parsed, or whose answer is not among them."""


def parse_options(question: str, answer: str) -> Record:
    """Splits "stem\\nOptions:\\n- a\\n- b" into stem, option labels and texts.

    Labels are what the answer names ("(C)", "Sentence A", or the text itself);
    `answer_index` is the answer's position. Raises OptionsError if there are
    no options or the answer is not among them.
    """
    stem, header, tail = question.rpartition(_OPTIONS_HEADER)
    if not header:
        raise OptionsError(f"no {_OPTIONS_HEADER!r} in {question[-120:]!r}")
    labels, texts = [], []
    for line in filter(None, (raw.strip() for raw in tail.split("\n"))):
        line = line.removeprefix("- ").strip()
        lettered, sentence = _LETTERED.fullmatch(line), _SENTENCE.fullmatch(line)
        if lettered:
            label, text = f"({lettered.group(1)})", lettered.group(2)
        elif sentence:
            label, text = sentence.group(1), sentence.group(2)
        else:
            label = text = line
        labels.append(label)
        texts.append(text)
    if answer not in labels:
        raise OptionsError(f"answer {answer!r} is not among the options {labels}")
    return {
        "stem": stem.strip(),
        "choice_labels": labels,
        "choice_texts": texts,
        "answer_index": labels.index(answer),
        "answer_text": texts[labels.index(answer)],
    }


def prepare_with_options(record: Mapping[str, Any]) -> Record:
    return {**record, **parse_options(record["question"], record["answer"])}


def prepare_yes_no(record: Mapping[str, Any]) -> Record:
    """creak / strategyqa: the question, with its yes/no options block (if any) removed."""
    stem, header, _ = record["question"].rpartition(_OPTIONS_HEADER)
    return {**record, "stem": (stem if header else record["question"]).strip()}


def prepare_gsm8k(record: Mapping[str, Any]) -> Record:
    steps = _CALCULATOR.sub("", record["solution"]).rpartition("####")[0]
    return {**record, "rationale": steps.strip()}


def _generic_cot(metric: str) -> tuple[Template, ...]:
    """Chain-of-thought and inverted templates shared by every CoT set (ids c0-c6)."""
    return (
        cot("c0", "{question}\nLet's think step by step.", metric),
        cot("c1", "Question: {question}\nThink it through first, then answer.", metric),
        cot("c2", "{question}\n\nExplain your reasoning before you give the answer.", metric,
            targets="{rationale} So the final answer is {answer}."),
        cot("c3", "Answer the question below. Start with a short justification.\n\n{question}",
            metric),
        inv("c4", "Make up a question, and a justification, for which the answer is {answer}.",
            "Question: {question}\nJustification: {rationale}"),
        inv("c5", "Reasoning: {rationale}\nAnswer: {answer}\nWhat was the question?",
            "{question}"),
        gen("c6", "{question}\n\nThe answer is {answer}. Why?", "{rationale}", "rouge"),
    )  # fmt: skip


GSM8K = DatasetTemplates(
    templates=(
        gen("t0", "{question}", "{answer}", MATH),
        gen("t1", "Solve this math word problem and give only the final number.\n{question}",
            "{answer}", MATH),
        gen("t2", "Question: {question}\nAnswer:", "{answer}", MATH),
        cot("t3", "{question}\nLet's think step by step.", MATH),
        cot("t4", "Solve the problem, showing your work.\n\n{question}", MATH,
            targets="{rationale}\n#### {answer}"),
        cot("t5", "Q: {question}\nA: Let's reason it out.", MATH),
        cot("t6", "Work out this grade-school math question. Explain each step before giving "
            "the result.\n{question}", MATH),
        cot("t7", "Problem: {question}\nExplain your reasoning, then state the answer.", MATH,
            targets="{rationale} Therefore, the answer is {answer}."),
        inv("t8", "Write a grade-school math word problem whose answer is {answer}.",
            "{question}"),
        inv("t9", "Here is the worked solution to a math word problem:\n{rationale}\nThe final "
            "answer is {answer}. Write the problem.", "{question}"),
        gen("t10", "{question}\n\nThe answer is {answer}. Show how to get there.",
            "{rationale}", "rouge"),
    ),
    prepare=prepare_gsm8k,
    metric=MATH,
)  # fmt: skip

COT_GSM8K = DatasetTemplates(
    templates=(
        gen("t0", "{question}", "{answer}", MATH),
        gen("t1", "Give the numerical answer only.\n{question}", "{answer}", MATH),
        gen("t2", "Math problem: {question}\nResult:", "{answer}", MATH),
        *_generic_cot(MATH),
    ),
    metric=MATH,
)  # fmt: skip


def _lettered(subject: str) -> DatasetTemplates:
    """aqua and qasc: answers are option letters such as "(C)"."""
    return DatasetTemplates(
        templates=(
            choice("t0", "{question}", field="choice_labels", answer="answer_index"),
            choice("t1", "{stem}\n{options}", field="choice_texts", answer="answer_index"),
            choice("t2", f"{subject}\n{{stem}}", field="choice_texts", answer="answer_index"),
            choice("t3", "Choose the letter of the correct option.\n{question}",
                   field="choice_labels", answer="answer_index"),
            *_generic_cot("rouge"),
        ),
        prepare=prepare_with_options,
        metric="accuracy",
    )  # fmt: skip


COT_AQUA = _lettered("Solve this algebra word problem.")
COT_QASC = _lettered("Answer this science question.")

COT_ECQA = DatasetTemplates(
    templates=(
        choice("t0", "{question}", field="choice_texts", answer="answer_index"),
        choice("t1", "{stem}\n{options}", field="choice_texts", answer="answer_index"),
        choice("t2", "Use common sense to answer: {stem}", field="choice_texts",
               answer="answer_index"),
        choice("t3", "Pick the best answer.\n{stem}\n{options}", field="choice_texts",
               answer="answer_index"),
        *_generic_cot("rouge"),
    ),
    prepare=prepare_with_options,
    metric="accuracy",
)  # fmt: skip

COT_SENSEMAKING = DatasetTemplates(
    templates=(
        choice("t0", "{question}", field="choice_labels", answer="answer_index"),
        choice("t1", "{stem}\n{options}", field="choice_texts", answer="answer_index"),
        choice("t2", "Which sentence goes against common sense?\n{options}",
               field="choice_texts", answer="answer_index"),
        choice("t3", "{question}\nAnswer with the sentence's letter.", field="choice_labels",
               answer="answer_index"),
        *_generic_cot("rouge"),
    ),
    prepare=prepare_with_options,
    metric="accuracy",
)  # fmt: skip


def _yes_no(lead: str) -> DatasetTemplates:
    """creak and strategyqa: yes/no answers."""
    yes_no = ("yes", "no")
    return DatasetTemplates(
        templates=(
            choice("t0", "{question}", yes_no, answer="answer"),
            choice("t1", "{stem}\n{options}", yes_no, answer="answer"),
            choice("t2", "{stem}\nAnswer yes or no.", yes_no, answer="answer"),
            choice("t3", f"{lead}\n{{stem}}", yes_no, answer="answer"),
            *_generic_cot("rouge"),
        ),
        prepare=prepare_yes_no,
        metric="accuracy",
    )


COT_CREAK = _yes_no("Check this claim against what you know about the world.")
COT_STRATEGYQA = _yes_no("This question needs several steps of reasoning.")

DATASETS: dict[str, DatasetTemplates] = {
    "gsm8k": GSM8K,
    "cot_gsm8k": COT_GSM8K,
    "cot_aqua": COT_AQUA,
    "cot_creak": COT_CREAK,
    "cot_ecqa": COT_ECQA,
    "cot_qasc": COT_QASC,
    "cot_sensemaking": COT_SENSEMAKING,
    "cot_strategyqa": COT_STRATEGYQA,
}
