"""compile-check: AOT compiles for TPU topologies on a CPU-only machine (needs libtpu,
the `tpu` extra), the memory-fit refusal, and the HLO/FLOP bookkeeping."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("libtpu", reason="TPU topologies need libtpu: pip install 'flanjax[tpu]'")

from flanjax import cli
from flanjax.perf import compile_check, hlo_analysis, roofline, tpu_topologies

T5_TINY = [
    "--gin_file=models/t5_1_1_tiny.gin",
    "--gin_file=runs/finetune.gin",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}",
    "--gin.BATCH_SIZE=8",
]
# The 8B decoder's file, shrunk: same code path (prefix LM, GQA, untied head).
LLAMA_TINY = [
    "--gin_file=models/llama_8b.gin",
    "--gin_file=runs/finetune.gin",
    "--gin.DecoderConfig.vocab_size=512",
    "--gin.DecoderConfig.d_model=128",
    "--gin.DecoderConfig.num_layers=1",
    "--gin.DecoderConfig.num_heads=4",
    "--gin.DecoderConfig.num_kv_heads=2",
    "--gin.DecoderConfig.head_dim=32",
    "--gin.DecoderConfig.d_ff=256",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 48, 'targets': 16}",
    "--gin.BATCH_SIZE=8",
]


def _check(tmp_path, argv: list[str]) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    rc = cli.main(["compile-check", *argv, f"--json={out}"])
    return rc, json.loads(out.read_text())


def _assert_step(step: dict, hbm: int, ici: float) -> None:
    mem = step["memory"]
    for key in ("argument", "output", "alias", "temp", "generated_code", "total", "margin"):
        assert isinstance(mem[key], int), key
    assert mem["hbm"] == hbm and mem["verdict"] == "FITS" and mem["margin"] == hbm - mem["total"]
    flops = step["flops"]
    assert flops["compiler_per_device"] > 0 and flops["analytic_total"] > 0
    # matmuls dominate; the compiler adds elementwise work, the optimizer, the loss
    assert -0.1 < flops["compiler_vs_analytic"] < 0.3, flops
    assert set(step["collectives"]) == set(hlo_analysis.COLLECTIVES)
    roof = step["roofline"]
    local = max(roof["compute_s"], roof["memory_s"])
    traffic = sum(c["traffic"] for c in step["collectives"].values())
    assert roof["collective_s"] == traffic / (ici / 2) > 0
    assert roof["step_s"] == pytest.approx(local + roof["collective_s"]) and local > 0
    assert roof["step_overlap_s"] == max(local, roof["collective_s"])
    assert 0 < roof["mfu"] <= roof["mfu_overlap"] <= roof["mfu_no_collectives"] <= 1
    assert step["compile_s"] > 0


def test_t5_tiny_on_v5e(tmp_path, capsys):
    rc, report = _check(tmp_path, [*T5_TINY, "--gin.MeshConfig.fsdp=2", "--topology=v5e:2x2"])
    text = capsys.readouterr().out
    assert rc == 0 and report["verdict"] == "FITS" and "verdict       FITS" in text
    assert report["devices"] == 4 and report["device_kind"] == "TPU v5 lite"
    assert report["mesh"]["fsdp"] == 2 and report["chip"]["name"] == "v5e"
    for key in ("train_step", "score_step"):
        _assert_step(report[key], 16 * 2**30, 400e9)
    train = report["train_step"]
    assert train["memory"]["alias"] > 0  # the donated state
    assert train["collectives"]["all-gather"]["count"] > 0  # FSDP gathers parameters
    assert train["collectives"]["all-reduce"]["bytes"] > 0
    assert report["score_step"]["num_choices"] == 4


def test_scanned_t5_on_v6e_counts_flops_of_every_layer(tmp_path, capsys):
    """Scanned layers compile for the TPU too; XLA counts a loop body once, so the
    FLOPs come from unrolled compiles at depth 1 and 2 (raw, the tiny model's count
    is 44% short) and match the analytic count as the unrolled model's do."""
    argv = [*T5_TINY, "--gin.T5Config.scan_layers=True", "--topology=v6e:2x2"]
    rc, report = _check(tmp_path, [*argv, "--no_score_step"])
    assert rc == 0 and report["verdict"] == "FITS" and report["scanned_layers"] is True
    assert "FLOPs and bytes are the unrolled program's" in capsys.readouterr().out
    _assert_step(report["train_step"], 32 * 2**30, 800e9)
    assert report["train_step"]["unrolled_cost_s"] > 0


