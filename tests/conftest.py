"""Test-wide setup: 8 host CPU devices (before jax is imported), the real-data folder."""

from __future__ import annotations

import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("FLANJAX_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
    """../shared/data beside the repo; skips (with the reason) only when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found: real-data tests need ../shared/data beside the repo")
    return SHARED_DATA
