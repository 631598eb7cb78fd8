"""Gin at the edges: binds the frozen config dataclasses, parses T5X-style flags.

The libraries take plain dataclasses; only entry points touch gin. In .gin files
and `--gin.` flags the configurables are the dataclasses by class name
(`TrainConfig.train_steps = 100`, `T5Config.d_model = 512`), and runs follow
T5X's macro names (MODEL_DIR, MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS,
TRAIN_STEPS, BATCH_SIZE, INITIAL_CHECKPOINT_PATH).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import pathlib
from collections.abc import Sequence

import gin

from flanjax import checkpointing, distributed, optimizers, partitioning, trainer
from flanjax.data import pipeline
from flanjax.evaluation import evaluator
from flanjax.models import llama, t5
from flanjax.train_step import LossConfig

CONFIGURABLES = (
    trainer.TrainConfig,
    pipeline.DataConfig,
    t5.T5Config,
    llama.DecoderConfig,
    optimizers.OptimizerConfig,
    partitioning.MeshConfig,
    checkpointing.CheckpointConfig,
    LossConfig,
    distributed.DistributedConfig,
    evaluator.EvalConfig,
)


def gin_configs_dir() -> pathlib.Path:
    """The shipped gin_configs/ (installed as the package flanjax.gin_configs)."""
    from flanjax import gin_configs

    return pathlib.Path(gin_configs.__file__).parent


@functools.cache
def register_configurables() -> dict[type, object]:
    """Each config dataclass as a gin configurable of the same name."""
    return {cls: gin.external_configurable(cls, module="flanjax") for cls in CONFIGURABLES}


def add_gin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument(
        "--gin_search_paths",
        default="",
        help="comma-separated folders searched for gin files and their includes",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")


class _QuietSearch(logging.Filter):
    """Drops gin's per-search-path "Path not found" lines; a file found nowhere
    still raises an error naming it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Path not found")


def parse(gin_files: Sequence[str], bindings: Sequence[str], search_paths: str = "") -> None:
    """Parses gin files and `NAME=VALUE` bindings; errors name the file or binding.

    Files and includes are looked up in `search_paths`, then the current folder,
    then the shipped gin_configs/.
    """
    register_configurables()
    gin.clear_config()
    for path in [p for p in search_paths.split(",") if p] + [".", str(gin_configs_dir())]:
        gin.add_config_file_search_path(os.path.abspath(path))
    quiet = _QuietSearch()
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(list(gin_files), list(bindings), finalize_config=False)
    except (ValueError, OSError, SyntaxError) as e:
        raise ValueError(f"gin: {e}") from e
    finally:
        logging.getLogger().removeFilter(quiet)


def _missing(obj: object, path: str) -> list[str]:
    """Dotted paths of fields left at `%gin.REQUIRED` inside a config dataclass."""
    if obj is gin.REQUIRED:
        return [path]
    if dataclasses.is_dataclass(obj):
        return [
            m
            for f in dataclasses.fields(obj)
            for m in _missing(getattr(obj, f.name), f"{path}.{f.name}")
        ]
    return []


def build(cls: type):
    """An instance of config class `cls` from the parsed gin bindings.

    A value left at `%gin.REQUIRED` (T5X's way of marking what a run must set) is
    refused with the field and the macro names that set it.
    """
    configurable = register_configurables()[cls]
    hint = "Set it in a .gin file or with --gin.NAME=VALUE (see gin_configs/runs/finetune.gin)."
    try:
        cfg = configurable()
    except TypeError as e:
        raise ValueError(f"gin: cannot build {cls.__name__}: {e}. {hint}") from e
    missing = _missing(cfg, cls.__name__)
    if missing:
        macros = [m for m in _REQUIRED_MACROS if _macro_is_required(m)]
        raise ValueError(
            f"gin: required value(s) not provided: {', '.join(missing)}"
            + (f" (macros {', '.join(macros)})" if macros else "")
            + f". {hint}"
        )
    return cfg


def _macro_is_required(name: str) -> bool:
    try:
        return str(gin.query_parameter(f"%{name}")) == "%gin.REQUIRED"
    except ValueError:  # the macro is not defined at all
        return False


_REQUIRED_MACROS = (
    "MODEL_DIR", "MIXTURE_OR_TASK_NAME", "TASK_FEATURE_LENGTHS", "TRAIN_STEPS",
    "INITIAL_CHECKPOINT_PATH", "MODEL",
)  # fmt: skip


@gin.configurable("flanjax_model")
def _model_holder(model=None):
    return model


def build_model():
    """The model config bound to the `MODEL` macro by a models/*.gin file."""
    try:
        ref = gin.query_parameter("%MODEL")
    except ValueError as e:
        raise ValueError("gin: no MODEL bound; include a models/*.gin file") from e
    gin.bind_parameter("flanjax_model.model", ref)
    return _model_holder()


def operative_config() -> str:
    return gin.operative_config_str()


def save_config(model_dir: str) -> str:
    """Writes the parsed config to MODEL_DIR/config.gin (T5X keeps the same record)."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "config.gin")
    with open(path, "w") as f:
        f.write(gin.config_str())
    return path
