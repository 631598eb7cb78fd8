"""The analytic training FLOP count (flanjax/flops.py) against XLA's own count.

`jax.jit(train_step).lower(...).compile().cost_analysis()['flops']` counts every
operation of the compiled step on one CPU device; the analytic count is matmuls
only (3x the forward's). The margin, MARGIN = 5%, covers what XLA counts and
flops.py leaves out (measured: XLA counts 2.5% more for T5, 1.5% more for the
prefix-LM decoder, at d_model 256, d_ff 1024 and 64-192 tokens per row):

- elementwise work: norms, activations, softmax, masks, dropout-free residuals,
  the cross-entropy and z-loss, and their gradients (a few dozen FLOPs per
  activation element, against about 6 * d_model per element for the matmuls);
- the optimizer update (tens of FLOPs per parameter, against 6 x tokens);
- T5's relative position bias, computed as a one-hot matmul over the buckets
  (2 x L^2 x buckets x heads per layer, small against attention).

XLA may also count less than the analytic formula where it folds or skips work
(e.g. no gradient for the input embedding lookup), so the check is two-sided:
|XLA / analytic - 1| < MARGIN. The measured ratios are printed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flanjax import flops, optimizers, partitioning, train_state, trainer
from flanjax.data.pipeline import DataConfig
from flanjax.models.llama import DecoderConfig
from flanjax.models.t5 import T5Config

MARGIN = 0.05
B, LI, LT = 4, 128, 64  # rows, input length, target length
T5 = T5Config(vocab_size=512, d_model=256, num_heads=4, head_dim=64, d_ff=1024,
              num_encoder_layers=1, num_decoder_layers=1)  # fmt: skip
LLAMA = DecoderConfig(vocab_size=512, d_model=256, num_layers=1, num_heads=4, num_kv_heads=2,
                      head_dim=64, d_ff=1024, attention="prefix")  # fmt: skip


def _batch(model) -> dict[str, jax.ShapeDtypeStruct]:
    i32 = lambda n: jax.ShapeDtypeStruct((B, n), jnp.int32)  # noqa: E731
    if isinstance(model, T5Config):
        keys = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights")
        return {"encoder_input_tokens": i32(LI), **{k: i32(LT) for k in keys}}
    keys = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights",
            "decoder_causal_attention")  # fmt: skip
    return {k: i32(LI + LT) for k in keys}


def _xla_flops(model) -> float:
    """XLA's FLOP count of the trainer's jitted step on one device."""
    cfg = trainer.TrainConfig(
        model_dir="unused",
        data=DataConfig("unused", {"inputs": LI, "targets": LT}, B),
        model=model,
        train_steps=1,
        mesh=partitioning.MeshConfig(data=1),
    )
    mesh = partitioning.make_mesh(cfg.mesh, jax.devices()[:1])
    tx, schedule = optimizers.make_optimizer(cfg.optimizer)
    with jax.set_mesh(mesh):
        abstract = train_state.abstract_state(model, tx, cfg.seed)
        shardings = train_state.state_shardings(abstract, mesh, cfg.mesh.rules)
        state = train_state.with_shardings(abstract, shardings)
        step = trainer.compile_train_step(cfg, tx, schedule, mesh, shardings, donate=False)
        # LLVM's optimization level changes no HLO (the count), only compile time.
        options = {"xla_backend_optimization_level": 0}
        compiled = step.lower(state, _batch(model)).compile(compiler_options=options)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


@pytest.mark.parametrize("model", [T5, LLAMA], ids=["t5", "llama-prefix-lm"])
def test_analytic_flops_match_xla(model):
    if isinstance(model, T5Config):
        analytic = flops.train_step_flops(model, B, LT, LI)
    else:
        analytic = flops.train_step_flops(model, B, LI + LT)
    assert analytic == flops.batch_flops(model, {k: v.shape for k, v in _batch(model).items()})
    measured = _xla_flops(model)
    ratio = measured / analytic
    print(f"{type(model).__name__}: XLA {measured:.4g} / analytic {analytic:.4g} = {ratio:.4f}")
    assert abs(ratio - 1) < MARGIN


def test_causal_factor_halves_only_the_score_term():
    full = flops.decoder_flops_per_token(LLAMA, 1024)
    half = flops.decoder_flops_per_token(LLAMA, 1024, causal_factor=0.5)
    attention = 12 * LLAMA.num_layers * LLAMA.num_heads * LLAMA.head_dim * 1024
    np.testing.assert_allclose(full - half, attention / 2)
    assert full - attention == 6 * flops.decoder_matmul_params(LLAMA)


def test_mfu_from_the_device_peak():
    class FakeDevice:
        device_kind = "NVIDIA H100 80GB HBM3"

    assert flops.peak_flops(FakeDevice()) == 989e12
    assert flops.mfu(989e12, FakeDevice()) == pytest.approx(1 / jax.device_count())
    assert flops.mfu(1e12) is None  # CPU: no known peak
