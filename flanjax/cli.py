"""The `flanjax` command line. Each subcommand lives in `flanjax/commands/<name>.py`
and exposes `register(subparsers)`; the logic lives in the libraries they call.

Gin flags follow T5X: `--gin_file=F` (repeatable), `--gin.NAME=VALUE` (repeatable),
`--gin_search_paths=DIR[,DIR]`. Every subcommand also takes `--module_import=NAME`
(repeatable: a module or package of your own tasks, imported before tasks are
resolved) and `--verbose` (the libraries' own logs; FLANJAX_VERBOSE=1 does the same).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = (
    "train", "preflight", "evaluate", "tasks", "convert", "bench", "compile_check", "score",
    "generate", "self_instruct", "cache",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flanjax", description="FLAN-style instruction tuning in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"flanjax.commands.{name}").register(sub)
    for p in _leaves(parser):
        _add_common_flags(p)
    return parser


def _leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run a command (subcommands of subcommands included)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for a in subs for p in dict.fromkeys(a.choices.values()) for leaf in _leaves(p)]


def _add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--module_import",
        action="append",
        default=[],
        metavar="NAME",
        help="import this module or package (from the current folder or PYTHONPATH) "
        "before tasks are resolved, e.g. one that registers your tasks (repeatable)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show the libraries' logs (TensorFlow, absl, libtpu, CUDA); or FLANJAX_VERBOSE=1",
    )


def main(argv: list[str] | None = None) -> int:
    from flanjax import host_memory, quiet, xla_flags

    if argv is None:  # run as a program, not called from Python
        host_memory.ensure()  # may re-execute this process, so first thing
    argv = sys.argv[1:] if argv is None else list(argv)
    xla_flags.apply()  # before any backend exists
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet.setup(quiet.verbose_requested(argv))  # before jax or TensorFlow is imported
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    gin_overrides = [a for a in unknown if a.startswith("--gin.")]
    rest = [a for a in unknown if not a.startswith("--gin.")]
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.gin_bindings = [a[len("--gin.") :] for a in gin_overrides]
    try:
        from flanjax import module_import

        module_import.import_modules(args.module_import)
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as e:
        # Bad input (unknown task, gin typo, malformed file...): one clear line, no traceback.
        if getattr(args, "debug", False):
            raise
        print(f"flanjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a training loop (which saves and exits itself)
        print(f"flanjax {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
