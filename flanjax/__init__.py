"""flanjax: FLAN-style instruction tuning in JAX."""
