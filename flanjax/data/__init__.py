"""Data layer: templates, tasks, mixtures, pipelines. Never imports model code."""
