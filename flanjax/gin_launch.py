"""Gin at the edges: binds the frozen config dataclasses, parses T5X-style flags.

The libraries take plain dataclasses; only entry points touch gin. In .gin files
and `--gin.` flags the configurables are the dataclasses by class name
(`TrainConfig.train_steps = 100`, `T5Config.d_model = 512`), and runs follow
T5X's macro names (MODEL_DIR, MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS,
TRAIN_STEPS, BATCH_SIZE, INITIAL_CHECKPOINT_PATH).

flanjax finds gin files and their `include`s itself (`resolve`: the
`--gin_search_paths`, the current folder, the shipped gin_configs/) and hands gin
absolute paths: gin's own lookup also asks Python's import system, which breaks on
any `runs/` or `models/` folder that happens to be on sys.path. Errors name the
file, line and text (or the `--gin.` flag); run macros of the wrong type are refused
with the form they need (`check_macros`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import os
import pathlib
import re
import tokenize
from collections.abc import Sequence

import gin

from flanjax import (
    checkpointing,
    distributed,
    module_import,
    optimizers,
    partitioning,
    trainer,
)
from flanjax.data import pipeline
from flanjax.evaluation import evaluator
from flanjax.models import llama, lora, t5
from flanjax.train_step import LossConfig

CONFIGURABLES = (
    trainer.TrainConfig,
    pipeline.DataConfig,
    t5.T5Config,
    llama.DecoderConfig,
    lora.LoraConfig,
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


def search_folders(user: str = "") -> list[str]:
    """Where gin files and their includes are looked up, in order: the folders of
    `--gin_search_paths`, the current folder, the shipped gin_configs/."""
    folders = [p for p in user.split(",") if p] + [".", str(gin_configs_dir())]
    return [os.path.abspath(p) for p in folders]


def resolve(name: str, folders: Sequence[str]) -> str:
    """The absolute path of gin file `name`: itself when absolute, else the first
    `folder/name` that is a file. Never asks Python's import system (a `runs/` or
    `models/` folder on sys.path cannot shadow the shipped files)."""
    if os.path.isabs(name):
        if os.path.isfile(name):
            return name
        raise FileNotFoundError(f"gin file {name} not found")
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"gin file {name!r} not found in {', '.join(folders)}")


class _GinFile:
    """An open gin file that names itself, its line and the offending text when the
    tokenizer stops on it (gin's own errors carry the location already)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = open(path)  # noqa: SIM115  (closed in __exit__)

    def __enter__(self):
        return self.file

    def __exit__(self, kind, error, tb) -> None:
        self.file.close()
        if isinstance(error, tokenize.TokenError):
            with open(self.path) as f:
                line, text = _unclosed(f.read())
            raise GinSyntaxError(
                f"{self.path}:{line}: unclosed bracket or string (gin: {error.args[0]}): "
                f"{text.strip()}"
            ) from error


class GinSyntaxError(ValueError):
    """A gin file or binding that does not parse; the message names where."""


def _unclosed(text: str) -> tuple[int, str]:
    """(line number, line) where the outermost bracket left open at the end starts."""
    lines, stack = text.splitlines(), []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                stack.append(tok.start[0])
            elif tok.type == tokenize.OP and tok.string in ")]}" and stack:
                stack.pop()
    except tokenize.TokenError:
        pass
    line = stack[0] if stack else len(lines)
    return line, lines[line - 1] if 0 < line <= len(lines) else ""


@contextlib.contextmanager
def _reading_from(folders: Sequence[str]):
    """While parsing, gin opens files (and includes) only through `resolve`: its own
    readers also try `importlib` (gin.resource_reader), which fails on a namespace
    package such as a `runs/` folder on sys.path. Gin 0.5 is pinned in setup.py."""
    from gin import config as gin_config

    readers, prefixes = list(gin_config._FILE_READERS), list(gin_config._LOCATION_PREFIXES)
    gin_config._FILE_READERS[:] = [(lambda name: _GinFile(resolve(name, folders)), bool)]
    gin_config._LOCATION_PREFIXES[:] = [""]
    try:
        yield
    finally:
        gin_config._FILE_READERS[:] = readers
        gin_config._LOCATION_PREFIXES[:] = prefixes


def _one_line(message: str, binding: str | None = None) -> str:
    """Gin's multi-line location suffix as `(file F, line N: text)`, or the flag."""
    match = re.search(r"\n\s+In (?:file \"(.*)\",|bindings string) line (\d+)\n\s+(.*)", message)
    if not match:
        return message.strip()
    head = message[: match.start()].strip()
    if binding is not None:
        return f"{head} (in --gin.{binding})"
    return f"{head} (in {match.group(1)}, line {match.group(2)}: {match.group(3).strip()})"


def _describe(error: Exception, binding: str | None = None) -> str:
    if isinstance(error, SyntaxError) and not isinstance(error, GinSyntaxError):
        where = f"--gin.{binding}" if binding is not None else f"{error.filename}:{error.lineno}"
        text = binding if binding is not None else (error.text or "").strip()
        return f"{where}: {error.msg.rstrip('.')}: {text}"
    if isinstance(error, tokenize.TokenError) and binding is not None:
        return f"--gin.{binding}: unclosed bracket or string (gin: {error.args[0]})"
    return _one_line(str(error), binding)


def parse(gin_files: Sequence[str], bindings: Sequence[str], search_paths: str = "") -> None:
    """Parses gin files and `NAME=VALUE` bindings; errors name the file and line, or
    the binding. Files and includes are looked up by `resolve` in `search_folders()`.
    Then checks the run macros' types and imports `MIXTURE_OR_TASK_MODULE`.
    """
    register_configurables()
    gin.clear_config()
    folders = search_folders(search_paths)
    with _reading_from(folders):
        for name in gin_files:
            try:
                gin.parse_config_file(resolve(name, folders))
            except (ValueError, OSError, SyntaxError, tokenize.TokenError) as e:
                raise ValueError(f"gin: {_describe(e)}") from e
    for binding in bindings:  # one at a time: an error names its flag
        try:
            gin.parse_config(binding)
        except (ValueError, OSError, SyntaxError, tokenize.TokenError) as e:
            raise ValueError(f"gin: {_describe(e, binding)}") from e
    check_macros()
    module_import.import_modules(macro_modules())


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# Run macros whose wrong type would otherwise fail deep inside the pipeline or the
# trainer: (check, the expected form).
MACRO_FORMS = {
    "TASK_FEATURE_LENGTHS": (
        lambda v: (
            isinstance(v, dict)
            and bool(v)
            and all(isinstance(k, str) and _is_int(n) and n > 0 for k, n in v.items())
        ),
        "a dict of feature name to a positive int, e.g. {'inputs': 512, 'targets': 128}",
    ),
    "BATCH_SIZE": (lambda v: _is_int(v) and v > 0, "a positive int, e.g. 128"),
    "EVAL_BATCH_SIZE": (lambda v: _is_int(v) and v > 0, "a positive int, e.g. 32"),
    "TRAIN_STEPS": (lambda v: _is_int(v) and v >= 0, "a non-negative int, e.g. 2000"),
    "MICROBATCHES": (lambda v: _is_int(v) and v > 0, "a positive int, e.g. 1"),
    "LEARNING_RATE": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
        "a positive number, e.g. 1e-3",
    ),
    "MODEL_DIR": (lambda v: isinstance(v, str) and bool(v), "a quoted path, e.g. '/tmp/run'"),
    "MIXTURE_OR_TASK_NAME": (
        lambda v: isinstance(v, str) and bool(v),
        "a quoted task or mixture name, e.g. 'builtin.train_without_comparison'",
    ),
    "MIXTURE_OR_TASK_MODULE": (
        lambda v: (
            v is None
            or isinstance(v, str)
            or (isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v))
        ),
        "a quoted module name or a list of them, e.g. 'my_tasks' or ['a.tasks', 'b']",
    ),
}


