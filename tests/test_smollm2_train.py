"""The real SmolLM2-135M-Instruct, converted, trains on the real FLAN mixture of the
README (entailment held out) with its own tokenizer: the loss is a language model's on
English, not noise; the same checkpoint on the T5-vocabulary tasks is refused by name."""

from __future__ import annotations

import json

import pytest

import flanjax.tasks  # noqa: F401
from flanjax import checkpointing, partitioning, trainer
from flanjax.data.pipeline import DataConfig

pytestmark = pytest.mark.slow


def _config(model_dir, initial, **data) -> trainer.TrainConfig:
    return trainer.TrainConfig(
        model_dir=str(model_dir),
        data=DataConfig(
            "flan.train_without_entailment", {"inputs": 128, "targets": 32}, batch_size=8,
            feature_converter="auto",
            **data,
        ),
        model=None,  # the checkpoint's architecture, no model gin
        train_steps=2,
        initial_checkpoint_path=str(initial),
        checkpoint=checkpointing.CheckpointConfig(save_initial=False, async_save=False),
        mesh=partitioning.MeshConfig(data=2, fsdp=4),  # the 8 host devices of the tests
        log_every=1,
        show_progress=False,
    )  # fmt: skip


def test_smollm2_trains_on_the_flan_mixture_with_its_own_tokenizer(
    smollm2_model_dir, shared_data, tmp_path
):
    cfg = _config(tmp_path / "run", smollm2_model_dir)
    last = trainer.train(cfg)
    assert last["step"] == 2
    lines = (tmp_path / "run" / "train_metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    first = rows[0]
    assert first["step"] == 1 and first["nll_per_token"] < 5.0, first  # noise: ln 49152 = 10.8
    layout = json.loads((tmp_path / "run" / "vocab" / "layout.json").read_text())
    assert layout == {"layout": "plain"}
    assert (tmp_path / "run" / "vocab" / "tokenizer.json").exists()


def test_smollm2_on_the_t5_vocabulary_tasks_is_refused(smollm2_model_dir, shared_data, tmp_path):
    cfg = _config(tmp_path / "run", smollm2_model_dir, vocabulary="task")
    with pytest.raises(ValueError) as e:
        trainer.train(cfg)
    message = str(e.value)
    assert "'flan.train_without_entailment'" in message and "t5_spiece.model" in message
    assert str(smollm2_model_dir) in message
    assert not (tmp_path / "run").exists()
