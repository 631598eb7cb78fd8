"""The built-in instruction suite: 12 generated tasks in 4 clusters, no download.

Tasks are named `builtin.<generator>`; mixtures are `builtin.all`,
`builtin.train_without_<cluster>` and `builtin.eval_<cluster>` for each cluster.
The vocabulary is seqio's ByteVocabulary (UTF-8 bytes), so nothing is fetched.
"""

from __future__ import annotations

import functools

import seqio

from flanjax.data import heldout, registry, synthetic
from flanjax.data.templates import Template as T

VOCABULARY = seqio.ByteVocabulary()
NUM_TRAIN = 2000
NUM_VALIDATION = 64

TEMPLATES: dict[str, tuple[str, list[T]]] = {
    # cluster: arithmetic
    "addition": ("arithmetic", [
        T("t0", "What is {a} plus {b}?", "{answer}"),
        T("t1", "Add {a} and {b}.", "{answer}"),
        T("t2", "{a} + {b} =", "{answer}"),
        T("t3", "Compute the sum of {a} and {b}. Answer:", "{answer}"),
    ]),
    "subtraction": ("arithmetic", [
        T("t0", "What is {a} minus {b}?", "{answer}"),
        T("t1", "Subtract {b} from {a}.", "{answer}"),
        T("t2", "{a} - {b} =", "{answer}"),
    ]),
    "multiplication": ("arithmetic", [
        T("t0", "What is {a} times {b}?", "{answer}"),
        T("t1", "Multiply {a} by {b}.", "{answer}"),
        T("t2", "{a} * {b} =", "{answer}"),
    ]),
    # cluster: string transformation
    "reverse_word": ("strings", [
        T("t0", "Reverse the letters of '{word}'.", "{answer}"),
        T("t1", "Write {word} backwards.", "{answer}"),
        T("t2", "Spell the word {word} from the last letter to the first.", "{answer}"),
    ]),
    "uppercase": ("strings", [
        T("t0", "Convert to upper case: {text}", "{answer}"),
        T("t1", "Write '{text}' in capital letters.", "{answer}"),
        T("t2", "{text}\n\nRewrite the text above in all caps.", "{answer}"),
    ]),
    "first_letters": ("strings", [
        T("t0", "Give the first letter of each word: {text}", "{answer}"),
        T("t1", "Make an acronym from '{text}'.", "{answer}"),
        T("t2", "{text}\nJoin the initials of these words.", "{answer}"),
    ]),
    # cluster: comparison (answer options)
    "larger_number": ("comparison", [
        T("t0", "Which number is larger, {a} or {b}?\n{options}", "{answer}", "choices"),
        T("t1", "Pick the bigger number.\n{options}", "{answer}", "choices"),
        T("t2", "Is {a} or {b} greater?", "{answer}", "choices"),
    ]),
    "parity": ("comparison", [
        T("t0", "Is {n} even or odd?", "{answer}", "choices"),
        T("t1", "Number: {n}\nIs this number even or odd?\n{options}", "{answer}", "choices"),
        T("t2", "Classify the parity of {n}.\n{options}", "{answer}", "choices"),
    ]),
    "alphabetical_first": ("comparison", [
        T("t0", "Which word comes first in the dictionary, {a} or {b}?", "{answer}", "choices"),
        T("t1", "Sort alphabetically and give the first word.\n{options}", "{answer}", "choices"),
        T("t2", "Which of '{a}' and '{b}' would appear earlier in an index?\n{options}",
          "{answer}", "choices"),
    ]),
    # cluster: question answering over a passage
    "passage_where": ("passage_qa", [
        T("t0", "{passage}\n\nWhere does {person} live?", "{answer}"),
        T("t1", "Read the text and answer.\nText: {passage}\nQuestion: In which city is {person}?",
          "{answer}"),
        T("t2", "{passage}\nWhich city is home to {person}?", "{answer}"),
        T("t3", "{passage}\n\nWho lives in {answer}?", "{person}", inverted=True),
    ]),
    "passage_owns": ("passage_qa", [
        T("t0", "{passage}\n\nWhat does {person} own?", "{answer}"),
        T("t1", "Passage: {passage}\nQuestion: What is {person}'s possession?", "{answer}"),
        T("t2", "{passage}\nName the object that belongs to {person}.", "{answer}"),
    ]),
    "passage_yes_no": ("passage_qa", [
        T("t0", "{passage}\n\nDoes {person} live in {city}?", "{answer}", "choices"),
        T("t1", "{passage}\nQuestion: Is {city} where {person} lives?\n{options}", "{answer}",
          "choices"),
        T("t2", "Based on the passage, answer yes or no.\n{passage}\n"
          "Is {person} a resident of {city}?", "{answer}", "choices"),
    ]),
}  # fmt: skip


@functools.cache
def _records(task: str, split: str) -> tuple[dict, ...]:
    if split == "train":
        return tuple(synthetic.make_records(task, "train", NUM_TRAIN))
    train_keys = frozenset(synthetic.content_key(r) for r in _records(task, "train"))
    return tuple(synthetic.make_records(task, split, NUM_VALIDATION, exclude=train_keys))


def _register() -> None:
    names = []
    for gen, (cluster, templates) in TEMPLATES.items():
        name = f"builtin.{gen}"
        metric = "accuracy" if templates[0].has_choices else "exact_match"
        registry.register_templated_task(
            name,
            cluster=cluster,
            templates=templates,
            records=functools.partial(_records, gen),
            splits=("train", "validation"),
            vocabulary=VOCABULARY,
            metric=metric,
        )
        names.append(name)
    heldout.register_cluster_mixtures("builtin", names)


_register()
