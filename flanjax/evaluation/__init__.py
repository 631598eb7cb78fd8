"""Evaluation utilities for flanjax (metrics, held-out-cluster evaluator)."""
