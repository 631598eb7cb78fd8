"""LoRA: exact base logits at step 0, merged = base + adapters, a frozen base, adapter-only
optimizer state and checkpoints, mesh invariance, exact resume, and a PEFT export that
Hugging Face `peft` loads onto the real SmolLM2 (its first two layers) with flanjax's logits."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import flanjax.tasks  # noqa: F401
from flanjax import (
    checkpointing,
    lora_state,
    model_loading,
    optimizers,
    partitioning,
    train_state,
    trainer,
)
from flanjax.conversion import hf
from flanjax.conversion import peft as peft_export
from flanjax.data.pipeline import BatchIterator, DataConfig
from flanjax.evaluation import evaluator
from flanjax.models import DecoderConfig, LoraConfig, T5Config, create_model, layer_stack
from flanjax.models.lora import LoraParam

MODEL = T5Config(
    vocab_size=384,
    d_model=32,
    num_heads=2,
    head_dim=16,
    d_ff=64,
    num_encoder_layers=1,
    num_decoder_layers=1,
)  # fmt: skip  (gin_configs/models/t5_micro.gin's sizes)
DECODER = DecoderConfig(
    vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, d_ff=64
)
LORA = LoraConfig(rank=4, alpha=8.0, targets=("q", "k", "v", "o", "cross_q", "cross_v", "wi", "wo"))
DATA = DataConfig("builtin.train_without_comparison", {"inputs": 64, "targets": 16}, batch_size=8)
ADAMW = optimizers.OptimizerConfig(name="adamw", learning_rate=1e-2)


def _models(cfg, lora_cfg):
    """(base model, LoRA model carrying the base's weights), both without eager sharding."""
    with nnx.use_eager_sharding(False):
        base = create_model(cfg, nnx.Rngs(params=1))
        adapted = create_model(cfg, nnx.Rngs(params=2), lora_cfg)
    nnx.update(adapted, nnx.state(base, nnx.Param))
    return base, adapted


@nnx.jit
def _t5_logits(model, enc_BxL, dec_BxT):
    return model(enc_BxL, dec_BxT)


@nnx.jit
def _decoder_logits(model, tokens_BxT):
    return model(tokens_BxT)


def test_zero_b_gives_base_logits_exactly_and_merged_weights_match():
    """T5 (self- and cross-attention, MLP) and a scanned Llama-family decoder (every
    projection): B = 0 computes the base exactly; with B != 0 the merged weights give the
    logits of base + adapters, and targets a family lacks are refused."""
    enc, dec = jnp.array([[5, 6, 7, 9, 0]]), jnp.array([[0, 3, 4, 8]])
    llama_lora = LoraConfig(rank=2, targets=("q", "k", "v", "o", "gate", "up", "down"))
    scanned = dataclasses.replace(DECODER, scan_layers=True)
    cases = [
        (MODEL, LORA, lambda m: _t5_logits(m, enc, dec)),
        (scanned, llama_lora, lambda m: _decoder_logits(m, dec)),
    ]
    for cfg, lora_cfg, logits in cases:
        base, adapted = _models(cfg, lora_cfg)
        np.testing.assert_array_equal(logits(adapted), logits(base))
        adapters = nnx.state(adapted, LoraParam)
        leaves, tree = jax.tree.flatten(adapters)
        keys = jax.random.split(jax.random.key(0), len(leaves))
        noisy = [0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
        nnx.update(adapted, jax.tree.unflatten(tree, noisy))
        merged = model_loading.merge(
            nnx.state(base, nnx.Param), nnx.state(adapted, LoraParam), lora_cfg, cfg
        )
        want = logits(adapted)
        assert float(jnp.abs(want - logits(base)).max()) > 1e-2  # the adapters do something
        nnx.update(base, merged)
        np.testing.assert_allclose(logits(base), want, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\['gate'\] do not exist in a T5 model"):
        _models(MODEL, LoraConfig(rank=2, targets=("q", "gate")))


@pytest.fixture(scope="module")
def batches() -> list[dict[str, np.ndarray]]:
    data = BatchIterator(DATA)
    return [next(data) for _ in range(3)]


def _train_steps(cfg, devices, base_params, adapters, batches):
    """(losses, final adapter state, base on the host after training) of LoRA steps."""
    mesh = partitioning.make_mesh(cfg.mesh, devices)
    rules = cfg.mesh.rules
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    with jax.set_mesh(mesh):
        abstract = lora_state.abstract_state(cfg.model, cfg.lora, tx)
        shardings = train_state.state_shardings(abstract, mesh, rules)
        state = jax.device_put(train_state.TrainState(
            jnp.zeros((), jnp.int32), adapters, tx.init(adapters)), shardings)  # fmt: skip
        abs_base = train_state.abstract_params(cfg.model)
        base = jax.device_put(base_params, train_state.param_shardings(abs_base, mesh, rules))
        step = trainer.compile_train_step(cfg, tx, schedule, mesh, shardings, frozen=base)
        losses = []
        for b in batches:
            state, metrics = step(state, partitioning.host_local_batch(mesh, rules, b))
            losses.append(float(metrics["loss"]))
    return np.array(losses), jax.device_get(state), jax.device_get(base)


def test_only_adapters_train_and_an_fsdp_tensor_mesh_gives_the_same_loss(tmp_path, batches):
    """3 AdamW steps: on one device, and scanned + remat + 2 microbatches on fsdp=4 x
    tensor=2: equal losses; the base (not donated) is bitwise unchanged; every
    optimizer-state array belongs to an adapter."""
    base_model, adapted = _models(MODEL, LORA)
    base_params = jax.device_get(nnx.state(base_model, nnx.Param))
    adapters = jax.device_get(nnx.state(adapted, LoraParam))
    one = trainer.TrainConfig(
        model_dir=str(tmp_path), data=DATA, model=MODEL, train_steps=3, optimizer=ADAMW,
        mesh=partitioning.MeshConfig(data=1), lora=LORA,
    )  # fmt: skip
    losses, state, base_after = _train_steps(one, jax.devices()[:1], base_params, adapters, batches)
    assert losses[-1] < losses[0]
    for x, y in zip(jax.tree.leaves(base_after), jax.tree.leaves(base_params), strict=True):
        np.testing.assert_array_equal(x, y)
    for kp, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state):
        path = jax.tree_util.keystr(kp)
        assert "_lora" in path or leaf.ndim == 0, path  # adapter moments, or a step count
    moments = sum(x.size for x in jax.tree.leaves(state.opt_state) if x.ndim)
    assert moments == 2 * lora_state.count(adapters)  # AdamW's mu and nu of the adapters

    scanned = dataclasses.replace(MODEL, scan_layers=True, remat_policy="full")
    names = layer_stack.STACK_NAMES
    stacked_adapters = train_state.abstract_adapters(scanned, LORA)
    nnx.replace_by_pure_dict(
        stacked_adapters, layer_stack.stack_params(adapters.to_pure_dict(), names)
    )
    mesh_cfg = dataclasses.replace(
        one, model=scanned, microbatches=2, mesh=partitioning.MeshConfig(data=1, fsdp=4, tensor=2)
    )
    mesh_losses, _, _ = _train_steps(
        mesh_cfg,
        jax.devices(),
        train_state.restack(base_params, scanned),
        stacked_adapters,
        batches,
    )
    np.testing.assert_allclose(mesh_losses, losses, rtol=2e-5)


def _losses_by_step(model_dir: str) -> dict[int, float]:
    path = os.path.join(model_dir, "train_metrics.jsonl")
    with open(path) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def _restore_adapters(model_dir: str, step: int, cfg: trainer.TrainConfig):
    tx, _ = optimizers.make_optimizer(cfg.optimizer)
    abstract = lora_state.abstract_state(cfg.model, cfg.lora, tx)
    ckpt = checkpointing.Checkpointer(model_dir, read_only=True)
    (params, opt_state), _, meta = ckpt.restore(step, abstract)
    return params, opt_state, meta


def test_lora_run_resumes_exactly_checkpoints_adapters_and_evaluates_merged(tmp_path, batches):
    """A LoRA run from a base MODEL_DIR: 4 steps straight, and 2 + resume to 4, give the
    same losses and adapters; checkpoints hold the adapters (a fraction of the base's
    size) and point at the base; another LoraConfig, a full fine-tune and another base
    are refused; the evaluator's merged model gives base + adapters' logits."""
    base_model, _ = _models(MODEL, None)
    base_dir = tmp_path / "base"
    checkpointing.save_model(str(base_dir), MODEL, jax.device_get(nnx.state(base_model, nnx.Param)))
    run = trainer.TrainConfig(
        model_dir=str(tmp_path / "straight"), data=DATA, model=MODEL, train_steps=4,
        optimizer=ADAMW, lora=LORA, initial_checkpoint_path=str(base_dir), log_every=1,
        show_progress=False, mesh=partitioning.MeshConfig(data=2, fsdp=2, tensor=2),
        checkpoint=checkpointing.CheckpointConfig(save_every=2, async_save=False),
    )  # fmt: skip
    trainer.train(run)
    cut = dataclasses.replace(run, model_dir=str(tmp_path / "cut"), train_steps=2)
    trainer.train(cut)
    trainer.train(dataclasses.replace(cut, train_steps=4, initial_checkpoint_path=None))
    straight, resumed = _losses_by_step(run.model_dir), _losses_by_step(cut.model_dir)
    assert sorted(straight) == sorted(resumed) == [1, 2, 3, 4]
    np.testing.assert_allclose(
        [resumed[s] for s in range(1, 5)], [straight[s] for s in range(1, 5)], rtol=1e-6
    )
    params, _, meta = _restore_adapters(run.model_dir, 4, run)
    params_cut, _, _ = _restore_adapters(cut.model_dir, 4, run)
    for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(params_cut), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert meta["lora"]["base"] == {"path": str(base_dir), "step": 0}
    assert all(
        "_lora" in jax.tree_util.keystr(kp) for kp, _ in jax.tree_util.tree_leaves_with_path(params)
    )
    assert lora_state.count(params) < 0.15 * lora_state.count(nnx.state(base_model, nnx.Param))

    with pytest.raises(ValueError, match=r"different LoraConfig.*'rank': \(4, 8\)"):
        trainer.train(
            dataclasses.replace(run, lora=dataclasses.replace(LORA, rank=8), train_steps=5)
        )
    with pytest.raises(ValueError, match="holds a LoRA run's adapters, but full fine-tuning"):
        trainer.train(dataclasses.replace(run, lora=LoraConfig(), train_steps=5))
    with pytest.raises(ValueError, match="adapters of the base"):
        trainer.train(
            dataclasses.replace(run, initial_checkpoint_path=run.model_dir, train_steps=5)
        )

    merged, _ = evaluator.load_model(run.model_dir, 4)
    _, adapted = _models(MODEL, LORA)
    nnx.update(adapted, nnx.state(base_model, nnx.Param))
    nnx.update(adapted, jax.device_get(params))
    enc, dec = jnp.array([[5, 6, 7, 9, 0]]), jnp.array([[0, 3, 4, 8]])
    want = _t5_logits(adapted, enc, dec)
    assert float(jnp.abs(want - _t5_logits(base_model, enc, dec)).max()) > 1e-3
    np.testing.assert_allclose(_t5_logits(merged, enc, dec), want, atol=2e-5, rtol=1e-5)


@pytest.mark.slow
def test_peft_export_of_a_smollm2_lora_run_loads_in_peft_with_flanjax_logits(
    smollm2_two_layers_dir, tmp_path
):
    """The real SmolLM2 (its first two layers: every tensor name, shape and projection
    the export maps): `convert --from hf`, one LoRA step on every projection, then the
    PEFT folder on the transformers base and the merged `convert --to hf` export both give
    flanjax's logits (float32); the adapters move the logits well beyond the tolerance."""
    smollm2_dir = smollm2_two_layers_dir
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    base_dir = tmp_path / "smollm2"
    hf.convert_from_hf(str(smollm2_dir), str(base_dir))
    lora_cfg = LoraConfig(rank=4, alpha=8.0, targets=("q", "k", "v", "o", "gate", "up", "down"))
    run = trainer.TrainConfig(
        model_dir=str(tmp_path / "lora"), model=None, train_steps=1, lora=lora_cfg,
        data=DataConfig(
            DATA.mixture_or_task_name, {"inputs": 24, "targets": 8}, batch_size=2,
            feature_converter="auto",
        ),
        optimizer=ADAMW, initial_checkpoint_path=str(base_dir),
        mesh=partitioning.MeshConfig(data=2, tensor=4),
        checkpoint=checkpointing.CheckpointConfig(save_initial=False, async_save=False),
        log_every=1, show_progress=False,
    )  # fmt: skip
    trainer.train(run)
    peft_dir = peft_export.export_peft(run.model_dir, str(tmp_path / "peft"))
    merged_dir = hf.convert_to_hf(run.model_dir, str(tmp_path / "merged_hf"))

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(smollm2_dir))
    ids = tokenizer("The capital of France is Paris, and the capital of Italy is")["input_ids"]
    model, _ = evaluator.load_model(run.model_dir, 1)
    ours = np.asarray(_decoder_logits(model, jnp.asarray([ids])))
    with torch.no_grad():
        hf_base = transformers.AutoModelForCausalLM.from_pretrained(
            str(smollm2_dir), dtype=torch.float32
        )
        base = hf_base(torch.tensor([ids])).logits.numpy()
        adapted = peft.PeftModel.from_pretrained(hf_base, peft_dir).eval()
        theirs = adapted(torch.tensor([ids])).logits.numpy()
        exported = transformers.AutoModelForCausalLM.from_pretrained(
            merged_dir, dtype=torch.float32
        )
        merged = exported(torch.tensor([ids])).logits.numpy()
    assert np.abs(ours - base).max() > 0.05
    np.testing.assert_allclose(theirs, ours, atol=2e-3)
    np.testing.assert_allclose(merged, ours, atol=2e-3)
