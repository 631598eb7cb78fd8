"""Templates for entailment (RTE, CB), COPA, WSC and reading comprehension (BoolQ, MultiRC).

Classification templates score literal answer words by rank classification,
indexed by the record's `label_index` (so RTE's ("yes", "no") reads
entailment -> "yes"); some show the choices (`{options}`), some do not.
Inverted templates give the label and ask for the text (a hypothesis that
follows or not, a question with a given answer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flanjax.tasks.flan_templates_common import (
    DatasetTemplates,
    Record,
    as_question,
    choice,
    gen,
    inv,
    lower_first,
)

YES_NO = ("yes", "no")  # label_index 0 (entailment) -> "yes"
NO_YES = ("no", "yes")  # label_index 0 (false / no) -> "no"


# ----------------------------------------------------------------------- RTE


def prepare_rte(record: Mapping[str, Any]) -> Record:
    i = record["label_index"]
    return {
        **record,
        "relation": ("follows from", "does not follow from")[i],
        "conclusion": ("can", "cannot")[i],
    }


RTE = DatasetTemplates(
    templates=(
        choice("t0", '{premise}\n\nBased on the text above, is it true that "{hypothesis}"?\n'
               "{options}", YES_NO),
        choice("t1", "Passage: {premise}\nClaim: {hypothesis}\nDoes the passage support the "
               "claim?", YES_NO),
        choice("t2", "Read this: {premise}\n\nCan we conclude the following? {hypothesis}\n"
               "{options}", YES_NO),
        choice("t3", '{premise}\nIf the sentence above is true, must "{hypothesis}" be true '
               "as well?", YES_NO),
        choice("t4", "Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail "
               "the hypothesis?\n{options}", ("entailment", "not entailment")),
        choice("t5", "Decide whether the second sentence follows from the first.\nFirst: "
               "{premise}\nSecond: {hypothesis}\n{options}", ("it follows", "it does not follow")),
        choice("t6", "{premise}\n\nStatement: {hypothesis}\nTrue or false?", ("true", "false")),
        choice("t7", 'Here is a short text:\n{premise}\n\nSomeone concludes: "{hypothesis}" '
               "Judging only by the text, are they right?", YES_NO),
        inv("t8", "{premise}\n\nWrite a sentence that {relation} the text above.",
            "{hypothesis}"),
        inv("t9", "Write a short passage from which one {conclusion} conclude the following: "
            "{hypothesis}", "{premise}"),
    ),
    prepare=prepare_rte,
    metric="accuracy",
)  # fmt: skip


# ------------------------------------------------------------------------ CB


def prepare_cb(record: Mapping[str, Any]) -> Record:
    i = record["label_index"]  # entailment, contradiction, neutral
    relations = ("follows from", "contradicts", "neither follows from nor contradicts")
    return {**record, "relation": relations[i]}


CB = DatasetTemplates(
    templates=(
        choice("t0", '{premise}\n\nBased on the text above, is it true that "{hypothesis}"?\n'
               "{options}", ("yes", "no", "maybe")),
        choice("t1", "Premise: {premise}\nHypothesis: {hypothesis}\nWhat is the relation of "
               "the hypothesis to the premise?\n{options}",
               ("entailment", "contradiction", "neutral")),
        choice("t2", '{premise}\n\nGiven this, is "{hypothesis}" true, false, or neither?',
               ("true", "false", "neither")),
        choice("t3", "Read the passage and say whether the statement follows from it.\n\n"
               "Passage: {premise}\nStatement: {hypothesis}\n{options}",
               ("it follows", "it is contradicted", "it is undetermined")),
        choice("t4", '{premise}\nDoes the text guarantee that "{hypothesis}"? Answer yes, no '
               "or maybe.", ("yes", "no", "maybe")),
        choice("t5", "Context: {premise}\n\nCan we infer that {hypothesis}?\n{options}",
               ("yes", "no", "cannot be determined")),
        choice("t6", "Assume this is accurate:\n{premise}\n\nWhat does that say about "
               '"{hypothesis}"?',
               ("it must hold", "it cannot hold", "it may or may not hold")),
        choice("t7", "Dialogue or text: {premise}\nInference: {hypothesis}\nIs the inference "
               "implied, contradicted, or neutral?",
               ("implied", "contradicted", "neutral")),
        inv("t8", "{premise}\n\nWrite a sentence that {relation} the text above.",
            "{hypothesis}"),
        inv("t9", 'Statement: "{hypothesis}"\nWrite a passage that this statement {relation}.',
            "{premise}"),
    ),
    prepare=prepare_cb,
    metric="accuracy",
)  # fmt: skip


# ---------------------------------------------------------------------- COPA


def prepare_copa(record: Mapping[str, Any]) -> Record:
    effect = record["question"] == "effect"
    return {
        **record,
        "connective": "so" if effect else "because",
        "ask": "What happened as a result?" if effect else "What was the cause?",
        "premise_stem": record["premise"].rstrip(". "),
        "choices_lower": [lower_first(c) for c in record["choices"]],
        "inverse_relation": "has this consequence" if effect else "was brought about by this",
    }


COPA = DatasetTemplates(
    templates=(
        choice("t0", "{premise_stem} {connective}...\n{options}", field="choices_lower"),
        choice("t1", "Premise: {premise}\n{ask}\n{options}", field="choices", answer="answer"),
        choice("t2", "{premise}\n\n{ask}", field="choices", answer="answer"),
        choice("t3", "Pick the more plausible {question} of the event below.\nEvent: {premise}"
               "\n{options}", field="choices", answer="answer"),
        choice("t4", "Complete the sentence: {premise_stem} {connective}",
               field="choices_lower"),
        choice("t5", "Which alternative is more likely the {question}?\nSituation: {premise}\n"
               "Alternative 1: {choice1}\nAlternative 2: {choice2}",
               ("Alternative 1", "Alternative 2")),
        choice("t6", '{premise}\nWhat is the {question} here: "{choice1}" or "{choice2}"?',
               field="choices", answer="answer"),
        choice("t7", "Think about cause and effect.\n{premise}\n{ask}\n{options}",
               field="choices", answer="answer"),
        gen("t8", "Here is an event: {premise}\nWrite a plausible {question} of it.",
            "{answer}", "rouge"),
        inv("t9", "Write a sentence describing an event that {inverse_relation}: {answer}",
            "{premise}"),
    ),
    prepare=prepare_copa,
    metric="accuracy",
)  # fmt: skip


# ----------------------------------------------------------------------- WSC


def _bare(word: str) -> str:
    return word.strip(".,;:!?\"'").lower()


def mark_word(text: str, index: int, span: str) -> str:
    """Puts *asterisks* around `span` at word `index` of `text`.

    If that word is not the span (WSC's known bad index), the first
    occurrence of the span as a whole word is marked instead.
    """
    words = text.split(" ")
    n = len(span.split(" "))
    if not (0 <= index < len(words) and _bare(words[index]) == _bare(span.split(" ")[0])):
        match = re.search(rf"(?<!\w){re.escape(span)}(?!\w)", text)
        if match is None:
            return text
        return f"{text[: match.start()]}*{span}*{text[match.end() :]}"
    words[index] = "*" + words[index]
    words[index + n - 1] = words[index + n - 1] + "*"
    return " ".join(words)


def prepare_wsc(record: Mapping[str, Any]) -> Record:
    marked = mark_word(record["text"], record["span2_index"], record["span2_text"])
    return {**record, "text_marked": marked}


WSC = DatasetTemplates(
    templates=(
        choice("t0", '{text}\n\nIs {span1_text} the one meant by the pronoun "{span2_text}" '
               "here?\n{options}", NO_YES),
        choice("t1", "{text_marked}\n\nDoes the word marked with asterisks mean {span1_text}?",
               NO_YES),
        choice("t2", 'Sentence: {text}\nQuestion: is "{span2_text}" the same as "{span1_text}" '
               "here? Answer yes or no.", NO_YES),
        choice("t3", '{text}\nHere, "{span2_text}" stands for "{span1_text}". True or false?\n'
               "{options}", ("false", "true")),
        choice("t4", "Resolve the reference.\n{text_marked}\nCould the marked word be replaced "
               'by "{span1_text}" without changing the meaning?', NO_YES),
        choice("t5", 'In the text below, who or what is "{span2_text}"? Is it {span1_text}?\n\n'
               "{text}\n{options}", NO_YES),
        choice("t6", '{text}\n\nClaim: the pronoun "{span2_text}" points back to '
               '"{span1_text}".\nIs the claim correct?', ("incorrect", "correct")),
        choice("t7", "Pronoun resolution.\nText: {text_marked}\nCandidate: {span1_text}\nIs "
               "the candidate what the marked pronoun refers to?\n{options}", NO_YES),
        choice("t8", '{text}\nDoes "{span2_text}" refer to {span1_text} in this text? Reply '
               "with yes or no.", NO_YES),
        choice("t9", "Do the two expressions refer to the same thing?\nPassage: {text}\n"
               "Expression 1: {span1_text}\nExpression 2: {span2_text}\n{options}",
               ("different things", "the same thing")),
    ),
    prepare=prepare_wsc,
    metric="accuracy",
)  # fmt: skip


# --------------------------------------------------------------------- BoolQ


def prepare_boolq(record: Mapping[str, Any]) -> Record:
    return {**record, "question_text": as_question(record["question"])}


BOOLQ = DatasetTemplates(
    templates=(
        choice("t0", "{passage}\n\nQuestion: {question_text}\n{options}", NO_YES),
        choice("t1", "Read the text and answer yes or no.\n\n{passage}\n\n{question_text}",
               NO_YES),
        choice("t2", "{passage}\n\nBased on this passage, {question}?", NO_YES),
        choice("t3", "Here is an article:\n{passage}\n\nAfter reading it, answer: "
               "{question_text}\n{options}", NO_YES),
        choice("t4", "{passage}\nTrue or false: {question_text}", ("false", "true")),
        choice("t5", "Q: {question_text}\nContext: {passage}\nA (yes or no):", NO_YES),
        choice("t6", "Use the passage to answer the question.\nPassage: {passage}\nQuestion: "
               "{question_text}\n{options}", NO_YES),
        choice("t7", "{question_text} Check this passage before you answer:\n{passage}", NO_YES),
        inv("t8", "{passage}\n\nWrite a yes/no question about the passage above whose answer "
            'is "{answer}".', "{question_text}"),
        inv("t9", "Article: {passage}\nAnswer: {answer}\nWhat question was asked?",
            "{question_text}"),
    ),
    prepare=prepare_boolq,
    metric="accuracy",
)  # fmt: skip


# ------------------------------------------------------------------- MultiRC


def prepare_multirc(record: Mapping[str, Any]) -> Record:
    right = record["label_index"] == 1
    return {
        **record,
        "candidate": record["answer"],  # "{answer}" is the choice in choice templates
        "verdict": "correct" if right else "incorrect",
        "verdict_phrase": "a correct" if right else "an incorrect",
    }


MULTIRC = DatasetTemplates(
    templates=(
        choice("t0", "{passage}\n\nQuestion: {question}\nProposed answer: {candidate}\nIs the "
               "proposed answer correct?\n{options}", NO_YES),
        choice("t1", '{passage}\n\n{question}\nWould "{candidate}" be a right answer?', NO_YES),
        choice("t2", "Passage: {passage}\nQ: {question}\nA: {candidate}\nTrue or false: the "
               "answer is correct.", ("false", "true")),
        choice("t3", "Read the paragraph and judge the answer.\n{passage}\nQuestion: "
               "{question}\nAnswer: {candidate}\n{options}", ("incorrect", "correct")),
        choice("t4", '{passage}\n\nBased on the paragraph, does "{candidate}" answer the '
               'question "{question}"?', NO_YES),
        choice("t5", "Question: {question}\nCandidate answer: {candidate}\nContext: {passage}\n"
               "Is the candidate answer supported by the context?\n{options}", NO_YES),
        choice("t6", '{passage}\n\nA student answered the question "{question}" with '
               '"{candidate}". Did the student get it right?', NO_YES),
        choice("t7", "Reading comprehension.\n\n{passage}\n\n{question} {candidate}\n\nIs that "
               "right?\n{options}", NO_YES),
        inv("t8", "{passage}\n\nQuestion: {question}\nWrite {verdict_phrase} answer to the "
            "question.", "{candidate}"),
        inv("t9", '{passage}\n\nWrite a question about the paragraph for which "{candidate}" '
            "is {verdict_phrase} answer.", "{question}"),
    ),
    prepare=prepare_multirc,
    metric="accuracy",
)  # fmt: skip


DATASETS: dict[str, DatasetTemplates] = {
    "rte": RTE,
    "cb": CB,
    "copa": COPA,
    "wsc": WSC,
    "boolq": BOOLQ,
    "multirc": MULTIRC,
}
