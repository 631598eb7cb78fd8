"""`flanjax convert --from hf|--to hf --src DIR --dst DIR [--step N] [--param_dtype D]
[--scan_layers] [--peft]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a Hugging Face checkpoint into a MODEL_DIR, or a MODEL_DIR checkpoint to HF",
    )
    direction = p.add_mutually_exclusive_group(required=True)
    direction.add_argument(
        "--from",
        dest="from_format",
        choices=("hf",),
        help="--src is a Hugging Face folder; --dst a new MODEL_DIR",
    )
    direction.add_argument(
        "--to",
        dest="to_format",
        choices=("hf",),
        help="--src is a MODEL_DIR; --dst the Hugging Face folder",
    )
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument(
        "--step",
        type=int,
        default=None,
        help="with --to: the checkpoint step (default: the latest)",
    )
    p.add_argument(
        "--param_dtype", default="float32", help="with --from: dtype of the converted parameters"
    )
    p.add_argument(
        "--scan_layers",
        action="store_true",
        help="with --from: write the stacked-layer layout (models run by jax.lax.scan)",
    )
    p.add_argument(
        "--peft",
        action="store_true",
        help="with --to hf and a LoRA MODEL_DIR: a PEFT adapter folder (adapter_config.json, "
        "adapter_model.safetensors) instead of merged weights",
    )
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flanjax.conversion import hf

    if args.from_format:
        if args.step is not None:
            raise ValueError("--step goes with --to hf (which checkpoint to export)")
        if args.peft:
            raise ValueError("--peft goes with --to hf (a LoRA MODEL_DIR's adapters)")
        cfg = hf.convert_from_hf(
            args.src, args.dst, param_dtype=args.param_dtype, scan_layers=args.scan_layers
        )
        print(f"wrote {args.dst} (checkpoint 0, {type(cfg).__name__})")
    elif args.peft:
        from flanjax.conversion import peft

        peft.export_peft(args.src, args.dst, step=args.step)
        print(f"wrote {args.dst} (adapter_config.json, adapter_model.safetensors)")
    else:
        hf.convert_to_hf(args.src, args.dst, step=args.step)  # a LoRA MODEL_DIR: merged
        print(f"wrote {args.dst} (config.json, model.safetensors)")
    return 0
