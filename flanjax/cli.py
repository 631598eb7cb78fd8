"""The `flanjax` command line. Each subcommand lives in `flanjax/commands/<name>.py`
and exposes `register(subparsers)`; the logic lives in the libraries they call.

Gin flags follow T5X: `--gin_file=F` (repeatable), `--gin.NAME=VALUE` (repeatable),
`--gin_search_paths=DIR[,DIR]`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = ("train", "evaluate", "tasks", "convert", "bench", "compile_check", "score", "generate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flanjax", description="FLAN-style instruction tuning in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"flanjax.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from flanjax import xla_flags

    xla_flags.apply()  # before any backend exists
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    gin_overrides = [a for a in unknown if a.startswith("--gin.")]
    rest = [a for a in unknown if not a.startswith("--gin.")]
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.gin_bindings = [a[len("--gin.") :] for a in gin_overrides]
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as e:
        # Bad input (unknown task, gin typo, malformed file...): one clear line, no traceback.
        if getattr(args, "debug", False):
            raise
        print(f"flanjax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
