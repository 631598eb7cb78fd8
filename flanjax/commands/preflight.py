"""`flanjax preflight` with the same flags as `train` (plus --eval_mixture, --topology):
checks a run before any accelerator time is spent; one line per check, exit 1 if any
fails (flanjax/preflight.py)."""

from __future__ import annotations

import argparse

from flanjax import gin_launch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preflight", help="check a training run (config, data, loss mask, packing, ...) first"
    )
    gin_launch.add_gin_flags(p)
    p.add_argument(
        "--eval_mixture",
        default=None,
        help="the held-out eval mixture (default: EVAL_MIXTURE_OR_TASK_NAME if the gin sets it)",
    )
    p.add_argument("--topology", default=None, help="also compile-check for it (v5e:16x16, ...)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    import gin

    import flanjax.tasks  # noqa: F401  (registers tasks and mixtures)
    from flanjax import preflight

    cfg = gin_launch.build_train_config()
    eval_mixture = args.eval_mixture
    if eval_mixture is None:
        try:
            eval_mixture = gin.query_parameter("%EVAL_MIXTURE_OR_TASK_NAME")
        except ValueError:
            eval_mixture = None
    lines = preflight.run(
        preflight.PreflightConfig(cfg, eval_mixture=eval_mixture, topology=args.topology)
    )
    print(preflight.format_report(lines))
    return 1 if preflight.failed(lines) else 0
