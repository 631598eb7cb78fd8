"""`flanjax tasks list`, `show NAME` and `stats NAME`: what the registries hold and cost.

Each takes the run's gin flags too (`--gin_file`, `--gin.NAME=VALUE`): the gin files'
`import` lines and MIXTURE_OR_TASK_MODULE register their tasks, and NAME, the feature
lengths, steps, batch size and packing default to the run's MIXTURE_OR_TASK_NAME,
TASK_FEATURE_LENGTHS, TRAIN_STEPS, BATCH_SIZE and USE_PACKING.
"""

from __future__ import annotations

import argparse

from flanjax import gin_launch

DEFAULT_LENGTHS = "inputs:512,targets:128"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list registered tasks and mixtures, or show examples")
    tsub = p.add_subparsers(dest="tasks_command", required=True, metavar="SUBCOMMAND")
    ls = tsub.add_parser("list", help="every registered task and mixture")
    ls.set_defaults(func=run_list)
    show = tsub.add_parser("show", help="rendered examples of a task or mixture, with token counts")
    show.add_argument("name", nargs="?", help="default: the gin run's MIXTURE_OR_TASK_NAME")
    show.add_argument("--split", default="train")
    show.add_argument("--num", type=int, default=3)
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--feature_lengths", default=None,
                      help=f"default: TASK_FEATURE_LENGTHS or {DEFAULT_LENGTHS}")  # fmt: skip
    show.set_defaults(func=run_show)
    stats = tsub.add_parser(
        "stats", help="expected examples, tokens, truncation and packing of a run, before training"
    )
    stats.add_argument("name", nargs="?", help="default: the gin run's MIXTURE_OR_TASK_NAME")
    stats.add_argument("--steps", type=int, default=None, help="default: TRAIN_STEPS")
    stats.add_argument("--batch_size", type=int, default=None,
                       help="global rows per step (default: BATCH_SIZE)")  # fmt: skip
    stats.add_argument("--feature_lengths", default=None)
    stats.add_argument("--no_pack", action="store_true", help="one example per row")
    stats.add_argument("--feature_converter", default="enc_dec", choices=("enc_dec", "prefix_lm"))
    stats.add_argument("--sample", type=int, default=200, help="records sampled per task")
    stats.add_argument("--seed", type=int, default=0)
    stats.set_defaults(func=run_stats)
    for p in (ls, show, stats):
        gin_launch.add_gin_flags(p)


def _load(args: argparse.Namespace) -> None:
    """Parses the run's gin, if any (its imports and MIXTURE_OR_TASK_MODULE register
    tasks), then imports the shipped tasks."""
    gin_launch.parse(args.gin_file, args.gin_bindings, args.gin_search_paths)
    import flanjax.tasks  # noqa: F401


def _from_run(value, macro: str, flag: str):
    """A flag's value, else the gin run's macro; refused when neither is set."""
    value = gin_launch.macro_value(macro) if value is None else value
    if value is None:
        raise ValueError(f"give {flag} or a --gin_file that sets {macro}")
    return value


def _lengths(args: argparse.Namespace) -> dict[str, int]:
    if args.feature_lengths is not None:
        return parse_lengths(args.feature_lengths)
    return gin_launch.macro_value("TASK_FEATURE_LENGTHS") or parse_lengths(DEFAULT_LENGTHS)


def run_list(args: argparse.Namespace) -> int:
    import seqio

    from flanjax.data import registry

    _load(args)
    print(f"{'task':40s} {'cluster':22s} templates  examples (by split)")
    for name, info in sorted(registry.task_infos().items()):
        counts = ", ".join(f"{s} {n}" for s, n in info.num_examples.items())
        print(f"{name:40s} {info.cluster:22s} {len(info.templates):9d}  {counts}")
    print("\nmixtures:")
    for name in sorted(seqio.MixtureRegistry.names()):
        print(f"  {name} ({len(registry.tasks_of(name))} tasks)")
    return 0


def parse_lengths(text: str) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (item.split(":") for item in text.split(","))}
    except ValueError as e:
        raise ValueError(f"--feature_lengths {text!r}: expected NAME:INT,NAME:INT") from e


def run_show(args: argparse.Namespace) -> int:
    from flanjax.data import registry

    _load(args)
    name = _from_run(args.name, "MIXTURE_OR_TASK_NAME", "NAME")
    obj = registry.get_mixture_or_task(name)
    ds = obj.get_dataset(_lengths(args), split=args.split, shuffle=True, seed=args.seed)
    for i, ex in enumerate(ds.take(args.num).as_numpy_iterator()):
        print(f"--- example {i} ({ex['id'].decode() if 'id' in ex else ''})")
        for key in ("inputs", "targets"):
            raw = ex.get(f"{key}_pretokenized")  # a mixture's examples hold tokens only
            vocab = obj.output_features[key].vocabulary
            text = raw.decode() if raw is not None else vocab.decode(ex[key].tolist())
            print(f"[{key}] ({len(ex[key])} tokens)\n{text}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from flanjax.data import stats

    _load(args)
    result = stats.mixture_stats(
        _from_run(args.name, "MIXTURE_OR_TASK_NAME", "NAME"),
        _from_run(args.steps, "TRAIN_STEPS", "--steps"),
        _from_run(args.batch_size, "BATCH_SIZE", "--batch_size"),
        _lengths(args),
        pack=not args.no_pack and bool(gin_launch.macro_value("USE_PACKING", True)),
        sample=args.sample,
        seed=args.seed,
        converter=args.feature_converter,
    )
    print(stats.format_stats(result))
    return 0
