"""Procedurally generated, deterministic records for the built-in instruction suite.

Each generator takes `(split, index)` and returns one record; the same pair always
gives the same record on every machine (the random generator is seeded from a
hash of task, split and index, not from Python's salted `hash`). Train and
validation records come from disjoint seeds, and `make_records` drops any
validation record whose content also occurs in train.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

Record = dict[str, object]
Generator = Callable[[random.Random], Record]

NAMES = ("Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivo", "June", "Kai", "Lena")
CITIES = ("Oslo", "Lima", "Rome", "Cairo", "Delhi", "Quito", "Seoul", "Paris", "Accra", "Hanoi")
COLORS = ("red", "blue", "green", "yellow", "black", "white", "pink", "gray")
THINGS = ("kite", "bike", "lamp", "boat", "drum", "hat", "cup", "book", "sofa", "clock")
WORDS = (
    "apple", "river", "stone", "cloud", "tiger", "piano", "garden", "window", "rocket",
    "candle", "forest", "mirror", "silver", "planet", "bridge", "pencil", "orange", "castle",
    "dragon", "lemon", "marble", "violet", "harbor", "wizard", "meadow", "jungle", "copper",
)  # fmt: skip


def _rng(task: str, split: str, index: int) -> random.Random:
    digest = hashlib.sha256(f"{task}\x1f{split}\x1f{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


# --- arithmetic ---------------------------------------------------------------
def addition(r: random.Random) -> Record:
    a, b = r.randint(0, 99), r.randint(0, 99)
    return {"a": a, "b": b, "answer": str(a + b)}


def subtraction(r: random.Random) -> Record:
    a, b = sorted((r.randint(0, 99), r.randint(0, 99)), reverse=True)
    return {"a": a, "b": b, "answer": str(a - b)}


def multiplication(r: random.Random) -> Record:
    a, b = r.randint(2, 99), r.randint(2, 9)
    return {"a": a, "b": b, "answer": str(a * b)}


# --- string transformation ----------------------------------------------------
def reverse_word(r: random.Random) -> Record:
    w = "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(4, 7)))
    return {"word": w, "answer": w[::-1]}


def uppercase(r: random.Random) -> Record:
    w = " ".join(r.sample(WORDS, 2))
    return {"text": w, "answer": w.upper()}


def first_letters(r: random.Random) -> Record:
    ws = r.sample(WORDS, 3)
    return {"text": " ".join(ws), "answer": "".join(w[0] for w in ws)}


# --- comparison and classification (answer options) ---------------------------
def larger_number(r: random.Random) -> Record:
    a, b = r.sample(range(100), 2)
    return {"a": str(a), "b": str(b), "choices": [str(a), str(b)], "answer": str(max(a, b))}


def parity(r: random.Random) -> Record:
    n = r.randint(0, 999)
    return {"n": n, "choices": ["even", "odd"], "answer": "odd" if n % 2 else "even"}


def alphabetical_first(r: random.Random) -> Record:
    a, b = r.sample(WORDS, 2)
    return {"a": a, "b": b, "choices": [a, b], "answer": min(a, b)}


# --- question answering over a short generated passage ------------------------
def _passage(r: random.Random) -> tuple[list[tuple[str, str, str]], str]:
    people = r.sample(NAMES, 3)
    facts = [(p, r.choice(CITIES), f"{r.choice(COLORS)} {r.choice(THINGS)}") for p in people]
    text = " ".join(f"{p} lives in {c} and owns a {t}." for p, c, t in facts)
    return facts, text


def passage_where(r: random.Random) -> Record:
    facts, text = _passage(r)
    person, city, _ = r.choice(facts)
    return {"passage": text, "person": person, "answer": city}


def passage_owns(r: random.Random) -> Record:
    facts, text = _passage(r)
    person, _, thing = r.choice(facts)
    return {"passage": text, "person": person, "answer": thing}


def passage_yes_no(r: random.Random) -> Record:
    facts, text = _passage(r)
    person, city, _ = r.choice(facts)
    asked = city if r.random() < 0.5 else r.choice([c for c in CITIES if c != city])
    return {
        "passage": text,
        "person": person,
        "city": asked,
        "choices": ["yes", "no"],
        "answer": "yes" if asked == city else "no",
    }


GENERATORS: dict[str, Generator] = {
    f.__name__: f
    for f in (
        addition, subtraction, multiplication, reverse_word, uppercase, first_letters,
        larger_number, parity, alphabetical_first, passage_where, passage_owns, passage_yes_no,
    )
}  # fmt: skip


def content_key(record: Record) -> str:
    """A record's content without its id, for overlap checks between splits."""
    return repr(sorted((k, v) for k, v in record.items() if k != "id"))


def make_records(
    task: str, split: str, n: int, exclude: frozenset[str] = frozenset()
) -> list[Record]:
    """`n` records of generator `task` for `split`, each with a unique `id`.

    Records whose `content_key` is in `exclude` (the train split's, when making
    validation records) are skipped, so the splits never share an example.
    """
    gen = GENERATORS[task]
    records: list[Record] = []
    for i in range(50 * n):
        if len(records) == n:
            break
        rec = gen(_rng(task, split, i))
        if content_key(rec) in exclude:
            continue
        rec["id"] = f"{task}/{split}/{len(records)}"
        records.append(rec)
    if len(records) < n:
        raise ValueError(f"task {task!r}: only {len(records)} distinct {split} records, {n} asked")
    return records
