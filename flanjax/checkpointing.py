"""Orbax checkpoints in MODEL_DIR/checkpoints/<step>/.

Each checkpoint holds four items: `params` and `opt_state` (arrays, restorable
onto any mesh by passing abstract arrays with the target shardings), `data` (the
input pipeline's position, JSON) and `meta` (step, model family and config,
JSON). The evaluator restores `params` and `meta` only. Orbax writes a step
under a temporary name and renames it when complete, so a partial save is never
listed as a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import orbax.checkpoint as ocp

from flanjax.models import DecoderConfig, ModelConfig, T5Config

_FAMILIES: dict[str, type] = {"t5": T5Config, "llama": DecoderConfig}


def model_config_to_json(cfg: ModelConfig) -> dict[str, Any]:
    family = {v: k for k, v in _FAMILIES.items()}[type(cfg)]
    return {"family": family, "config": dataclasses.asdict(cfg)}


def model_config_from_json(d: dict[str, Any]) -> ModelConfig:
    """The config saved in a checkpoint's meta; fields added since take their
    defaults, and the old `remat: bool` becomes `remat_policy`."""
    cls = _FAMILIES[d["family"]]
    saved = dict(d["config"])
    if saved.pop("remat", False) and "remat_policy" not in saved:
        saved["remat_policy"] = "full"
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in saved.items() if k in names})


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    save_every: int = 1000
    keep: int = 3  # newest checkpoints kept; 0 keeps all
    keep_every: int = 0  # also keep every checkpoint at a multiple of this step
    save_initial: bool = True  # a step-0 checkpoint, the baseline for evaluation
    async_save: bool = True


class Checkpointer:
    """A thin layer over `ocp.CheckpointManager` with flanjax's items."""

    def __init__(self, model_dir: str, cfg: CheckpointConfig = CheckpointConfig(), read_only=False):
        self.directory = os.path.join(os.path.abspath(model_dir), "checkpoints")
        policies = [ocp.checkpoint_managers.LatestN(cfg.keep or None)]
        if cfg.keep_every:
            policies.append(ocp.checkpoint_managers.EveryNSteps(cfg.keep_every))
        if cfg.save_initial:  # the step-0 baseline is never deleted
            policies.append(ocp.checkpoint_managers.CustomSteps([0]))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=cfg.async_save,
            create=not read_only,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("params", "opt_state", "data", "meta")
        )

    def all_steps(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(
        self, step: int, state: Any, data_state: dict, meta: dict, force: bool = False
    ) -> bool:
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(state.params),
            opt_state=ocp.args.StandardSave(state.opt_state),
            data=ocp.args.JsonSave(data_state),
            meta=ocp.args.JsonSave({**meta, "step": int(step)}),
        )
        return self.manager.save(step, args=args, force=force)

    def read_meta(self, step: int) -> dict:
        path = os.path.join(self.directory, str(step), "meta", "metadata")
        with open(path) as f:
            return json.load(f)

    def restore(self, step: int, abstract: Any) -> tuple[Any, dict, dict]:
        """(params, opt_state) onto `abstract`'s shardings, plus data state and meta."""
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract.params),
                opt_state=ocp.args.StandardRestore(abstract.opt_state),
                data=ocp.args.JsonRestore(),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return (out["params"], out["opt_state"]), out["data"], out["meta"]

    def restore_params(self, step: int, abstract_params: Any) -> Any:
        out = self.manager.restore(
            step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params))
        )
        return out["params"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


# Fields that change how a model computes, not its parameters: a run may change them
# when it resumes or starts from a pretrained checkpoint.
RUNTIME_FIELDS = frozenset({"dtype", "dropout_rate", "remat_policy"})


def check_same_model(meta: dict, cfg: ModelConfig, directory: str) -> None:
    """Refuses a checkpoint written by a model of a different architecture.

    Compute-only fields (`RUNTIME_FIELDS`: compute dtype, dropout, remat) may
    differ; fields missing from an older checkpoint count as their defaults.
    """
    saved = meta.get("model")
    if not saved:
        return
    if saved["family"] != model_config_to_json(cfg)["family"]:
        raise ValueError(f"{directory} holds a {saved['family']} model, not a {type(cfg).__name__}")
    saved_cfg = dataclasses.asdict(model_config_from_json(saved))
    diff = {
        k: (saved_cfg.get(k), v)
        for k, v in dataclasses.asdict(cfg).items()
        if k not in RUNTIME_FIELDS and saved_cfg.get(k) != v
    }
    if diff:
        raise ValueError(
            f"{directory} holds checkpoints of a different model config "
            f"(field: (saved, requested)): {diff}. Use a new MODEL_DIR, or the saved config."
        )


def locate_checkpoint(path: str) -> tuple[str, int]:
    """(MODEL_DIR, step) for an initial checkpoint path: a MODEL_DIR (its latest
    step; e.g. one written by `flanjax convert --from hf`), or one step's folder,
    MODEL_DIR/checkpoints/<step>."""
    path = os.path.abspath(path.rstrip("/"))
    parent, name = os.path.split(path)
    if name.isdigit() and os.path.basename(parent) == "checkpoints":
        return os.path.dirname(parent), int(name)
    ckpt = Checkpointer(path, read_only=True)
    step = ckpt.latest_step()
    ckpt.close()
    if step is None:
        raise FileNotFoundError(
            f"initial checkpoint {path}: no checkpoints in {os.path.join(path, 'checkpoints')}"
        )
    return path, step
