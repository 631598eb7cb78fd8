"""The settings of a Self-Instruct run, the generator it prompts, and its state."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any, Protocol

from flanjax.self_instruct import filtering


class Generator(Protocol):
    """What the pipeline needs of a model (generator.ModelGenerator, or a test double)."""

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
    ) -> list[Any]:  # objects with `.text` (str) and `.finished` (bool)
        ...


@dataclasses.dataclass(frozen=True)
class SelfInstructConfig:
    """The settings of a run (all but `num_proposals` must match on resume)."""

    num_proposals: int = 50  # the budget: proposals over all rounds
    seed: int = 0
    prompts_per_round: int = 4
    num_demos: int = 8  # instructions listed in a proposal prompt
    num_machine_demos: int = 2  # of which at most this many already generated
    num_classification_shots: int = 8
    num_instance_demos: int = 2
    temperature: float = 0.7
    top_p: float = 0.95
    proposal_tokens: int = 96
    instance_tokens: int = 128
    max_demo_chars: int = 300  # seed instances longer than this are not shown
    filters: filtering.FilterConfig = filtering.FilterConfig()

    def __post_init__(self) -> None:
        if self.num_proposals < 1 or self.prompts_per_round < 1:
            raise ValueError("num_proposals and prompts_per_round must be at least 1")
        if not 0 <= self.num_machine_demos <= self.num_demos:
            raise ValueError(f"num_machine_demos {self.num_machine_demos}: 0..num_demos")

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to resume (config.json)."""
        d = dataclasses.asdict(self)
        d.pop("num_proposals")
        return d


@dataclasses.dataclass
class State:
    """The run so far, rebuilt from the log."""

    records: list[dict[str, Any]]
    pool: filtering.InstructionPool
    kept: list[dict[str, Any]]

    @property
    def next_round(self) -> int:
        return self.records[-1]["round"] + 1 if self.records else 0


def round_rng(cfg: SelfInstructConfig, round_index: int, stage: str) -> random.Random:
    """The random state of one stage of one round: (seed, round, stage) only."""
    return random.Random(f"self_instruct/{cfg.seed}/{round_index}/{stage}")


def round_seed(cfg: SelfInstructConfig, round_index: int, stage: str) -> int:
    """The generator's sampling seed for one stage of one round."""
    return round_rng(cfg, round_index, stage + "/key").randrange(2**31)