def test_llama_tiny_on_v4_megacore(tmp_path):
    argv = [*LLAMA_TINY, "--gin.MeshConfig.tensor=2", "--topology=v4-8"]  # v4:2x2x1
    rc, report = _check(tmp_path, argv)
    assert rc == 0 and report["model"] == "DecoderConfig"
    assert report["devices"] == 4 and report["device_kind"] == "TPU v4"  # one device per chip
    assert report["feature_lengths"]["decoder_target_tokens"] == 64  # inputs + targets
    for key in ("train_step", "score_step"):
        _assert_step(report[key], 32 * 2**30, 300e9)


def test_oversized_config_does_not_fit(tmp_path, capsys):
    """T5-XXL's widths (one layer each side) on a v5e-4 with long sequences: the TPU
    compiler refuses it; compile-check says so and exits 1, `compile_fitting` raises
    MemoryFitError with the knobs."""
    argv = [
        "--gin_file=models/t5_1_1_xxl.gin",
        "--gin_file=runs/finetune.gin",
        "--gin.T5Config.num_encoder_layers=1",
        "--gin.T5Config.num_decoder_layers=1",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 2048, 'targets': 512}",
        "--gin.BATCH_SIZE=16",
        "--topology=v5e:2x2",
        "--no_score_step",
        "--no_oom_breakdown",
    ]
    rc, report = _check(tmp_path, argv)
    assert rc == 1 and report["verdict"] == "DOES NOT FIT"
    assert "Ran out of memory" in report["train_step"]["compiler_error"]
    assert "DOES NOT FIT" in capsys.readouterr().out

    cfg = compile_check.CheckConfig(train=_train_config(argv), topology="v5e:2x2")
    target = compile_check.make_target(cfg)
    lengths = compile_check.model_lengths(cfg.train)
    lowered, _ = compile_check._lower_train(cfg, target.mesh, lengths)
    with pytest.raises(compile_check.MemoryFitError) as e:
        compile_check.compile_fitting(lowered, target.devices[0].device_kind)
    msg = str(e.value)
    assert "does not fit in 16.00 GiB" in msg and "Ran out of memory" in msg
    for knob in ("MeshConfig.fsdp", "remat", "microbatch"):
        assert knob in msg


def test_check_fits_names_sizes_and_knobs():
    class Stats:
        argument_size_in_bytes, output_size_in_bytes, alias_size_in_bytes = (
            12 << 30,
            12 << 30,
            12 << 30,
        )
        temp_size_in_bytes, generated_code_size_in_bytes = 6 << 30, 1 << 20

    class Compiled:
        def memory_analysis(self):
            return Stats()

    report = compile_check.check_fits(Compiled(), "TPU v5")  # v5p: 95 GiB
    assert report.fits and report.total == (18 << 30) + (1 << 20)
    with pytest.raises(compile_check.MemoryFitError) as e:
        compile_check.check_fits(Compiled(), "TPU v5 lite")  # v5e: 16 GiB
    msg = str(e.value)
    assert "18.00 GiB of 16.00 GiB" in msg and "DOES NOT FIT" in msg
    assert "arguments 12.00 GiB" in msg and "temporaries 6.00 GiB" in msg
    assert msg.index("MeshConfig.fsdp") < msg.index("remat")  # arguments dominate
    assert e.value.report.margin == -(2 << 30) - (1 << 20)
    with pytest.raises(compile_check.MemoryFitError):
        compile_check.check_fits(Compiled(), 10 << 30)


def _train_config(argv: list[str]):
    from flanjax import gin_launch, trainer
    from flanjax.commands import compile_check as command

    gin_files = [a.split("=", 1)[1] for a in argv if a.startswith("--gin_file=")]
    bindings = [a[len("--gin.") :] for a in argv if a.startswith("--gin.")]
    gin_launch.parse(gin_files, [f"{k}={v}" for k, v in command.PLACEHOLDERS.items()] + bindings)
    return gin_launch.build(trainer.TrainConfig)


