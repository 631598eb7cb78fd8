"""Trainer: mesh invariance, checkpoint round trip, exact resume, config mismatch."""

import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest

import flanjax.tasks  # noqa: F401
from flanjax import checkpointing, optimizers, partitioning, train_state, trainer
from flanjax.data.pipeline import BatchIterator, DataConfig
from flanjax.models.t5 import T5Config

MODEL = T5Config(
    vocab_size=384, d_model=32, num_heads=4, head_dim=8, d_ff=64,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip
DATA = DataConfig("builtin.train_without_comparison", {"inputs": 64, "targets": 16}, batch_size=8)


def _config(tmp_path, **kw) -> trainer.TrainConfig:
    base = dict(
        model_dir=str(tmp_path / "run"),
        data=DATA,
        model=MODEL,
        train_steps=4,
        checkpoint=checkpointing.CheckpointConfig(save_every=2, async_save=False),
        log_every=1,
        show_progress=False,
    )
    return trainer.TrainConfig(**{**base, **kw})


def _losses(cfg: trainer.TrainConfig, devices, steps=2) -> list[float]:
    """Losses of `steps` train steps on a mesh over `devices`."""
    mesh = partitioning.make_mesh(cfg.mesh, devices)
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    with jax.set_mesh(mesh):
        state, shardings = train_state.init_state(cfg.model, tx, mesh, cfg.mesh.rules, cfg.seed)
        step = trainer.compile_train_step(cfg, tx, schedule, mesh, shardings)
        data, out = BatchIterator(cfg.data), []
        for _ in range(steps):
            batch = partitioning.host_local_batch(mesh, cfg.mesh.rules, next(data))
            state, metrics = step(state, batch)
            out.append(float(metrics["loss"]))
    return out


def test_eight_device_mesh_matches_one_device(tmp_path):
    assert jax.device_count() == 8
    one = _losses(_config(tmp_path, mesh=partitioning.MeshConfig(data=1)), jax.devices()[:1])
    for mesh in (
        partitioning.MeshConfig(data=8),
        partitioning.MeshConfig(data=2, fsdp=2, tensor=2),
    ):
        many = _losses(_config(tmp_path, mesh=mesh), jax.devices())
        np.testing.assert_allclose(many, one, rtol=1e-5)


def test_checkpoint_round_trip_and_exact_resume(tmp_path):
    cfg = _config(tmp_path)
    trainer.train(cfg)  # steps 0..4, checkpoints at 0, 2, 4
    ckpt = checkpointing.Checkpointer(cfg.model_dir, read_only=True)
    assert ckpt.all_steps() == [0, 2, 4]
    tx, _ = optimizers.make_optimizer(cfg.optimizer)
    abstract = train_state.abstract_state(cfg.model, tx)
    (params, _), data_state, meta = ckpt.restore(4, abstract)
    assert meta["step"] == 4 and data_state == {"batches_consumed": 4}
    # Resume 4 -> 6 equals an uninterrupted 0 -> 6 run, metric for metric ...
    trainer.train(dataclasses.replace(cfg, train_steps=6))
    straight = _config(tmp_path, model_dir=str(tmp_path / "straight"), train_steps=6)
    trainer.train(straight)

    def losses(d):
        rows = [
            json.loads(x) for x in pathlib.Path(f"{d}/train_metrics.jsonl").read_text().splitlines()
        ]
        return {r["step"]: r["loss"] for r in rows}

    resumed, uninterrupted = losses(cfg.model_dir), losses(straight.model_dir)
    assert sorted(resumed) == sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]
    for s in range(1, 7):
        assert resumed[s] == pytest.approx(uninterrupted[s], rel=1e-6)
    # ... and the restored step-4 parameters equal the uninterrupted run's, bitwise.
    ckpt2 = checkpointing.Checkpointer(straight.model_dir, read_only=True)
    assert ckpt2.all_steps() == [0, 2, 4, 6]  # keep=3 newest, plus the step-0 baseline
    params2 = ckpt2.restore(4, abstract)[0][0]
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_resume_refuses_a_different_model_config(tmp_path):
    cfg = _config(tmp_path, train_steps=2)
    trainer.train(cfg)
    bigger = dataclasses.replace(cfg, model=dataclasses.replace(MODEL, d_ff=128), train_steps=4)
    with pytest.raises(ValueError, match=r"different model config.*'d_ff': \(64, 128\)"):
        trainer.train(bigger)


def test_mesh_config_errors():
    with pytest.raises(ValueError, match="needs 16 devices, but 8 are available"):
        partitioning.MeshConfig(data=8, fsdp=2).shape(8)
    assert partitioning.MeshConfig(data=-1, tensor=2).shape(8) == (4, 1, 2)
