"""The small-scale FLAN experiment (EXPERIMENTS.md): tune a converted checkpoint with a
cluster held out, with templates and with FLAN's ablations, and evaluate the held-out
cluster zero-shot before and after (flanjax/flan_experiment.py).

    python scripts/flan_experiment.py --base /tmp/smollm2 --work_dir /tmp/flan_exp \\
        --steps 100 --batch_size 8 --variants templates,no_template
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from flanjax import optimizers


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", required=True, help="a MODEL_DIR (flanjax convert --from hf)")
    p.add_argument("--work_dir", required=True)
    p.add_argument("--suite", default="flan")
    p.add_argument("--held_out", default="entailment")
    p.add_argument("--variants", default="templates,no_template")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--inputs_length", type=int, default=256)
    p.add_argument("--targets_length", type=int, default=64)
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--learning_rate", type=float, default=2e-5)
    p.add_argument("--prompt_format", default="chat", help="chat, plain, seqio, or none (auto)")
    p.add_argument("--no_pack", action="store_true", help="one example per row")
    p.add_argument("--max_eval_examples", type=int, default=0, help="per task; 0: all")
    p.add_argument("--eval_batch_size", type=int, default=16)
    args = p.parse_args()

    import flanjax.tasks  # noqa: F401  (registers the suites)
    from flanjax import flan_experiment

    cfg = flan_experiment.ExperimentConfig(
        work_dir=args.work_dir,
        base_checkpoint=args.base,
        suite=args.suite,
        held_out=args.held_out,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        train_steps=args.steps,
        batch_size=args.batch_size,
        feature_lengths={"inputs": args.inputs_length, "targets": args.targets_length},
        optimizer=dataclasses.replace(
            optimizers.OptimizerConfig(), name=args.optimizer, learning_rate=args.learning_rate
        ),
        prompt_format=None if args.prompt_format == "none" else args.prompt_format,
        max_eval_examples=args.max_eval_examples,
        pack=not args.no_pack,
        eval_batch_size=args.eval_batch_size,
    )
    print(flan_experiment.run(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
