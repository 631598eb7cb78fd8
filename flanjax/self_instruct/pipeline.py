"""The Self-Instruct loop: propose, filter, classify, make instances, keep; resumable.

A run works in rounds. Round r (random state seeded by (seed, r) only):

1. `prompts_per_round` proposal prompts, each listing `num_demos` instructions:
   seed instructions, and (the paper's mix) up to `num_machine_demos` already kept
   ones; the model continues each list (sampled, `temperature`/`top_p`). Every
   parsed item is one proposal; a completion with no item counts as one `empty`
   proposal, so every round records something and a model that writes nothing
   still uses up the budget.
2. Each proposal meets the instruction filters (filtering.py) against the pool
   (the seed instructions and every proposal of earlier rounds or earlier in this
   one that passed them).
3. The survivors are classified (few-shot over seed tasks, greedy), then get
   instances: output-first for classification tasks, input-first otherwise
   (sampled); a proposal with no usable instance is dropped as `no_instances`.

Files in OUT_DIR:
* `proposals.jsonl`: every proposal of every round, with its fate (`reason`: null
  when kept), written once per round in one append. This log is the run's state.
* `tasks.jsonl`: the kept tasks (task_file.py's format), appended per round.
* `config.json`: the settings that decide the output; a rerun must match them
  (except `num_proposals`, the budget).
* `report.json`: proposed, kept and dropped per reason, over the whole log.

Resuming: the log is read back, a round whose records are not all there (a kill
mid-write) is cut off, the pool and counts are rebuilt from it, `tasks.jsonl` is
brought in line with the log's kept tasks, and the run goes on at the next round.
Because a round depends only on the seed, its index and the log before it, a run
killed and rerun writes the same files as one run with the same budget. (A larger
budget on a rerun continues from the next round; the last round of the shorter run,
cut to its budget, stays as it was.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flanjax.self_instruct import filtering, rounds
from flanjax.self_instruct.config import Generator, SelfInstructConfig, State
from flanjax.self_instruct.task_file import check_task

LOG, TASKS, CONFIG, REPORT = "proposals.jsonl", "tasks.jsonl", "config.json", "report.json"


def read_seed_tasks(path: str) -> list[dict[str, Any]]:
    """The seed tasks (the paper's 175, in its file format), checked."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such seed task file")
    tasks = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                tasks.append(check_task(json.loads(line), f"{path}:{n}"))
    if not tasks:
        raise ValueError(f"{path}: no seed tasks")
    return tasks


def _task_of(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": rec["task_id"],
        "instruction": rec["instruction"],
        "is_classification": rec["is_classification"],
        "instances": rec["instances"],
        "round": rec["round"],
        "proposal": rec["proposal"],
    }


def _complete_rounds(path: str) -> tuple[list[dict[str, Any]], int]:
    """(records of the complete rounds of the log, their byte length)."""
    if not os.path.exists(path):
        return [], 0
    records, good, offset, current = [], 0, 0, []
    with open(path, "rb") as f:
        for raw in f:
            offset += len(raw)
            if not raw.endswith(b"\n"):
                break  # a half-written line
            rec = json.loads(raw)
            current.append(rec)
            if len(current) == rec["round_size"]:
                records += current
                good, current = offset, []
    return records, good


def load_state(out_dir: str, seed_tasks: Sequence[Mapping[str, Any]]) -> State:
    """The state of OUT_DIR's log (cut to complete rounds), with tasks.jsonl matched."""
    log_path = os.path.join(out_dir, LOG)
    records, good = _complete_rounds(log_path)
    if os.path.exists(log_path) and os.path.getsize(log_path) != good:
        with open(log_path, "r+b") as f:
            f.truncate(good)
    pool = filtering.InstructionPool(t["instruction"] for t in seed_tasks)
    for rec in records:
        if rec["reason"] in (None, "no_instances"):
            pool.add(rec["instruction"])
    kept = [_task_of(r) for r in records if r["reason"] is None]
    _match_tasks_file(os.path.join(out_dir, TASKS), kept)
    return State(records, pool, kept)


def _match_tasks_file(path: str, kept: Sequence[Mapping[str, Any]]) -> None:
    """tasks.jsonl holds exactly `kept` (rewritten if a kill left it behind the log)."""
    want = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in kept)
    have = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            have = f.read()
    if have != want and (have is not None or kept):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(want)
        os.replace(path + ".tmp", path)


def _check_config(out_dir: str, cfg: SelfInstructConfig, seed_path: str) -> None:
    path = os.path.join(out_dir, CONFIG)
    identity = {**cfg.identity(), "seed_tasks": os.path.abspath(seed_path)}
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        if diff:
            raise ValueError(
                f"{path}: this OUT_DIR was made with other settings ({', '.join(diff)}); "
                "use a new OUT_DIR or the same settings to resume"
            )
        return
    with open(path, "w") as f:
        json.dump(identity, f, indent=1, sort_keys=True)


def report_of(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """proposed, kept, dropped per reason (every reason listed), instances."""
    dropped = {r: 0 for r in filtering.REASONS}
    for rec in records:
        if rec["reason"] is not None:
            dropped[rec["reason"]] += 1
    kept = [r for r in records if r["reason"] is None]
    return {
        "proposed": len(records),
        "kept": len(kept),
        "dropped": dropped,
        "kept_classification": sum(r["is_classification"] for r in kept),
        "instances": sum(len(r["instances"]) for r in kept),
        "rounds": records[-1]["round"] + 1 if records else 0,
    }


def format_report(report: Mapping[str, Any]) -> str:
    dropped = ", ".join(f"{reason} {n}" for reason, n in report["dropped"].items() if n)
    return (
        f"proposed {report['proposed']}, kept {report['kept']} "
        f"({report['kept_classification']} classification, {report['instances']} instances), "
        f"{report['rounds']} rounds\ndropped: {dropped or 'none'}"
    )


def run(
    generator: Generator,
    seed_path: str,
    out_dir: str,
    cfg: SelfInstructConfig,
    max_rounds: int | None = None,
    on_round: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Runs (or resumes) until the budget is spent (or `max_rounds` more rounds ran);
    returns the report, also written to OUT_DIR/report.json. `on_round` gets a line
    after each round."""
    seed_tasks = read_seed_tasks(seed_path)
    os.makedirs(out_dir, exist_ok=True)
    _check_config(out_dir, cfg, seed_path)
    state = load_state(out_dir, seed_tasks)
    done = 0
    while len(state.records) < cfg.num_proposals and (max_rounds is None or done < max_rounds):
        new = rounds.run_round(generator, seed_tasks, state, cfg)
        _append(os.path.join(out_dir, LOG), new)
        kept = [_task_of(r) for r in new if r["reason"] is None]
        _append(os.path.join(out_dir, TASKS), kept)
        state.records += new
        state.kept += kept
        done += 1
        if on_round is not None:
            on_round(
                f"round {new[0]['round']}: {len(new)} proposed, {len(kept)} kept "
                f"(total {len(state.records)}/{cfg.num_proposals} proposed, "
                f"{len(state.kept)} kept)"
            )
    report = report_of(state.records)
    with open(os.path.join(out_dir, REPORT), "w") as f:
        json.dump(report, f, indent=1)
    return report


def _append(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Appends rows as JSON lines in one write, flushed to disk."""
    if not rows:
        return
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
