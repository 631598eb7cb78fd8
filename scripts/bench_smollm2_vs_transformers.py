"""A full fine-tuning step of SmolLM2-135M in flanjax against transformers (torch), on the
same device and batch shape: the speed that sizes the FLAN experiment (EXPERIMENTS.md).

Both sides: SmolLM2-135M's architecture (the prepared Hugging Face folder's config.json,
scripts/prepare_smollm2.py), float32, random weights (speed does not depend on them),
AdamW lr 1e-4, the loss over every position of an unpacked batch of `--batch_size` rows
of `--length` tokens. Alternates one step of each for `--paired` rounds after the
warm-up (both see the same machine load); prints medians, the ratio flanjax /
transformers (lower is better) and tokens per second (positions, padding included).

  .venv/bin/python scripts/bench_smollm2_vs_transformers.py --paired 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

HF_DIR = os.path.expanduser("~/.cache/flanjax/smollm2-135m-instruct")


def flanjax_stepper(args):
    from flanjax import optimizers, partitioning
    from flanjax.conversion import hf
    from flanjax.perf import benchmarking

    cfg = hf.config_from_hf(hf.read_json(os.path.join(args.hf_dir, "config.json")))
    bench = benchmarking.BenchConfig(
        model=cfg,
        feature_lengths={"targets": args.length},
        batch_size=args.batch_size,
        pack=False,
        optimizer=optimizers.OptimizerConfig(name="adamw", learning_rate=1e-4, schedule="constant"),
        mesh=partitioning.MeshConfig(data=1),  # one device, as torch uses
    )
    return benchmarking.stepper(bench)


def torch_stepper(args):
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.AutoConfig.from_pretrained(args.hf_dir)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, config.vocab_size, (args.batch_size, args.length), generator=gen)

    def one_step() -> float:
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return one_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hf_dir", default=HF_DIR)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--length", type=int, default=320)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--paired", type=int, default=5)
    args = p.parse_args()
    fj_step, hf_step = flanjax_stepper(args), torch_stepper(args)
    for _ in range(args.warmup):
        fj_step(), hf_step()
    fj, hf = [], []
    for _ in range(args.paired):
        fj.append(fj_step())
        hf.append(hf_step())
    tokens = args.batch_size * args.length
    print(
        json.dumps(
            {
                "batch": f"{args.batch_size} x {args.length}",
                "rounds": args.paired,
                "flanjax_step_s": round(statistics.median(fj), 2),
                "transformers_step_s": round(statistics.median(hf), 2),
                "flanjax_tokens_per_s": round(tokens / statistics.median(fj), 1),
                "transformers_tokens_per_s": round(tokens / statistics.median(hf), 1),
                "median_ratio_flanjax_over_transformers": round(
                    statistics.median(a / b for a, b in zip(fj, hf, strict=True)), 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
