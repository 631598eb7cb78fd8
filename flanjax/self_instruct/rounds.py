"""One round of the Self-Instruct loop (pipeline.py describes the loop and its files).

`run_round` returns the round's log records, one per proposal, in proposal order:

    {"round": 2, "proposal": 17, "round_size": 9, "instruction": "...",
     "reason": null | "<filtering.REASONS entry>", "max_rouge": 0.42,
     "most_similar": "...", "is_classification": true | false | null,
     "instances": [...], "task_id": "si_00004" | null}

and adds every proposal that passed the instruction filters to `state.pool`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flanjax.self_instruct import filtering, prompts
from flanjax.self_instruct.config import (
    Generator,
    SelfInstructConfig,
    State,
    round_rng,
    round_seed,
)

CLASSIFY_TOKENS = 3


def _short_instances(task: Mapping[str, Any], max_chars: int) -> list[dict[str, str]]:
    return [i for i in task["instances"] if len(i["input"]) + len(i["output"]) <= max_chars]


def classification_shots(seed_tasks: Sequence[Mapping[str, Any]], k: int) -> list[tuple[str, bool]]:
    """The k/2 shortest classification and k - k/2 shortest other seed instructions,
    alternating No and Yes (a fixed set: the same shots for every proposal)."""
    by_length = sorted(seed_tasks, key=lambda t: len(t["instruction"]))
    yes = [t["instruction"] for t in by_length if t["is_classification"]][: k // 2]
    no = [t["instruction"] for t in by_length if not t["is_classification"]][: k - k // 2]
    shots: list[tuple[str, bool]] = []
    for i in range(max(len(yes), len(no))):
        shots += [(t, False) for t in no[i : i + 1]] + [(t, True) for t in yes[i : i + 1]]
    return shots


def _proposal_prompts(
    seed_tasks: Sequence[Mapping[str, Any]], state: State, cfg: SelfInstructConfig, r: int
) -> list[str]:
    rng = round_rng(cfg, r, "demos")
    seeds = [t["instruction"] for t in seed_tasks]
    machine = [t["instruction"] for t in state.kept]
    out = []
    for _ in range(cfg.prompts_per_round):
        n_machine = min(cfg.num_machine_demos, len(machine))
        n_seed = min(cfg.num_demos - n_machine, len(seeds))
        demos = rng.sample(seeds, n_seed) + rng.sample(machine, n_machine)
        out.append(prompts.proposal_prompt(demos))
    return out


def _instance_prompts(
    seed_tasks: Sequence[Mapping[str, Any]],
    survivors: Sequence[Mapping[str, Any]],
    cfg: SelfInstructConfig,
    r: int,
) -> list[str]:
    rng = round_rng(cfg, r, "instances")
    demo_pool = {
        cls: [
            (t["instruction"], inst)
            for t in seed_tasks
            if t["is_classification"] == cls
            for inst in [_short_instances(t, cfg.max_demo_chars)]
            if inst
        ]
        for cls in (False, True)
    }
    out = []
    for rec in survivors:
        cls = rec["is_classification"]
        demos = rng.sample(demo_pool[cls], min(cfg.num_instance_demos, len(demo_pool[cls])))
        out.append(prompts.instance_prompt(demos, rec["instruction"], output_first=cls))
    return out


def _propose(
    generator: Generator, seed_tasks, state: State, cfg: SelfInstructConfig, r: int
) -> list[str]:
    completions = generator.generate(
        _proposal_prompts(seed_tasks, state, cfg, r),
        max_new_tokens=cfg.proposal_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=round_seed(cfg, r, "propose"),
    )
    candidates = []
    for c in completions:
        candidates += prompts.parse_proposals(c.text, c.finished) or [""]
    return candidates[: cfg.num_proposals - len(state.records)]


def _screen(text: str, state: State, cfg: SelfInstructConfig, r: int, n: int) -> dict:
    """The log record of proposal `text` after the instruction filters."""
    reason = filtering.surface_reason(text, cfg.filters)
    score, similar = state.pool.max_rouge(text) if reason is None else (0.0, None)
    reason = reason or state.pool.reason(text, cfg.filters)
    if reason is None:
        state.pool.add(text)
    return {
        "round": r,
        "proposal": len(state.records) + n,
        "instruction": text,
        "reason": reason,
        "max_rouge": round(score, 4),
        "most_similar": similar,
        "is_classification": None,
        "instances": [],
        "task_id": None,
    }


def run_round(
    generator: Generator,
    seed_tasks: Sequence[Mapping[str, Any]],
    state: State,
    cfg: SelfInstructConfig,
) -> list[dict[str, Any]]:
    """Round `state.next_round`: its records (see the module docstring)."""
    r = state.next_round
    candidates = _propose(generator, seed_tasks, state, cfg, r)
    records = [_screen(text, state, cfg, r, n) for n, text in enumerate(candidates)]
    survivors = [rec for rec in records if rec["reason"] is None]
    if survivors:
        shots = classification_shots(seed_tasks, cfg.num_classification_shots)
        answers = generator.generate(
            [prompts.classification_prompt(shots, rec["instruction"]) for rec in survivors],
            max_new_tokens=CLASSIFY_TOKENS,
            temperature=0.0,
            top_p=1.0,
            seed=0,
        )
        for rec, answer in zip(survivors, answers):
            rec["is_classification"] = prompts.parse_is_classification(answer.text)
        made = generator.generate(
            _instance_prompts(seed_tasks, survivors, cfg, r),
            max_new_tokens=cfg.instance_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=round_seed(cfg, r, "instances"),
        )
        kept = len(state.kept)
        for rec, completion in zip(survivors, made):
            parsed = prompts.parse_instances(completion.text, rec["is_classification"])
            rec["instances"] = filtering.clean_instances(parsed, cfg.filters)
            if not rec["instances"]:
                rec["reason"] = "no_instances"
                continue
            rec["task_id"] = f"si_{kept:05d}"
            kept += 1
    for rec in records:
        rec["round_size"] = len(records)
    return records
