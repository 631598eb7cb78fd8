"""`flanjax tasks list`, `show NAME` and `stats NAME`: what the registries hold and cost."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list registered tasks and mixtures, or show examples")
    tsub = p.add_subparsers(dest="tasks_command", required=True, metavar="SUBCOMMAND")
    ls = tsub.add_parser("list", help="every registered task and mixture")
    ls.set_defaults(func=run_list)
    show = tsub.add_parser("show", help="rendered examples of a task or mixture, with token counts")
    show.add_argument("name")
    show.add_argument("--split", default="train")
    show.add_argument("--num", type=int, default=3)
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--feature_lengths", default="inputs:512,targets:128",
                      help="truncation lengths, e.g. inputs:512,targets:128")  # fmt: skip
    show.set_defaults(func=run_show)
    stats = tsub.add_parser(
        "stats", help="expected examples, tokens, truncation and packing of a run, before training"
    )
    stats.add_argument("name")
    stats.add_argument("--steps", type=int, required=True)
    stats.add_argument("--batch_size", type=int, required=True, help="global rows per step")
    stats.add_argument("--feature_lengths", default="inputs:512,targets:128")
    stats.add_argument("--no_pack", action="store_true", help="one example per row")
    stats.add_argument("--feature_converter", default="enc_dec", choices=("enc_dec", "prefix_lm"))
    stats.add_argument("--sample", type=int, default=200, help="records sampled per task")
    stats.add_argument("--seed", type=int, default=0)
    stats.set_defaults(func=run_stats)


def run_list(args: argparse.Namespace) -> int:
    import seqio

    import flanjax.tasks  # noqa: F401
    from flanjax.data import registry

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
    import flanjax.tasks  # noqa: F401
    from flanjax.data import registry

    obj = registry.get_mixture_or_task(args.name)
    ds = obj.get_dataset(
        parse_lengths(args.feature_lengths), split=args.split, shuffle=True, seed=args.seed
    )
    for i, ex in enumerate(ds.take(args.num).as_numpy_iterator()):
        print(f"--- example {i} ({ex['id'].decode() if 'id' in ex else ''})")
        for key in ("inputs", "targets"):
            text = ex[f"{key}_pretokenized"].decode()
            print(f"[{key}] ({len(ex[key])} tokens)\n{text}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    import flanjax.tasks  # noqa: F401
    from flanjax.data import stats

    result = stats.mixture_stats(
        args.name,
        args.steps,
        args.batch_size,
        parse_lengths(args.feature_lengths),
        pack=not args.no_pack,
        sample=args.sample,
        seed=args.seed,
        converter=args.feature_converter,
    )
    print(stats.format_stats(result))
    return 0
