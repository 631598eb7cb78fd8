"""`flanjax generate --checkpoint DIR --input IN.jsonl --output OUT.jsonl`: decoding.

Each input line holds "inputs" (T5: the encoder input; decoder-only: the prompt);
each output line is the same record plus "output", the decoded continuation
(up to EOS, special tokens skipped). Greedy by default; `--temperature` > 0
samples (with `--top_k`, `--top_p`, seeded by `--seed`); `--beam_size` > 1
runs beam search with length penalty exponent `--alpha` (T5X's 0.6).
"""

from __future__ import annotations

import argparse

from flanjax.commands.score import add_model_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="decode a continuation of each line's inputs")
    add_model_flags(p)
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--top_k", type=int, default=0, help="0: off")
    p.add_argument("--top_p", type=float, default=1.0, help="1: off")
    p.add_argument("--beam_size", type=int, default=1)
    p.add_argument("--alpha", type=float, default=0.6, help="beam search length penalty")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from flanjax import decoding, inference, model_loading
    from flanjax.data import vocabularies

    if args.batch_size < 1:
        raise ValueError(f"--batch_size {args.batch_size}: must be at least 1")
    records = inference.read_examples(args.input, ("inputs",))
    vocab = vocabularies.vocabulary_for_model_dir(args.checkpoint, args.vocabulary)
    cfg = decoding.DecodeConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        beam_size=args.beam_size,
        alpha=args.alpha,
        eos_id=vocab.eos_id,
    )
    model, step = model_loading.load_model(args.checkpoint, args.step)
    pairs = inference.encode_examples(model, vocab, args.input, records)
    key = jax.random.key(args.seed)
    out = []
    for start in range(0, len(pairs), args.batch_size):
        chunk = pairs[start : start + args.batch_size]
        inputs, lengths = inference.pad_batch([p[0] for p in chunk], args.batch_size)
        batch_key = jax.random.fold_in(key, start // args.batch_size)
        tokens, new_lengths = decoding.generate(model, inputs, lengths, batch_key, cfg)
        tokens, new_lengths = np.asarray(tokens), np.asarray(new_lengths)
        for i, (_, record) in enumerate(records[start : start + len(chunk)]):
            text = vocab.decode(tokens[i, : new_lengths[i]].tolist())
            out.append({**record, "output": text})
    inference.write_jsonl(args.output, out)
    print(f"flanjax generate: {len(out)} examples, checkpoint step {step} -> {args.output}")
    return 0
