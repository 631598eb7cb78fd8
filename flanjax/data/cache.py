"""The offline preprocessing cache: seqio's Beam pipeline, run on any Beam runner.

`cache_tasks` renders and tokenizes every record of the named tasks once, with
Apache Beam (seqio.scripts.cache_tasks_main's pipeline: one Beam work item per
source shard, its output in sharded TFRecord files plus seqio's cache info), into
`cache_dir/<task>/`. A run reads the cache instead of the source when
`DataConfig.cache_dir` names that folder (data/pipeline.py: `use_cached`); the
steps after seqio's CacheDatasetPlaceholder (EOS after trimming, the feature
converter, packing) still run online. Streamed tasks (data/streamed.py) can be
cached; tasks without the placeholder are skipped by seqio, which logs it.

`pipeline_options` are Beam's own flags: `--runner=DirectRunner` (default, this
machine; `--direct_num_workers=N --direct_running_mode=multi_processing` for its
cores), or DataflowRunner / FlinkRunner / SparkRunner with their options.
"""

from __future__ import annotations

from collections.abc import Sequence


def cache_tasks(
    tasks: Sequence[str],
    cache_dir: str,
    *,
    pipeline_options: Sequence[str] = ("--runner=DirectRunner",),
    modules: Sequence[str] = ("flanjax.tasks",),
    min_shards: int = 16,
    overwrite: bool = False,
) -> list[str]:
    """Caches `tasks` (seqio regexes of registered task names) into `cache_dir`; returns
    the task folders written. `modules` are imported by remote Beam workers to
    register the tasks (they are already registered in this process)."""
    import apache_beam as beam
    import tensorflow as tf
    from seqio.scripts import cache_tasks_main

    # The pipeline reads a few of its settings from its absl flags.
    cache_tasks_main.FLAGS(["flanjax-cache", f"--min_shards={min_shards}", "--max_shards=0"])
    tf.io.gfile.makedirs(cache_dir)
    options = beam.options.pipeline_options.PipelineOptions(list(pipeline_options))
    with beam.Pipeline(options=options) as pipeline:
        written = cache_tasks_main.run_pipeline(
            pipeline, list(tasks), cache_dir, modules_to_import=list(modules), overwrite=overwrite
        )
    return written