def test_gpu_target_is_a_clear_error(capsys):
    rc = cli.main(["compile-check", *T5_TINY, "--topology=h100:8"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot compile for a GPU without one" in err and "local" in err


def test_topology_names():
    assert tpu_topologies.resolve_topology("v5litepod-256")[1] == "v5e:16x16"
    assert tpu_topologies.resolve_topology("v5p-128")[1] == "v5p:4x4x4"
    assert tpu_topologies.resolve_topology("v4-32")[1] == "v4:2x2x4"
    assert tpu_topologies.resolve_topology("v6e-64")[1] == "v6e:8x8"
    assert tpu_topologies.resolve_topology("v5e:2x4")[0].hbm_bytes == 16 * 2**30
    with pytest.raises(ValueError, match="unknown TPU generation"):
        tpu_topologies.resolve_topology("v9:2x2")
    assert tpu_topologies.hbm_bytes("TPU v5") == 95 * 2**30
    assert tpu_topologies.hbm_bytes("TPU v6 lite") == 32 * 2**30


def test_collectives_of_hlo_text():
    hlo = """HloModule m
%body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %ar = f32[8]{0} all-reduce(%x), channel_id=1, replica_groups={{0,1}}, to_apply=%add
}
%cond (p: (s32[], f32[8])) -> pred[] {
  %c = s32[]{:T(128)} constant(6)
  ROOT %lt = pred[] compare(%i, %c), direction=LT
}
%fused.1 (a: bf16[4,32]) -> bf16[8,32] {
  %ag.1 = bf16[8,32] all-gather(%a), replica_groups=[2,2]<=[4], frontend_attributes={chain_id="3"}
}
%fused.2 (a: bf16[4,32]) -> bf16[8,32] {
  %ag.2 = bf16[8,32]{1,0:T(8,128)S(1)} all-gather(%a), frontend_attributes={chain_id="3"}
}
ENTRY %main (x: f32[8]) -> f32[8] {
  %w = (s32[], f32[8]) while(%t), condition=%cond, body=%body
  %f1 = bf16[8,32] fusion(%a), kind=kLoop, calls=%fused.1
  %f2 = bf16[8,32] fusion(%a), kind=kLoop, calls=%fused.2
  %rs = (f32[2,4]{1,0}, bf16[2]{0}) reduce-scatter(%y, %z), dimensions={0}
  %a2a = f32[4,8] all-to-all(%q), replica_groups=mesh['axis_0'=2,'axis_1'=2] {'axis_1'}
}
"""
    stats = hlo_analysis.collective_stats(hlo, num_devices=4)
    # traffic: the bytes each device sends, ring algorithms over each op's group
    assert stats["all-reduce"] == {"count": 6, "bytes": 6 * 32, "traffic": 6 * 2 * 32 / 2}
    assert stats["all-gather"] == {"count": 1, "bytes": 512, "traffic": 512 / 2}  # one chain
    rs = 8 * 4 + 2 * 2  # no replica groups: all 4 devices
    assert stats["reduce-scatter"] == {"count": 1, "bytes": rs, "traffic": 3 * rs}
    # the mesh form of replica groups: the named axes' sizes
    assert stats["all-to-all"] == {"count": 1, "bytes": 128, "traffic": 128 / 2}
    assert stats["collective-permute"]["count"] == 0


def test_roofline_adds_collective_time_without_overlap():
    chip = tpu_topologies.Chip("x", ("X",), 2**30, 100e12, 1e12, ici_bandwidth=200e9)
    collectives = {"all-gather": {"traffic": 5e9}, "all-reduce": {"traffic": 3e9}}
    # per device: compute 1e13 / 1e14 = 100 ms, HBM 5e10 / 1e12 = 50 ms,
    # collectives 8e9 / (200e9 / 2) = 80 ms
    r = roofline.roofline(1e13, 5e10, 2 * 0.9e13, chip, 2, collectives)
    assert r["collective_s"] == pytest.approx(0.08) and r["bound"] == "compute"
    assert r["step_s"] == pytest.approx(0.18) and r["step_overlap_s"] == pytest.approx(0.1)
    assert r["mfu_no_collectives"] == pytest.approx(0.9)
    assert r["mfu_overlap"] == pytest.approx(0.9) and r["mfu"] == pytest.approx(0.5)
    assert "collectives 80 ms -> 180 ms/step without overlap, MFU 50.0%" in roofline.summary(r)
    slow = roofline.roofline(1e13, 5e10, 1.8e13, chip, 2, {"all-reduce": {"traffic": 2e10}})
    assert slow["bound"] == "collectives" and slow["mfu_overlap"] == pytest.approx(0.45)
    unknown = dataclasses.replace(chip, ici_bandwidth=0.0)  # collectives not modeled
    r = roofline.roofline(1e13, 5e10, 1.8e13, unknown, 2, collectives)
    assert r["collective_s"] is None and r["mfu"] == pytest.approx(0.9)


def test_a_lora_run_compiles_with_adapter_state_only(tmp_path):
    """LoRA: the train step holds the adapters and their optimizer state, the base is a
    frozen input: far fewer argument bytes than full fine-tuning's params + Adafactor."""
    argv = [*T5_TINY, "--topology=v5e:2x2", "--no_score_step"]
    _, full = _check(tmp_path, argv)
    _, lora = _check(tmp_path, [*argv, "--gin.LoraConfig.rank=4"])
    assert lora["params"] < full["params"] / 10  # the adapters: what trains
    arg_full = full["train_step"]["memory"]["argument"]
    arg_lora = lora["train_step"]["memory"]["argument"]
    assert arg_lora < arg_full, (arg_lora, arg_full)
    assert lora["train_step"]["memory"]["verdict"] == "FITS"
