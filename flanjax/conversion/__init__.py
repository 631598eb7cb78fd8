"""Checkpoint conversion between flanjax and other frameworks (Hugging Face)."""

from flanjax.conversion.hf import convert_from_hf, convert_to_hf

__all__ = ["convert_from_hf", "convert_to_hf"]
