"""The prepared GPU run (scripts/gpu_checks.sh, flanjax/perf/gpu_checks.py): its dry run on
CPU runs every part through the GPU run's code, and failures, time-outs and a spent budget
are recorded without stopping the run, with a non-zero exit status."""

import argparse
import json
import pathlib
import subprocess

from flanjax.perf import gpu_checks

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_requirements_are_setup_pys_pins_with_the_gpu_extra():
    reqs = gpu_checks.requirements()
    assert "jax==0.10.2" in reqs and "torch==2.13.0" in reqs
    assert "jax[cuda12]==0.10.2" in reqs and "jax-cuda12-pjrt==0.10.2" in reqs
    assert "jax-cuda12-plugin[with-cuda]==0.10.2" in reqs
    assert all("==" in r for r in reqs)


def test_dry_run_runs_every_part_and_writes_json_and_table(tmp_path):
    # A compilation cache kept across test runs: the programs are the same each time
    cache = pathlib.Path.home() / ".cache" / "flanjax" / "gpu_checks_jax_cache"
    cmd = [str(REPO / "scripts" / "gpu_checks.sh"), "--cpu", "--out", str(tmp_path),
           "--compile_cache", str(cache)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "cpu" and results["ok"] is True
    assert list(results["parts"]) == list(gpu_checks.PARTS)
    parts = results["parts"]
    assert all(p["status"] == "pass" for p in parts.values())
    assert parts["device"]["platform"] == "cpu" and parts["device"]["jit_matmul_ok"]
    assert "--xla_gpu_enable_latency_hiding_scheduler=true" in parts["device"]["xla_flags"]
    for name in ("attention_t5", "attention_decoder"):
        errors, tol = parts[name]["rel_errors"], parts[name]["tolerances"]
        assert parts[name]["impl"] == "fused" and all(errors[k] <= tol[k] for k in tol)
    for name in ("bench_t5_large", "bench_flan_t5_base", "bench_decoder_1p3b", "bench_smollm2"):
        bench = parts[name]
        # cuDNN cannot run on CPU: the dry run walks the fallback to the XLA variant
        assert bench["variant"] == {"attention_impl": "xla", "remat_policy": "full"}
        assert "cuDNN" in bench["failed_variants"][0]["error"]
        assert bench["step_time_s"] > 0 and bench["tokens_per_s"] > 0
        assert bench["mfu"] is None  # a CPU has no peak: NaN is written as null
    vs = parts["vs_transformers"]
    assert vs["flanjax_step_s"] > 0 and vs["transformers_step_s"] > 0
    table = (tmp_path / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 20")]
    assert len(rows) == len(gpu_checks.PARTS) and all(r.endswith("| pass |") for r in rows)
    assert "| date | commit | device | check | figures | goal | status |" in table
    assert "scripts/gpu_checks.sh --cpu" in table and ">= 263 seq/s" in table


def test_a_spent_budget_skips_parts_and_fails_the_run(tmp_path, capsys):
    rc = gpu_checks.main(["--cpu", "--out", str(tmp_path), "--only", "device", "--budget_s", "0"])
    assert rc == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["parts"]["device"]["status"] == "SKIPPED" and results["ok"] is False
    assert "FAILED: device" in capsys.readouterr().out
    assert "| backend | error: budget spent | - | SKIPPED |" in (tmp_path / "table.md").read_text()


def test_a_part_past_its_cap_is_killed_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_checks.PARTS, "device", (0.2, "backend"))  # x4 on CPU: 0.8 s
    args = argparse.Namespace(
        only=["device"], isolate=True, budget_s=60.0, cpu=True, out=tmp_path, compile_cache=""
    )
    parts = gpu_checks.run_all(args)
    assert parts["device"]["status"] == "TIMEOUT" and not parts["device"]["ok"]
    assert "timed out" in parts["device"]["error"]


def test_installing_from_a_wheel_folder_that_lacks_packages_exits_2(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    python = str(REPO / ".venv" / "bin" / "python")
    cmd = [str(REPO / "scripts" / "gpu_checks.sh"), "--wheels", str(wheels),
           "--venv", str(tmp_path / "venv"), "--python", python]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"installing into {tmp_path / 'venv'} from {wheels}" in proc.stderr
    assert "installing failed" in proc.stderr
