"""`flanjax score --checkpoint DIR --input IN.jsonl --output OUT.jsonl`: log-likelihoods.

Each input line is {"inputs": str, "targets": str}; each output line is the same
record plus "log_likelihood" (natural log of p(targets | inputs), summed over the
target tokens) and "num_target_tokens". The token layout per model family is
`inference.encode_example`'s: T5 appends EOS to inputs and targets; a decoder-only
model converted from Hugging Face scores the continuation as its tokenizer
writes it (no EOS added).
"""

from __future__ import annotations

import argparse


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by `score` and `generate`."""
    p.add_argument("--checkpoint", required=True, help="a MODEL_DIR (converted or trained)")
    p.add_argument("--input", required=True, help="JSON lines with an 'inputs' string")
    p.add_argument("--output", required=True, help="JSON lines written here")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument(
        "--vocabulary",
        default=None,
        help="'byte', or a SentencePiece .model / tokenizer.json / folder "
        "(default: DIR/vocab, saved by conversion)",
    )
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="log-likelihood of each line's targets given its inputs")
    add_model_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from flanjax import inference, model_loading
    from flanjax.data import vocabularies

    if args.batch_size < 1:
        raise ValueError(f"--batch_size {args.batch_size}: must be at least 1")
    records = inference.read_examples(args.input, ("inputs", "targets"))
    vocab = vocabularies.vocabulary_for_model_dir(args.checkpoint, args.vocabulary)
    model, step = model_loading.load_model(args.checkpoint, args.step)
    pairs = inference.encode_examples(model, vocab, args.input, records)
    out = []
    for start in range(0, len(pairs), args.batch_size):
        chunk = pairs[start : start + args.batch_size]
        inputs, input_lengths = inference.pad_batch([p[0] for p in chunk], args.batch_size)
        targets, target_lengths = inference.pad_batch([p[1] for p in chunk], args.batch_size)
        ll = np.asarray(inference.score(model, inputs, targets, input_lengths, target_lengths))
        for (_, record), value, n in zip(
            records[start : start + len(chunk)], ll, target_lengths, strict=False
        ):
            out.append({**record, "log_likelihood": float(value), "num_target_tokens": int(n)})
    inference.write_jsonl(args.output, out)
    print(f"flanjax score: {len(out)} examples, checkpoint step {step} -> {args.output}")
    return 0
