"""The benchmark harness: synthetic batch layout, and one tiny timed run on CPU."""

import math

import numpy as np

from flanjax import partitioning
from flanjax.models.t5 import T5Config
from flanjax.perf import benchmarking

TINY = T5Config(
    vocab_size=128, d_model=32, num_heads=2, head_dim=16, d_ff=64,
    num_encoder_layers=1, num_decoder_layers=1,
)  # fmt: skip


def test_synthetic_packed_batch_layout():
    cfg = benchmarking.BenchConfig(
        TINY, {"inputs": 12, "targets": 8}, batch_size=2, examples_per_row=3
    )
    b = benchmarking.synthetic_batch(cfg)
    assert b["encoder_input_tokens"].shape == (2, 12) and b["decoder_target_tokens"].shape == (2, 8)
    for row in range(2):
        seg, pos = b["decoder_segment_ids"][row], b["decoder_positions"][row]
        assert sorted(set(seg)) == [1, 2, 3] and set(b["encoder_segment_ids"][row]) == {1, 2, 3}
        starts = np.flatnonzero(pos == 0)
        assert list(seg[starts]) == [1, 2, 3]
        # Decoder inputs are the targets shifted right within each segment, 0 at its start.
        tgt, dec_in = b["decoder_target_tokens"][row], b["decoder_input_tokens"][row]
        for i in range(8):
            assert dec_in[i] == (0 if pos[i] == 0 else tgt[i - 1])
    assert (b["encoder_input_tokens"] >= 2).all()  # every position is a real token


def test_unpacked_batch_has_no_segments():
    cfg = benchmarking.BenchConfig(TINY, {"inputs": 12, "targets": 8}, batch_size=2, pack=False)
    keys = {"encoder_input_tokens", "decoder_target_tokens", "decoder_input_tokens"}
    assert set(benchmarking.synthetic_batch(cfg)) == keys | {"decoder_loss_weights"}


def test_run_reports_finite_figures():
    cfg = benchmarking.BenchConfig(
        TINY, {"inputs": 16, "targets": 8}, batch_size=8, steps=2, warmup_steps=1,
        mesh=partitioning.MeshConfig(data=8),
    )  # fmt: skip
    row = benchmarking.run(cfg)
    assert row["device"] == "8 x cpu"
    for key in ("step_time_s", "tokens_per_s", "flops_per_step", "compile_s", "final_loss"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert math.isnan(row["mfu"])  # no bf16 peak for a CPU
    assert row["tokens_per_s"] == (8 * 24) / row["step_time_s"]


def test_analytic_flops_match_the_compiler_count():
    """The row's analytic FLOPs (matmuls only) against XLA's count of the whole step, which
    adds elementwise work, the loss and Adafactor's update: within 25% at this small size
    (d_model 64, where the non-matmul share is largest), and never above it."""
    model = T5Config(
        vocab_size=256, d_model=64, num_heads=2, head_dim=32, d_ff=128,
        num_encoder_layers=2, num_decoder_layers=2,
    )  # fmt: skip
    cfg = benchmarking.BenchConfig(
        model, {"inputs": 32, "targets": 16}, batch_size=4, steps=1, warmup_steps=0,
        mesh=partitioning.MeshConfig(data=1),
    )  # fmt: skip
    row = benchmarking.run(cfg)
    ratio = row["compiler_flops_per_step"] / row["flops_per_step"]
    assert 1.0 <= ratio < 1.25, ratio
