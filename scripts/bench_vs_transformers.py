"""flanjax's train step against transformers' (torch) on the same device, model and batch.

Both sides: T5 v1.1 small (gin_configs/models/t5_1_1_small.gin; `--size tiny` a
one-layer toy for dry runs), float32, the same unpacked batch shape (transformers does
not pack), Adafactor with T5's settings (factored second moments, decay exponent 0.8,
no momentum, update clipping 1.0, parameter-scaled updates, lr 1e-3), loss over all
target tokens. torch flushes denormals to zero, as XLA does on CPUs (without it, on an
Intel Xeon, torch's step grew from 2.8 s to 7.4 s over its first 10 steps as Adafactor's
updates went denormal). Reports median step times (after warm-up) and the ratio flanjax /
transformers (lower is better). `--device cuda` runs torch on the GPU with TF32
matmuls allowed, as JAX's default precision does for float32 on GPUs; `--side` runs one
side only (scripts/gpu_checks.sh runs each in its own process).

  .venv/bin/python scripts/bench_vs_transformers.py --batch_size 8 --inputs 256 --targets 64
  .venv/bin/python scripts/bench_vs_transformers.py --paired 7   # alternating, two processes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

# (flanjax T5Config, transformers T5Config) keyword arguments of each size
SIZES = {
    "small": dict(vocab_size=32128, d_model=512, head_dim=64, d_ff=1024, layers=8, num_heads=6),
    "tiny": dict(vocab_size=128, d_model=32, head_dim=16, d_ff=64, layers=1, num_heads=2),
}


def flanjax_config(args):
    from flanjax import gin_launch, partitioning
    from flanjax.models import T5Config
    from flanjax.perf import benchmarking

    if args.size == "small":
        gin_launch.parse(["models/t5_1_1_small.gin"], [])
        model = gin_launch.build_model()
    else:
        s = dict(SIZES[args.size])
        layers = s.pop("layers")
        model = T5Config(**s, num_encoder_layers=layers, num_decoder_layers=layers)
    return benchmarking.BenchConfig(
        model=model,
        feature_lengths={"inputs": args.inputs, "targets": args.targets},
        batch_size=args.batch_size,
        steps=args.steps,
        warmup_steps=args.warmup,
        pack=False,
        mesh=partitioning.MeshConfig(data=1),  # one device, as torch uses
    )


def bench_flanjax(args) -> dict:
    from flanjax.perf import benchmarking

    return benchmarking.run(flanjax_config(args))


def torch_stepper(args):
    """A function running one transformers train step (forward, backward, Adafactor) to
    completion, returning (seconds, loss)."""
    import torch
    import transformers
    from transformers.optimization import Adafactor

    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as XLA does on CPUs: denormals slowed torch's steps 3x
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    s = SIZES[args.size]
    config = transformers.T5Config(
        vocab_size=s["vocab_size"], d_model=s["d_model"], d_kv=s["head_dim"], d_ff=s["d_ff"],
        num_layers=s["layers"], num_heads=s["num_heads"], feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0,
    )  # fmt: skip
    model = transformers.T5ForConditionalGeneration(config).train().to(args.device)
    opt = Adafactor(
        model.parameters(), lr=1e-3, scale_parameter=True, relative_step=False,
        warmup_init=False, clip_threshold=1.0, decay_rate=-0.8, beta1=None,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    vocab = s["vocab_size"]
    inputs = torch.randint(2, vocab, (args.batch_size, args.inputs), generator=gen)
    labels = torch.randint(2, vocab, (args.batch_size, args.targets), generator=gen)
    inputs, labels = inputs.to(args.device), labels.to(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def one_step() -> tuple[float, float]:
        t0 = time.perf_counter()
        loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0, float(loss.detach())

    return one_step


def bench_transformers(args) -> dict:
    import torch

    one_step = torch_stepper(args)
    times, loss = [], float("nan")
    for i in range(args.warmup + args.steps):
        seconds, loss = one_step()
        if i >= args.warmup:
            times.append(seconds)
    return {
        "step_time_s": statistics.median(times),
        "final_loss": loss,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
    }


def worker_argv(args, side: str) -> list[str]:
    """This script, run as one side's paired worker with the same model and batch."""
    return [
        sys.executable, __file__, "--worker", side, "--size", args.size,
        "--batch_size", str(args.batch_size), "--inputs", str(args.inputs),
        "--targets", str(args.targets), "--threads", str(args.threads), "--device", args.device,
    ]  # fmt: skip


def serve_worker(args) -> None:
    from flanjax.perf import benchmarking, paired

    if args.worker == "flanjax":
        paired.serve(benchmarking.stepper(flanjax_config(args)))
    else:
        one_step = torch_stepper(args)
        paired.serve(lambda: one_step()[0])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--targets", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (= cores)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch's device")
    p.add_argument("--side", choices=("both", "flanjax", "transformers"), default="both")
    p.add_argument("--json", default="", help="write the result as JSON to this file")
    from flanjax.perf import paired

    paired.add_flags(p)
    return p


def main() -> None:
    args = parser().parse_args()
    from flanjax import host_memory
    from flanjax.perf import paired

    host_memory.ensure()  # as the flanjax entry point does; both sides inherit it
    if args.worker:
        serve_worker(args)
        return
    shape = {"batch": args.batch_size, "lengths": f"{args.inputs}/{args.targets}"}
    if args.paired:
        row = {**shape, **paired.compare(args, lambda side: worker_argv(args, side))}
    elif args.side != "both":
        result = (bench_flanjax if args.side == "flanjax" else bench_transformers)(args)
        row = {k: v for k, v in result.items() if isinstance(v, (int, float, str))}
    else:
        row = {**shape, **both_sides(args)}
    print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(row) + "\n")


def both_sides(args) -> dict:
    """Each side once, one after the other (unpaired), with a BENCHMARKS.md table row."""
    fj = bench_flanjax(args)
    hf = bench_transformers(args)
    ratio = fj["step_time_s"] / hf["step_time_s"]
    print(
        f"| T5 v1.1 {args.size}, batch {args.batch_size}, {args.inputs}/{args.targets}, fp32, "
        f"Adafactor | {fj['step_time_s']:.3f} s | {hf['step_time_s']:.3f} s | {ratio:.2f}x |"
    )
    return {
        "flanjax_step_s": round(fj["step_time_s"], 3),
        "transformers_step_s": round(hf["step_time_s"], 3),
        "ratio_flanjax_over_transformers": round(ratio, 3),
        "flanjax_compile_s": round(fj["compile_s"], 1),
    }


if __name__ == "__main__":
    main()
