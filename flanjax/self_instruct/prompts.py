"""The three Self-Instruct prompts (in flanjax's own wording) and their parsers.

1. `proposal_prompt`: a numbered list of demonstration instructions (seed tasks and,
   as in the paper, a few already generated ones), ending in the next number; the
   model continues the list. `parse_proposals` reads the new items back.
2. `classification_prompt`: few-shot "is this a classification task?" over seed
   tasks with their known labels; `parse_is_classification` reads Yes / No.
3. `instance_prompt`: worked examples of other tasks, then the new task. Input-first
   for ordinary tasks ("Input: ... Output: ..."), output-first for classification
   tasks ("Label: ... Input: ..."), so the labels come out balanced rather than
   following whatever inputs the model happened to write (the paper's reason).
   `parse_instances` reads the (input, output) pairs back.

Every parser stops at the first sign of the model starting a new block ("Task:",
a blank line followed by "Task"), and never raises: text it cannot read yields
nothing, which the filters then count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

PROPOSAL_HEADER = (
    "Below is a numbered list of different things people ask a helpful text assistant "
    "to do. Every item is one self-contained instruction, and no two items ask for the "
    "same kind of work.\n\n"
)
CLASSIFICATION_HEADER = (
    "For each task, say whether it is a classification task: one whose answer is "
    "always one label out of a small, fixed set (such as yes/no, positive/negative, "
    "or a category name).\n\n"
)
INPUT_FIRST_HEADER = (
    "Here are tasks with worked examples. Each example shows an input for the task "
    "and the output a careful person would give. When a task needs no input, the "
    "input is left empty.\n\n"
)
OUTPUT_FIRST_HEADER = (
    "Here are classification tasks with worked examples. Each example names one of the "
    "task's labels first, then gives an input that belongs under that label.\n\n"
)
_ITEM_RE = re.compile(r"^\s*(\d+)\s*[.)]\s*(.*)$")
_STOP_RE = re.compile(r"\n\s*\n|\n\s*Task\s*:|^\s*Task\s*:", re.I)


def one_line(text: str) -> str:
    return " ".join(text.split())


def proposal_prompt(instructions: Sequence[str]) -> str:
    """The demonstrations as items 1..n, then "n+1." for the model to continue."""
    items = [f"{i}. {one_line(t)}" for i, t in enumerate(instructions, 1)]
    return PROPOSAL_HEADER + "\n".join(items) + f"\n{len(instructions) + 1}."


def parse_proposals(continuation: str, finished: bool) -> list[str]:
    """The instructions of a continuation of `proposal_prompt`: the rest of the first
    line, then every numbered line after it, up to a line that is not an item (or a
    blank line). The last item is dropped when the model was cut off in the middle
    of it (not `finished` and no newline after it)."""
    lines = continuation.split("\n")
    out, complete = [lines[0].strip()], finished
    for line in lines[1:]:
        match = _ITEM_RE.match(line)
        if not match:  # the list ended: every item so far had its newline
            complete = True
            break
        out.append(match.group(2).strip())
    if not complete:
        out = out[:-1]
    return [t for t in out if t]


def classification_prompt(examples: Sequence[tuple[str, bool]], instruction: str) -> str:
    """Few-shot: each (instruction, is_classification) answered, then `instruction`."""
    shots = [f"Task: {one_line(t)}\nClassification: {'Yes' if c else 'No'}" for t, c in examples]
    return (
        CLASSIFICATION_HEADER
        + "\n\n".join([*shots, f"Task: {one_line(instruction)}"])
        + ("\nClassification:")
    )


def parse_is_classification(continuation: str) -> bool:
    """True when the answer starts with "yes" (anything else reads as no)."""
    return continuation.strip().lower().startswith("yes")


def instance_prompt(
    demos: Sequence[tuple[str, Sequence[Mapping[str, str]]]],
    instruction: str,
    output_first: bool,
) -> str:
    """Worked examples of the `demos` (instruction, instances), then `instruction`
    with the first field of an example open for the model to fill."""
    header = OUTPUT_FIRST_HEADER if output_first else INPUT_FIRST_HEADER
    blocks = []
    for text, instances in demos:
        lines = [f"Task: {one_line(text)}"]
        for inst in instances:
            lines += _example_lines(inst["input"], inst["output"], output_first)
        blocks.append("\n".join(lines))
    opening = "Label:" if output_first else "Input:"
    return header + "\n\n".join([*blocks, f"Task: {one_line(instruction)}\n{opening}"])


def _example_lines(inp: str, out: str, output_first: bool) -> list[str]:
    if output_first:
        return [f"Label: {out.strip()}", f"Input: {inp.strip()}"]
    return [f"Input: {inp.strip()}", f"Output: {out.strip()}"]


def parse_instances(continuation: str, output_first: bool) -> list[dict[str, str]]:
    """The (input, output) pairs of a continuation of `instance_prompt`, in order.

    The text is cut at the next task; then split at each "Input:" / "Output:"
    (input-first) or "Label:" / "Input:" (output-first) field. A pair missing its
    second field is left out (the model was cut off or wandered)."""
    first, second = ("Label", "Input") if output_first else ("Input", "Output")
    text = f"{first}:" + _STOP_RE.split(continuation, maxsplit=1)[0]
    fields = re.split(rf"(?:^|\n)\s*({first}|{second})\s*:", text)
    # fields: ["", name, value, name, value, ...]
    pairs, current = [], {}
    for name, value in zip(fields[1::2], fields[2::2]):
        if name == first:
            current = {first: value.strip()}
        elif first in current and second not in current:
            current[second] = value.strip()
            pairs.append(current)
    key_in, key_out = ("Input", "Label") if output_first else ("Input", "Output")
    return [{"input": p[key_in], "output": p[key_out]} for p in pairs]