def macro_value(name: str, default: object = None) -> object:
    """The plain value bound to macro `name`; `default` when it is unbound, required,
    or a reference (`%OTHER`, `@fn()`) that only gin resolves."""
    try:
        value = gin.query_parameter(f"%{name}")
    except ValueError:
        return default
    return default if isinstance(value, gin.config.ConfigurableReference) else value


def check_macros() -> None:
    """Refuses a run macro of the wrong type, naming the macro, the value and the
    form it needs (before a pipeline or a step fails on it)."""
    for name, (ok, form) in MACRO_FORMS.items():
        try:
            value = gin.query_parameter(f"%{name}")
        except ValueError:  # not bound at all
            continue
        if isinstance(value, gin.config.ConfigurableReference) or ok(value):
            continue
        raise ValueError(f"gin: {name} = {value!r} ({type(value).__name__}): expected {form}")


def macro_modules() -> list[str]:
    """The modules named by the MIXTURE_OR_TASK_MODULE macro (T5X's convention)."""
    value = macro_value("MIXTURE_OR_TASK_MODULE")
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


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
        macros = [m for m in _REQUIRED_MACROS if macro_is_required(m)]
        raise ValueError(
            f"gin: required value(s) not provided: {', '.join(missing)}"
            + (f" (macros {', '.join(macros)})" if macros else "")
            + f". {hint}"
        )
    return cfg


def macro_is_required(name: str) -> bool:
    """Whether gin macro `name` is bound to `%gin.REQUIRED` (False when it is not defined)."""
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


def build_train_config() -> trainer.TrainConfig:
    """The TrainConfig of the parsed gin; without a models/*.gin, its model is None (the
    checkpoint's, resolved by run_setup.prepare) with the family's bindings as overrides."""
    from_checkpoint = bind_model_from_checkpoint()
    cfg = build(trainer.TrainConfig)
    return with_model_overrides(cfg) if from_checkpoint else cfg


def bind_model_from_checkpoint() -> bool:
    """No models/*.gin given (no MODEL macro): the run takes the architecture of its
    checkpoint (run_setup.prepare); MODEL is bound to None for the TrainConfig."""
    try:
        gin.query_parameter("%MODEL")
        return False
    except ValueError:
        with gin.unlock_config():
            gin.parse_config("MODEL = None")
        return True


def with_model_overrides(cfg):
    """`--gin.DecoderConfig.attention="'prefix'"` and the like, bound without a model
    file, become TrainConfig.model_overrides for the checkpoint's config class."""
    from flanjax import run_setup

    source, _ = run_setup.source_checkpoint(cfg)
    if source is None:
        return cfg  # prepare() says what is missing
    model, _, _ = checkpointing.read_model_config(source)
    overrides = {}
    for field in dataclasses.fields(model):
        try:
            overrides[field.name] = gin.query_parameter(f"{type(model).__name__}.{field.name}")
        except ValueError:
            continue
    return dataclasses.replace(cfg, model_overrides={**cfg.model_overrides, **overrides})
