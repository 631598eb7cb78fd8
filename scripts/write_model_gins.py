"""Writes gin_configs/models/<name>.gin for the real checkpoints users start from
(flanjax.conversion.gin_model.REAL_MODELS): Flan-T5, SmolLM2, Llama 3.x, Qwen2.5.

    python scripts/write_model_gins.py [--check]   # --check: fail if a file differs
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from flanjax.conversion.gin_model import REAL_MODELS, model_gin

MODELS_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin_configs" / "models"
SOURCE = "Shapes from the checkpoint's public config.json; written by scripts/write_model_gins.py."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for stem, (title, cfg) in REAL_MODELS.items():
        path, text = MODELS_DIR / f"{stem}.gin", model_gin(cfg, title, SOURCE)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale model files (rerun scripts/write_model_gins.py): {stale}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
