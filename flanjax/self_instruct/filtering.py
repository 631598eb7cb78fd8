"""The Self-Instruct filters: which proposed instructions and instances are kept.

An instruction is dropped, for the first reason that applies (`REASONS`, in order):

* `empty`: nothing but whitespace and punctuation;
* `too_short` / `too_long`: fewer than `min_words` or more than `max_words` words
  (the paper's bounds: 3 and 150);
* `keyword`: it names something a text-only model cannot see or do (`KEYWORDS`:
  image, picture, graph, file, map, draw, plot, go to, ...), matched as whole
  words, case-insensitively;
* `bad_start`: it starts with punctuation or a non-ASCII character (the paper's
  heuristic against fragments and other-language echoes of the prompt);
* `duplicate`: equal, after lower-casing and collapsing whitespace, to an existing
  instruction;
* `rouge_overlap`: ROUGE-L F-measure with some existing instruction (the seeds, the
  kept ones, and those kept earlier in the same round) of `max_rouge` (0.7) or more.
  ROUGE-L as `rouge_score` computes it without stemming: lower-cased alphanumeric
  tokens, F = 2 * LCS / (len(a) + len(b));
* `no_instances`: (after instance generation) no instance survived `clean_instances`.

Instances (input, output pairs) are dropped when the output is empty, when input and
output are the same text, when either is longer than `max_instance_chars`, or when the
pair repeats an earlier one of the same task.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

KEYWORDS: tuple[str, ...] = (
    "image", "images", "picture", "pictures", "photo", "photos", "graph", "graphs",
    "file", "files", "map", "maps", "draw", "plot", "go to", "video", "videos", "audio",
    "music", "flowchart", "diagram", "diagrams", "chart", "charts", "sketch",
)  # fmt: skip
REASONS: tuple[str, ...] = (
    "empty", "too_short", "too_long", "keyword", "bad_start", "duplicate", "rouge_overlap",
    "no_instances",
)  # fmt: skip
_KEYWORD_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in KEYWORDS) + r")\b", re.I)


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """The filters' bounds."""

    min_words: int = 3
    max_words: int = 150
    max_rouge: float = 0.7  # dropped at this ROUGE-L F-measure or above
    max_instance_chars: int = 1000


def normalize(text: str) -> str:
    """Lower-cased, whitespace collapsed: the key that `duplicate` compares."""
    return " ".join(text.lower().split())


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts (rouge_score, no stemming)."""
    return _scorer().score(a, b)["rougeL"].fmeasure


def _scorer():
    from rouge_score import rouge_scorer

    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return _SCORER


_SCORER = None


def surface_reason(instruction: str, cfg: FilterConfig) -> str | None:
    """The first of empty, too_short, too_long, keyword, bad_start that applies, or None."""
    if not re.sub(r"[\W_]+", "", instruction):
        return "empty"
    words = len(instruction.split())
    if words < cfg.min_words:
        return "too_short"
    if words > cfg.max_words:
        return "too_long"
    if _KEYWORD_RE.search(instruction):
        return "keyword"
    first = instruction.strip()[0]
    if not first.isascii() or not first.isalnum():
        return "bad_start"
    return None


class InstructionPool:
    """The instructions a proposal is compared against: duplicates and ROUGE-L."""

    def __init__(self, instructions: Iterable[str] = ()) -> None:
        self._texts: list[str] = []
        self._keys: set[str] = set()
        self._tokens: list[list[str]] = []
        for text in instructions:
            self.add(text)

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, instruction: str) -> None:
        self._texts.append(instruction)
        self._keys.add(normalize(instruction))
        self._tokens.append(_scorer()._tokenizer.tokenize(instruction))

    def max_rouge(self, instruction: str) -> tuple[float, str | None]:
        """(the highest ROUGE-L F-measure against the pool, that instruction)."""
        from rouge_score.rouge_scorer import _score_lcs

        tokens = _scorer()._tokenizer.tokenize(instruction)
        best, best_text = 0.0, None
        for other, text in zip(self._tokens, self._texts):
            f = _score_lcs(other, tokens).fmeasure
            if f > best:
                best, best_text = f, text
        return best, best_text

    def reason(self, instruction: str, cfg: FilterConfig) -> str | None:
        """`duplicate`, `rouge_overlap` or None (kept: the caller adds it)."""
        if normalize(instruction) in self._keys:
            return "duplicate"
        if self.max_rouge(instruction)[0] >= cfg.max_rouge:
            return "rouge_overlap"
        return None


def instruction_reason(instruction: str, pool: InstructionPool, cfg: FilterConfig) -> str | None:
    """Why `instruction` is dropped (a `REASONS` entry), or None if it is kept."""
    return surface_reason(instruction, cfg) or pool.reason(instruction, cfg)


def clean_instances(instances: Sequence[dict[str, str]], cfg: FilterConfig) -> list[dict[str, str]]:
    """The instances worth keeping, stripped, in order (see the module docstring)."""
    out, seen = [], set()
    for inst in instances:
        inp, outp = inst.get("input", "").strip(), inst.get("output", "").strip()
        if not outp or normalize(inp) == normalize(outp):
            continue
        if max(len(inp), len(outp)) > cfg.max_instance_chars:
            continue
        key = (normalize(inp), normalize(outp))
        if key in seen:
            continue
        seen.add(key)
        out.append({"input": inp, "output": outp})
    return out
