"""LoRA against full fine-tuning: trainable parameters, peak memory and step time.

One mode per process (peak RSS is the process's): the model of a MODEL_DIR (e.g.
`flanjax convert --from hf` of SmolLM2-135M), a fixed random batch of B x T tokens
(decoder-only, every target position weighted), AdamW, one device. The first step
(compile) is reported apart; the step time is the median of the others.

    python scripts/bench_lora.py --model_dir /tmp/smollm2 --mode lora --rank 8
    python scripts/bench_lora.py --model_dir /tmp/smollm2 --mode full
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_dir", required=True)
    p.add_argument("--mode", choices=("lora", "full"), required=True)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--targets", default="q,k,v,o,gate,up,down")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()

    from flanjax import checkpointing, lora_state, optimizers, partitioning, trainer
    from flanjax.data.pipeline import DataConfig
    from flanjax.models import LoraConfig

    ref = lora_state.base_ref(args.model_dir)
    meta = checkpointing.Checkpointer(ref["path"], read_only=True).read_meta(ref["step"])
    model = checkpointing.model_config_from_json(meta["model"])
    lora = LoraConfig(rank=args.rank, targets=tuple(args.targets.split(",")))
    lengths = {"inputs": args.length // 2, "targets": args.length // 2}
    cfg = trainer.TrainConfig(
        model_dir="unused",
        data=DataConfig("unused", lengths, batch_size=args.batch),
        model=model,
        train_steps=args.steps,
        optimizer=optimizers.OptimizerConfig(name="adamw", learning_rate=1e-4),
        mesh=partitioning.MeshConfig(data=1),
        initial_checkpoint_path=args.model_dir,
        lora=lora if args.mode == "lora" else LoraConfig(),
    )
    mesh = partitioning.make_mesh(cfg.mesh, jax.devices()[:1])
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, model.vocab_size, (args.batch, args.length), dtype=np.int32)
    batch_np = {
        "decoder_input_tokens": np.pad(tokens, ((0, 0), (1, 0)))[:, :-1],
        "decoder_target_tokens": tokens,
        "decoder_loss_weights": np.ones_like(tokens),
    }
    with jax.set_mesh(mesh):
        ckpt = checkpointing.Checkpointer(tempfile.mkdtemp(prefix="bench_lora_"))  # empty
        start = trainer._restore_or_init(cfg, tx, mesh, ckpt)
        step = trainer.compile_train_step(
            cfg, tx, schedule, mesh, start.shardings, frozen=start.base
        )
        batch = partitioning.host_local_batch(mesh, cfg.mesh.rules, batch_np)
        state, times = start.state, []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            state, metrics = step(state, batch)
            jax.block_until_ready(metrics["loss"])
            times.append(time.perf_counter() - t0)
    trainable = lora_state.count(state.params)
    total = trainable + (lora_state.count(start.base) if start.base is not None else 0)
    print(
        json.dumps(
            {
                "mode": args.mode,
                "rank": args.rank if args.mode == "lora" else None,
                "batch": [args.batch, args.length],
                "trainable_params": trainable,
                "total_params": total,
                "optimizer_state_elements": lora_state.count(state.opt_state),
                "first_step_s": round(times[0], 2),
                "step_s_median": round(statistics.median(times[1:]), 2),
                "peak_rss_gib": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2
                ),
                "loss": float(jnp.asarray(metrics["loss"])),
            }
        )
    )


if __name__ == "__main__":
    main()
