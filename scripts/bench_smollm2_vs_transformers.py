"""A full fine-tuning step of SmolLM2-135M in flanjax against transformers (torch), on the
same device and batch shape: the speed that sizes the FLAN experiment (EXPERIMENTS.md).

Both sides: SmolLM2-135M's architecture (the prepared Hugging Face folder's config.json,
scripts/prepare_smollm2.py), float32, random weights (speed does not depend on them),
AdamW lr 1e-4, the loss over every position of an unpacked batch of `--batch_size` rows
of `--length` tokens. Each side runs in its own process (flanjax/perf/paired.py); one
step of each per round, the order swapped every round, for `--paired` rounds after the
warm-up (both see the same machine load); prints medians, the ratio flanjax /
transformers (lower is better) and tokens per second (positions, padding included).

  .venv/bin/python scripts/bench_smollm2_vs_transformers.py --paired 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
    torch.set_flush_denormal(True)  # as XLA does on CPUs: denormals slowed torch's steps 3x
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
    from flanjax import host_memory

    host_memory.ensure()  # as the flanjax entry point does; both sides inherit it
    from flanjax.perf import paired

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hf_dir", default=HF_DIR)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--length", type=int, default=320)
    p.add_argument("--warmup", type=int, default=1)
    paired.add_flags(p, rounds=5)
    args = p.parse_args()
    if args.worker:
        paired.serve((flanjax_stepper if args.worker == "flanjax" else torch_stepper)(args))
        return
    common = [sys.executable, __file__, "--hf_dir", args.hf_dir,
              "--batch_size", str(args.batch_size), "--length", str(args.length)]  # fmt: skip
    row = paired.compare(args, lambda side: [*common, "--worker", side])
    tokens = args.batch_size * args.length
    for side in paired.SIDES:
        row[f"{side}_tokens_per_s"] = round(tokens / row[f"{side}_step_s"], 1)
    print(json.dumps({"batch": f"{args.batch_size} x {args.length}", **row}))


if __name__ == "__main__":
    main()
