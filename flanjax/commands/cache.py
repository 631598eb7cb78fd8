r"""`flanjax cache TASK_REGEX... --cache_dir DIR`: the offline preprocessing cache (data/cache.py).

  flanjax cache 'flan2022\..*' --cache_dir /data/flanjax_cache
  flanjax cache 'flan2022\..*' --cache_dir gs://bucket/cache --module_import=my_tasks \
      --pipeline_option=--runner=DataflowRunner --pipeline_option=--project=P \
      --pipeline_option=--region=R --pipeline_option=--temp_location=gs://bucket/tmp

Then train with `--gin.DataConfig.cache_dir="'DIR'"`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="render and tokenize tasks once, with Apache Beam")
    p.add_argument("tasks", nargs="+", help="regexes of registered task names")
    p.add_argument("--cache_dir", required=True)
    p.add_argument(
        "--pipeline_option",
        action="append",
        default=None,
        help="a Beam pipeline flag (repeatable); default --runner=DirectRunner",
    )
    p.add_argument("--min_shards", type=int, default=16, help="output shards per task split")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import flanjax.tasks  # noqa: F401  (registers tasks and mixtures)
    from flanjax.data import cache

    written = cache.cache_tasks(
        args.tasks,
        args.cache_dir,
        pipeline_options=args.pipeline_option or ["--runner=DirectRunner"],
        modules=["flanjax.tasks", *args.module_import],
        min_shards=args.min_shards,
        overwrite=args.overwrite,
    )
    for folder in written:
        print(folder)
    if not written:
        print("nothing cached: no matching task that supports caching (or all cached already)")
    return 0
