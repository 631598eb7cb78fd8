"""Text in, text out with a flanjax checkpoint: the generator the pipeline prompts.

`ModelGenerator` wraps `decoding.generate` (the API behind `flanjax generate`):
prompts are encoded as `inference.encode_example` lays them out for the model's
family, decoded in fixed-size batches (padded, so the jitted decoder compiles once
per prompt-length bucket), with sampling seeded per call and batch
(`fold_in(key(seed), batch index)`): equal seeds and prompts give equal texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Completion:
    """A decoded continuation; `finished`: the model ended it (EOS) rather than the
    token budget."""

    text: str
    finished: bool


class ModelGenerator:
    """Generates with MODEL_DIR's checkpoint (`flanjax convert` output or a trained run)."""

    def __init__(
        self,
        model_dir: str,
        step: int | None = None,
        vocabulary: str | None = None,
        batch_size: int = 4,
    ) -> None:
        from flanjax import inference, model_loading
        from flanjax.data import vocabularies

        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: must be at least 1")
        self.vocab = vocabularies.vocabulary_for_model_dir(model_dir, vocabulary)
        self.model, self.step = model_loading.load_model(model_dir, step)
        self.encoder_decoder = inference.is_encoder_decoder(self.model)
        self.batch_size = batch_size

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
    ) -> list[Completion]:
        import jax
        import numpy as np

        from flanjax import decoding, inference

        cfg = decoding.DecodeConfig(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            eos_id=self.vocab.eos_id,
        )
        rows = [
            inference.encode_example(self.vocab, p, "", encoder_decoder=self.encoder_decoder)[0]
            for p in prompts
        ]
        key, out = jax.random.key(seed), []
        for b, start in enumerate(range(0, len(rows), self.batch_size)):
            chunk = rows[start : start + self.batch_size]
            inputs, lengths = inference.pad_batch(chunk, self.batch_size)
            tokens, new_lengths = decoding.generate(
                self.model, inputs, lengths, jax.random.fold_in(key, b), cfg
            )
            tokens, new_lengths = np.asarray(tokens), np.asarray(new_lengths)
            for i in range(len(chunk)):
                ids = tokens[i, : new_lengths[i]].tolist()
                finished = bool(ids) and ids[-1] == self.vocab.eos_id
                text = self.vocab.decode(ids[:-1] if finished else ids)
                out.append(Completion(text, finished))
        return out
