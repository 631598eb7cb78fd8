"""flanjax's train step against transformers' (torch) on the same CPU, model and batch.

Both sides: T5 v1.1 small (gin_configs/models/t5_1_1_small.gin), float32, the same
unpacked batch shape (transformers does not pack), Adafactor with T5's settings
(factored second moments, decay exponent 0.8, no momentum, update clipping 1.0,
parameter-scaled updates, lr 1e-3), loss over all target tokens. Reports median
step times (after warm-up) and the ratio flanjax / transformers (lower is better).

  .venv/bin/python scripts/bench_vs_transformers.py --batch_size 8 --inputs 256 --targets 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def bench_flanjax(args) -> dict:
    from flanjax import benchmarking, gin_launch

    gin_launch.parse(["models/t5_1_1_small.gin"], [])
    cfg = benchmarking.BenchConfig(
        model=gin_launch.build_model(),
        feature_lengths={"inputs": args.inputs, "targets": args.targets},
        batch_size=args.batch_size,
        steps=args.steps,
        warmup_steps=args.warmup,
        pack=False,
    )
    return benchmarking.run(cfg)


def bench_transformers(args) -> dict:
    import torch
    import transformers
    from transformers.optimization import Adafactor

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = transformers.T5Config(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_heads=6,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0,
    )  # fmt: skip
    model = transformers.T5ForConditionalGeneration(config).train()
    opt = Adafactor(
        model.parameters(), lr=1e-3, scale_parameter=True, relative_step=False,
        warmup_init=False, clip_threshold=1.0, decay_rate=-0.8, beta1=None,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(2, 32128, (args.batch_size, args.inputs), generator=gen)
    labels = torch.randint(2, 32128, (args.batch_size, args.targets), generator=gen)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return {"step_time_s": statistics.median(times), "final_loss": float(loss.detach())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--targets", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (= cores)")
    args = p.parse_args()
    fj = bench_flanjax(args)
    hf = bench_transformers(args)
    ratio = fj["step_time_s"] / hf["step_time_s"]
    row = {
        "batch": args.batch_size,
        "lengths": f"{args.inputs}/{args.targets}",
        "flanjax_step_s": round(fj["step_time_s"], 3),
        "transformers_step_s": round(hf["step_time_s"], 3),
        "ratio_flanjax_over_transformers": round(ratio, 3),
        "flanjax_compile_s": round(fj["compile_s"], 1),
    }
    print(json.dumps(row))
    print(
        f"| T5 v1.1 small, batch {args.batch_size}, {args.inputs}/{args.targets}, fp32, Adafactor "
        f"| {fj['step_time_s']:.3f} s | {hf['step_time_s']:.3f} s | {ratio:.2f}x |"
    )


if __name__ == "__main__":
    main()
