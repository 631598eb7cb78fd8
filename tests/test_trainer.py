"""Trainer: mesh and microbatch invariance, checkpoint policies, resume on another mesh,
initialization from a pretrained checkpoint, mixed precision, freezing, remat, loss
normalization."""

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flanjax.tasks  # noqa: F401
from flanjax import checkpointing, optimizers, partitioning, train_state, trainer
from flanjax.data.pipeline import BatchIterator, DataConfig
from flanjax.models.llama import DecoderConfig
from flanjax.models.t5 import T5Config
from flanjax.train_step import LossConfig, accumulate_gradients, loss_weights

MODEL = T5Config(
    vocab_size=384, d_model=32, num_heads=4, head_dim=8, d_ff=64,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip
DATA = DataConfig("builtin.train_without_comparison", {"inputs": 64, "targets": 16}, batch_size=8)


@pytest.fixture(scope="module")
def batches() -> list[dict[str, np.ndarray]]:
    """20 global batches of the built-in mixture, read once for the module."""
    data = BatchIterator(DATA)
    return [next(data) for _ in range(20)]


@pytest.fixture(scope="module")
def reference(batches) -> tuple[np.ndarray, train_state.TrainState]:
    """(losses, initial state on the host) of the 20-step run on one device."""
    cfg = _config(pathlib.Path("unused"), mesh=partitioning.MeshConfig(data=1))
    _, init = _run(cfg, jax.devices()[:1], [])
    losses, _ = _run(cfg, jax.devices()[:1], batches, init)
    return losses, init


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


def _run(cfg, devices, batches, init=None):
    """(losses, final state on the host) of `cfg`'s step over `batches` on `devices`;
    the state starts from `init` (host arrays) or a fresh initialization."""
    mesh = partitioning.make_mesh(cfg.mesh, devices)
    rules = cfg.mesh.rules
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    with jax.set_mesh(mesh):
        if init is None:
            state, shardings = train_state.init_state(cfg.model, tx, mesh, rules, cfg.seed)
        else:
            abstract = train_state.abstract_state(cfg.model, tx, cfg.seed)
            shardings = train_state.state_shardings(abstract, mesh, rules)
            state = jax.device_put(init, shardings)
        step = trainer.compile_train_step(cfg, tx, schedule, mesh, shardings)
        losses = []
        for b in batches:
            state, metrics = step(state, partitioning.host_local_batch(mesh, rules, b))
            losses.append(float(metrics["loss"]))
    return np.array(losses), jax.device_get(state)


def test_meshes_and_microbatches_match_one_device(tmp_path, batches, reference):
    """20 steps, float32: data 8, fsdp 8, 2x2x2, and 4 microbatches on replica 2 x
    tensor 4 give the 1-device run's losses within 1e-5 relative."""
    assert jax.device_count() == 8
    one, init = reference
    runs = {
        "data=8": dict(mesh=partitioning.MeshConfig(data=8)),
        "fsdp=8": dict(mesh=partitioning.MeshConfig(data=1, fsdp=8)),
        "2x2x2": dict(mesh=partitioning.MeshConfig(data=2, fsdp=2, tensor=2)),
        "replica=2,tensor=4,4 microbatches": dict(
            mesh=partitioning.MeshConfig(replica=2, data=1, tensor=4), microbatches=4
        ),
    }
    diffs = {}
    for name, kw in runs.items():
        many, _ = _run(_config(tmp_path, **kw), jax.devices(), batches, init)
        diffs[name] = float(np.max(np.abs(many / one - 1)))
        np.testing.assert_allclose(many, one, rtol=1e-5, err_msg=name)
    print("max relative loss difference over 20 steps:", diffs)
    assert one[-1] < one[0] - 0.2  # it learns


def test_mixed_precision_trains(tmp_path, batches, reference):
    """bf16 compute with float32 parameters: parameters stay float32, and the loss
    curve follows the float32 one."""
    f32_losses, init = reference
    cfg = _config(tmp_path, model=dataclasses.replace(MODEL, dtype="bfloat16"))
    losses, state = _run(cfg, jax.devices()[:1], batches, init)
    assert {a.dtype for a in jax.tree.leaves(state.params)} == {np.dtype("float32")}
    assert losses[-1] < losses[0] - 0.2
    np.testing.assert_allclose(losses, f32_losses, rtol=2e-2)


def test_frozen_parameters_stay_bit_identical(tmp_path, batches, reference):
    opt = optimizers.OptimizerConfig(freeze=("^encoder_layers/", "token_embed"))
    cfg = _config(tmp_path, optimizer=opt, mesh=partitioning.MeshConfig(data=1))
    tx, _ = optimizers.make_optimizer(opt)
    init = reference[1].replace(opt_state=jax.device_get(jax.jit(tx.init)(reference[1].params)))
    _, state = _run(cfg, jax.devices()[:1], batches[:3], init)
    flat = dict(jax.tree_util.tree_leaves_with_path(state.params))
    before = dict(jax.tree_util.tree_leaves_with_path(init.params))
    frozen = changed = 0
    for kp, value in flat.items():
        path = optimizers.param_path(kp)
        if path.startswith("encoder_layers/") or "token_embed" in path:
            np.testing.assert_array_equal(value, before[kp], err_msg=path)
            frozen += 1
        else:
            changed += not np.array_equal(value, before[kp])
    assert frozen >= 9 and changed >= 10
    with pytest.raises(ValueError, match="matches no parameter"):
        tx, _ = optimizers.make_optimizer(optimizers.OptimizerConfig(freeze=("nope",)))
        train_state.abstract_state(MODEL, tx)


def _losses_by_step(model_dir) -> dict[int, float]:
    rows = pathlib.Path(f"{model_dir}/train_metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, rows)}


def test_checkpoints_resume_on_another_mesh_and_initialize(tmp_path, reference):
    """Keep-N plus keep-every-K; a run saved on data=8 resumes on fsdp=2 x tensor=4
    and follows the uninterrupted (1-device) run; a run initialized from a
    checkpoint's parameters counts steps on from it (T5X's TRAIN_STEPS)."""
    ckpt_cfg = checkpointing.CheckpointConfig(save_every=1, keep=2, keep_every=2, async_save=False)
    cut = _config(tmp_path, train_steps=4, checkpoint=ckpt_cfg,
                  mesh=partitioning.MeshConfig(data=8))  # fmt: skip
    trainer.train(cut)
    resumed = dataclasses.replace(
        cut, train_steps=6, mesh=partitioning.MeshConfig(data=1, fsdp=2, tensor=4)
    )
    trainer.train(resumed)
    losses = _losses_by_step(cut.model_dir)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([losses[s] for s in range(1, 7)], reference[0][:6], rtol=1e-5)
    saved = checkpointing.Checkpointer(cut.model_dir, read_only=True)
    assert saved.all_steps() == [0, 2, 4, 5, 6]  # step 0, every 2nd, the newest 2
    positions = pathlib.Path(cut.model_dir, checkpointing.INPUT_POSITIONS)
    assert sorted(int(p.name) for p in positions.iterdir()) == [0, 2, 4, 5, 6]  # pruned alike
    tx, _ = optimizers.make_optimizer(cut.optimizer)
    abstract = train_state.abstract_state(MODEL, tx)
    (params4, _), data_state, meta = saved.restore(4, abstract)
    assert meta["step"] == 4 and data_state == {"batches_consumed": 4}
    # Initialization from checkpoints/4: steps 5 and 6 only, from fresh data.
    init = dataclasses.replace(
        cut,
        model_dir=str(tmp_path / "init"),
        train_steps=6,
        initial_checkpoint_path=f"{cut.model_dir}/checkpoints/4",
    )
    trainer.train(init)
    assert sorted(_losses_by_step(init.model_dir)) == [5, 6]
    started = checkpointing.Checkpointer(init.model_dir, read_only=True)
    assert started.all_steps() == [4, 5, 6]
    (params, opt_state), data_state, _ = started.restore(4, abstract)
    for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(params4), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert data_state == {"batches_consumed": 0}  # fresh data, fresh optimizer state
    assert all(not np.any(np.asarray(v)) for v in jax.tree.leaves(opt_state))


def test_initialization_from_a_converted_model_dir(tmp_path, reference):
    """A MODEL_DIR as `flanjax convert --from hf` writes it (params, no opt_state):
    training starts from its parameters; compute dtype may differ, the
    architecture may not."""
    params = reference[1].params
    checkpointing.save_model(str(tmp_path / "converted"), MODEL, params)
    cfg = _config(
        tmp_path,
        model=dataclasses.replace(MODEL, dtype="bfloat16"),
        train_steps=1,
        mesh=partitioning.MeshConfig(data=8),
        initial_checkpoint_path=str(tmp_path / "converted"),
    )
    trainer.train(cfg)
    tx, _ = optimizers.make_optimizer(cfg.optimizer)
    abstract = train_state.abstract_state(cfg.model, tx)
    restored = checkpointing.Checkpointer(cfg.model_dir, read_only=True).restore(0, abstract)
    for x, y in zip(jax.tree.leaves(restored[0][0]), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    other = dataclasses.replace(
        cfg, model_dir=str(tmp_path / "other"), model=dataclasses.replace(MODEL, d_ff=128)
    )
    with pytest.raises(ValueError, match=r"different model config.*'d_ff': \(64, 128\)"):
        trainer.train(other)


def test_scanned_run_from_an_unscanned_checkpoint_follows_the_reference(tmp_path, reference):
    """scan_layers=True on fsdp=2 x tensor=4, initialized from a checkpoint in the
    unrolled layout (restacked on the devices): the 1-device unrolled run's losses."""
    losses, init = reference
    checkpointing.save_model(str(tmp_path / "converted"), MODEL, init.params)
    cfg = _config(
        tmp_path,
        model=dataclasses.replace(MODEL, scan_layers=True),
        train_steps=3,
        mesh=partitioning.MeshConfig(data=1, fsdp=2, tensor=4),
        initial_checkpoint_path=str(tmp_path / "converted"),
    )
    trainer.train(cfg)
    got = _losses_by_step(cfg.model_dir)
    np.testing.assert_allclose([got[s] for s in (1, 2, 3)], losses[:3], rtol=1e-5)
    tx, _ = optimizers.make_optimizer(cfg.optimizer)
    abstract = train_state.abstract_state(cfg.model, tx)
    (params, _), _, _ = checkpointing.Checkpointer(cfg.model_dir, read_only=True).restore(
        0, abstract
    )
    stacked = params["decoder_layers"]["mlp"]["wi_0"][...]
    assert stacked.shape == (1, 32, 64)
    np.testing.assert_array_equal(stacked[0], init.params["decoder_layers"][0]["mlp"]["wi_0"][...])


def test_model_config_check_ignores_compute_fields():
    meta = {"model": checkpointing.model_config_to_json(MODEL)}
    fast = dataclasses.replace(MODEL, dtype="bfloat16", remat_policy="full", dropout_rate=0.1)
    checkpointing.check_same_model(meta, fast, "d")  # compute-only fields may differ
    with pytest.raises(ValueError, match=r"'d_ff': \(64, 128\)"):
        checkpointing.check_same_model(meta, dataclasses.replace(MODEL, d_ff=128), "d")
    old = {"family": "t5", "config": {**dataclasses.asdict(MODEL), "remat": True}}
    del old["config"]["remat_policy"]  # a checkpoint from before remat_policy
    assert checkpointing.model_config_from_json(old).remat_policy == "full"


def _grads(model, batch, cfg: LossConfig, microbatches: int, params):
    graphdef = train_state.graphdef_of(model, partitioning.DEFAULT_RULES)

    @jax.jit
    def fn(params, batch):
        w, denom = loss_weights(batch, cfg)
        g, terms = accumulate_gradients(params, graphdef, batch, w, None, cfg.z_loss, microbatches)
        return jax.tree.map(lambda x: x / denom, g), terms["loss_sum"] / denom

    return fn(params, {k: jnp.asarray(v) for k, v in batch.items()})


SEQUENCES = LossConfig(normalization="sequences")


@pytest.fixture(scope="module")
def sequence_grads(batches, reference):
    """Gradients of the per-sequence-normalized loss of one batch, in one piece."""
    return _grads(MODEL, batches[0], SEQUENCES, 1, reference[1].params)


def test_microbatched_gradients_equal_full_batch(batches, reference, sequence_grads):
    """Per-sequence normalization over 4 microbatches: the full batch's gradient.
    (Per-token normalization is covered by the 20-step run above.)"""
    full, loss = sequence_grads
    micro, loss4 = _grads(MODEL, batches[0], SEQUENCES, 4, reference[1].params)
    np.testing.assert_allclose(loss4, loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(micro), jax.tree.leaves(full), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_loss_normalization_modes():
    # Two rows; row 0 packs a 3-token and a 1-token example, row 1 one 2-token example.
    batch = {
        "decoder_target_tokens": jnp.array([[5, 6, 7, 8, 0], [9, 9, 0, 0, 0]]),
        "decoder_loss_weights": jnp.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]),
        "decoder_segment_ids": jnp.array([[1, 1, 1, 2, 0], [1, 1, 0, 0, 0]]),
    }
    w, denom = loss_weights(batch, LossConfig())
    assert float(denom) == 6 and w.tolist()[0] == [1, 1, 1, 1, 0]
    w, denom = loss_weights(batch, LossConfig(normalization="sequences"))
    np.testing.assert_allclose(w, [[1 / 3, 1 / 3, 1 / 3, 1, 0], [0.5, 0.5, 0, 0, 0]], rtol=1e-6)
    assert float(denom) == pytest.approx(3.0)  # three sequences
    w, denom = loss_weights(batch, LossConfig(loss_normalizing_factor=128.0))
    assert float(denom) == 128 and float(w.sum()) == 6
    with pytest.raises(ValueError, match="needs loss_normalizing_factor"):
        LossConfig(normalization="fixed")


def test_remat_policies_give_the_same_gradients(batches, reference, sequence_grads):
    base, _ = sequence_grads
    for policy in ("full", "dots", "dots_no_batch"):
        model = dataclasses.replace(MODEL, remat_policy=policy)
        g, _ = _grads(model, batches[0], SEQUENCES, 1, reference[1].params)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(base), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=policy)
    with pytest.raises(ValueError, match="remat_policy"):
        dataclasses.replace(MODEL, remat_policy="some")


def test_gqa_with_three_kv_heads_shards_on_tensor_2():
    """SmolLM2's 9 query / 3 key-value heads on tensor=2: the heads stay replicated
    (9 and 3 do not divide by 2), the MLP and vocabulary shard."""
    cfg = DecoderConfig(vocab_size=256, d_model=48, num_layers=1, num_heads=9,
                        num_kv_heads=3, head_dim=8, d_ff=64)  # fmt: skip
    mesh_cfg = partitioning.MeshConfig(data=4, tensor=2)
    mesh = partitioning.make_mesh(mesh_cfg)
    tx, _ = optimizers.make_optimizer(optimizers.OptimizerConfig(name="adamw"))
    shardings = train_state.state_shardings(train_state.abstract_state(cfg, tx), mesh,
                                            mesh_cfg.rules)  # fmt: skip
    layer = shardings.params["decoder_layers"][0]
    assert layer["attn"]["key"].value.spec == partitioning.P("fsdp", None, None)
    assert layer["attn"]["query"].value.spec == partitioning.P("fsdp", None, None)
    assert layer["mlp"]["gate"].value.spec == partitioning.P("fsdp", "tensor")
    rules = dict(mesh_cfg.rules)
    assert rules["kv_heads"] == "tensor" and rules["heads"] == "tensor"


def test_mesh_config_and_data_layout():
    with pytest.raises(ValueError, match="needs 16 devices, but 8 are available"):
        partitioning.MeshConfig(data=8, fsdp=2).shape(8)
    assert partitioning.MeshConfig(data=-1, tensor=2).shape(8) == (1, 4, 1, 2)
    assert partitioning.MeshConfig(replica=2, data=-1, fsdp=2).shape(8) == (2, 2, 2, 1)
    mesh = partitioning.make_mesh(partitioning.MeshConfig(replica=2, data=2, fsdp=2))
    assert mesh.axis_names == partitioning.MESH_AXES
    assert partitioning.data_layout(mesh, partitioning.DEFAULT_RULES, 16) == (0, 1)
    with pytest.raises(ValueError, match="microbatches"):
        trainer.check_microbatches(_config(pathlib.Path("/tmp"), microbatches=3), mesh)
