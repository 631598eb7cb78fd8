"""The parts of the prepared GPU run (`flanjax.perf.gpu_checks`), one function each.

Each part takes the `Mode` and returns a JSON-able dict whose "ok" says whether the
check passed, with its figures. GPU mode measures the goals of issue 8 at their sizes;
CPU mode (`--cpu`, the dry run the tests run) drives the same code on tiny shapes.

Attention: in jax 0.10.2, `jax.nn.dot_product_attention(implementation=None)` (flanjax's
`attention_impl="fused"`) is XLA's own composition on every platform; only
`implementation="cudnn"` (`attention_impl="cudnn"`) runs cuDNN's fused flash attention.
So the GPU run checks and benchmarks "cudnn" and counts cuDNN's fused-attention custom
calls (`__cudnn$fmha...`) in the compiled programs. Each benchmark tries its variants in
order ("cudnn", then "xla" with full rematerialization, which fits without fused
attention) and keeps the first that runs, recording why the others did not. On CPU
"cudnn" fails at trace time, so the dry run walks that fallback too.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import numpy as np

from flanjax.models import DecoderConfig, T5Config, family_of

REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Mode:
    cpu: bool  # the dry run: tiny shapes on CPU

    @property
    def compute_dtype(self) -> str:
        return "float32" if self.cpu else "bfloat16"


# ---------------------------------------------------------------- device


def _nvidia_smi() -> str:
    cmd = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable: {e}"


def _cudnn_version() -> int | None:
    try:
        from jax._src.lib import cuda_versions

        return int(cuda_versions.cudnn_get_version()) if cuda_versions else None
    except Exception:  # no CUDA plugin (CPU), or an API that moved
        return None


def device(mode: Mode) -> dict[str, Any]:
    """The backend is the one wanted, and a jitted matmul runs on it (which also proves
    XLA accepted every flag in XLA_FLAGS: it aborts at start-up on an unknown one)."""
    import jax
    import jax.numpy as jnp

    from flanjax import flops

    devices = jax.devices()
    want = "cpu" if mode.cpu else "gpu"
    value = float(jax.jit(lambda x: (x @ x).sum())(jnp.ones((256, 256), jnp.float32)))
    out = {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "jax": jax.__version__,
        "peak_flops": flops.peak_flops(devices[0]),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jit_matmul_ok": value == 256.0**3,
    }
    if not mode.cpu:
        out |= {"nvidia_smi": _nvidia_smi(), "cudnn_version": _cudnn_version()}
    out["ok"] = out["platform"] == want and out["jit_matmul_ok"]
    if out["platform"] != want:
        out["error"] = f"backend is {out['platform']!r}, wanted {want!r}"
    return out


# ---------------------------------------------------------------- attention


def attention_config(mode: Mode, kind: str) -> T5Config | DecoderConfig:
    d = 32 if mode.cpu else 512
    heads, head_dim = (4, 8) if mode.cpu else (8, 64)
    common = dict(vocab_size=128 if mode.cpu else 1024, d_model=d, num_heads=heads,
                  head_dim=head_dim, d_ff=2 * d, dtype=mode.compute_dtype)  # fmt: skip
    layers = 1 if mode.cpu else 2
    if kind == "t5":
        return T5Config(**common, num_encoder_layers=layers, num_decoder_layers=layers)
    return DecoderConfig(**common, num_layers=layers, num_kv_heads=heads // 4, attention="prefix")


def _packed_segments(b: int, length: int) -> np.ndarray:
    """Rows of two packed examples and a padding tail (segment 0)."""
    first, second = length // 2, length // 2 - length // 8
    row = np.r_[np.ones(first), np.full(second, 2), np.zeros(length - first - second)]
    return np.tile(row.astype(np.int32), (b, 1))


def attention_batch(cfg: T5Config | DecoderConfig, mode: Mode) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    b, t = (2, 16) if mode.cpu else (4, 512)
    seg = _packed_segments(b, t)
    tokens = rng.integers(2, cfg.vocab_size, (b, t), dtype=np.int32)
    batch = {"seg": seg, "tokens": tokens, "targets": rng.integers(2, cfg.vocab_size, (b, t))}
    if family_of(cfg).encoder_decoder:
        batch["enc_seg"] = _packed_segments(b, 2 * t)
        batch["enc_tokens"] = rng.integers(2, cfg.vocab_size, (b, 2 * t), dtype=np.int32)
    else:  # prefix-LM: the first quarter of each segment attends bidirectionally
        start = np.r_[True, np.diff(seg[0]) != 0]
        pos = np.arange(t) - np.maximum.accumulate(np.where(start, np.arange(t), 0))
        batch["inputs_mask"] = np.tile((pos < t // 8) & (seg[0] > 0), (b, 1))
    return batch


def _loss_fn(cfg, graphdef, batch):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    weights_BxT = jnp.asarray(batch["seg"] > 0, jnp.float32)

    def loss(params):
        model = nnx.merge(graphdef, params)
        if family_of(cfg).encoder_decoder:
            logits = model(batch["enc_tokens"], batch["tokens"], batch["enc_seg"], batch["seg"])
        else:
            logits = model(batch["tokens"], batch["seg"], None, batch["inputs_mask"])
        logp = jax.nn.log_softmax(logits.astype(jnp.float32))
        nll = -jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
        return jnp.sum(nll * weights_BxT) / jnp.sum(weights_BxT), logits * weights_BxT[..., None]

    return loss


def _loss_logits_grads(cfg, batch) -> tuple[float, np.ndarray, list[np.ndarray], int]:
    import jax
    from flax import nnx

    from flanjax.models import create_model
    from flanjax.perf import benchmarking

    with nnx.use_eager_sharding(False):
        model = create_model(cfg, nnx.Rngs(params=0))
    graphdef, params = nnx.split(model, nnx.Param)
    step = jax.jit(jax.value_and_grad(_loss_fn(cfg, graphdef, batch), has_aux=True))
    compiled = step.lower(params).compile()
    (loss, logits), grads = compiled(params)
    calls = compiled.as_text().count(benchmarking.CUDNN_ATTENTION)
    leaves = [np.asarray(g, np.float32) for g in jax.tree.leaves(grads)]
    return float(loss), np.asarray(logits, np.float32), leaves, calls


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def attention(mode: Mode, kind: str) -> dict[str, Any]:
    """cuDNN's fused attention (the "fused" API path on CPU) against flanjax's einsum
    attention: loss, logits at real positions and every parameter gradient, as relative
    L2 errors, on packed rows with padding (T5: relative bias; decoder: GQA, prefix-LM)."""
    impl = "fused" if mode.cpu else "cudnn"
    base = attention_config(mode, kind)
    batch = attention_batch(base, mode)
    runs = {i: _loss_logits_grads(dataclasses.replace(base, attention_impl=i), batch)
            for i in ("xla", impl)}  # fmt: skip
    (loss_x, logits_x, grads_x, _), (loss_f, logits_f, grads_f, calls) = runs["xla"], runs[impl]
    tol = {"loss": 1e-5, "logits": 1e-4, "grads": 1e-4} if mode.cpu else {
        "loss": 1e-2, "logits": 2e-2, "grads": 5e-2}  # fmt: skip
    errors = {
        "loss": abs(loss_f - loss_x) / max(abs(loss_x), 1e-30),
        "logits": _rel(logits_f, logits_x),
        "grads": max(_rel(f, x) for f, x in zip(grads_f, grads_x, strict=True)),
    }
    out = {"impl": impl, "dtype": base.dtype, "rel_errors": errors, "tolerances": tol,
           "cudnn_calls": calls, "loss": loss_x}  # fmt: skip
    out["ok"] = all(errors[k] <= tol[k] for k in tol) and (mode.cpu or calls > 0)
    if not mode.cpu and calls == 0:
        out["error"] = "no cuDNN fused-attention call in the compiled program"
    return out


# ---------------------------------------------------------------- train-step benchmarks

DECODER_1P3B = DecoderConfig(
    vocab_size=32000, d_model=2048, num_layers=24, num_heads=16, num_kv_heads=16,
    head_dim=128, d_ff=5504, tie_embeddings=False, rope_theta=10000.0,
)  # fmt: skip  # 1.34B parameters (GPT-3 XL / Llama-style shapes)
TINY_T5 = T5Config(vocab_size=128, d_model=32, num_heads=2, head_dim=16, d_ff=64,
                   num_encoder_layers=1, num_decoder_layers=1)  # fmt: skip
TINY_DIMS = ("vocab_size", "d_model", "num_heads", "head_dim", "d_ff", "num_encoder_layers",
             "num_decoder_layers")  # fmt: skip
TINY_DECODER = DecoderConfig(vocab_size=128, d_model=32, num_layers=1, num_heads=4,
                             num_kv_heads=2, head_dim=8, d_ff=48)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Bench:
    title: str
    model: str | DecoderConfig  # a models/*.gin file, or a config
    lengths: dict[str, int]
    batch_size: int
    goal: tuple[str, float, str]  # (result field, minimum, how to print it)


BENCHES: dict[str, Bench] = {
    "bench_t5_large": Bench("T5 1.1-large, packed 512/128", "models/t5_1_1_large.gin",
                            {"inputs": 512, "targets": 128}, 64,
                            ("sequences_per_s", 263.0, ">= 263 seq/s")),
    "bench_flan_t5_base": Bench("Flan-T5-base, packed 1024/256", "models/t5_1_1_base.gin",
                                {"inputs": 1024, "targets": 256}, 32,
                                ("mfu", 0.35, ">= 35% MFU")),
    "bench_decoder_1p3b": Bench("1.34B decoder, packed 2048", DECODER_1P3B,
                                {"targets": 2048}, 16, ("tokens_per_s", 50e3, ">= 50k tokens/s")),
    "bench_smollm2": Bench("SmolLM2-135M (FLAN experiment's model), packed 2048",
                           DecoderConfig(), {"targets": 2048}, 32, ("tokens_per_s", 0.0, "-")),
}  # fmt: skip
VARIANTS: tuple[dict[str, str], ...] = (
    {"attention_impl": "cudnn"},
    {"attention_impl": "xla", "remat_policy": "full"},
)


def _one_device():
    from flanjax import partitioning

    return partitioning.MeshConfig(data=1)  # one GPU (a fixed mesh takes the first devices)


def _model(bench: Bench, mode: Mode):
    """The benchmark's config; on CPU shrunk to the tiny shapes (a gin file still parsed)."""
    if not isinstance(bench.model, str):  # a config, not a gin file
        return TINY_DECODER if mode.cpu else bench.model
    from flanjax import gin_launch

    gin_launch.parse([bench.model], [])
    model = gin_launch.build_model()
    if not mode.cpu:
        return model
    tiny = {f.name: getattr(TINY_T5, f.name) for f in dataclasses.fields(T5Config)
            if f.name in TINY_DIMS}  # fmt: skip
    return dataclasses.replace(model, **tiny)


def bench(mode: Mode, name: str) -> dict[str, Any]:
    """The real train step (`benchmarking.run`): packed synthetic rows, compute in
    bfloat16 (float32 parameters), Adafactor, the first variant that runs."""
    from flanjax.perf import benchmarking

    spec = BENCHES[name]
    base = dataclasses.replace(_model(spec, mode), dtype=mode.compute_dtype)
    lengths = {k: 16 for k in spec.lengths} if mode.cpu else spec.lengths
    failed = []
    for variant in VARIANTS:
        cfg = benchmarking.BenchConfig(
            model=dataclasses.replace(base, **variant), feature_lengths=lengths,
            batch_size=2 if mode.cpu else spec.batch_size, steps=1 if mode.cpu else 5,
            warmup_steps=1 if mode.cpu else 2, pack=True, mesh=_one_device(),
        )  # fmt: skip
        try:
            row = benchmarking.run(cfg)
        except Exception as e:  # e.g. cuDNN refusing a shape, out of memory
            failed.append({"variant": variant, "error": f"{type(e).__name__}: {e}"[:2000]})
            continue
        field, minimum, goal = spec.goal
        met = bool(row[field] >= minimum) if minimum and not mode.cpu else None
        return {"ok": True, "title": spec.title, "variant": variant, "batch_size": cfg.batch_size,
                "feature_lengths": lengths, "dtype": base.dtype, "goal": goal,
                "goal_met": met, "failed_variants": failed, **row}  # fmt: skip
    return {"ok": False, "title": spec.title, "failed_variants": failed,
            "error": "; ".join(f["error"][:300] for f in failed)}  # fmt: skip


# ---------------------------------------------------------------- transformers comparison


def _vs_script():
    path = REPO / "scripts" / "bench_vs_transformers.py"
    spec = importlib.util.spec_from_file_location("bench_vs_transformers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vs_transformers(mode: Mode, out_dir: pathlib.Path) -> dict[str, Any]:
    """scripts/bench_vs_transformers.py on this device: flanjax's side here, transformers'
    in its own process (its CUDA libraries and allocator apart from JAX's)."""
    script = _vs_script()
    argv = ["--size", "tiny", "--batch_size", "2", "--inputs", "16", "--targets", "8",
            "--steps", "1", "--warmup", "1"] if mode.cpu else [
            "--size", "small", "--batch_size", "64", "--inputs", "512", "--targets", "128",
            "--steps", "5", "--warmup", "2", "--device", "cuda"]  # fmt: skip
    args = script.parser().parse_args(argv)
    fj = script.bench_flanjax(args)
    hf_json = out_dir / "vs_transformers_torch.json"
    cmd = [sys.executable, str(script.__file__), *argv, "--side", "transformers", "--json",
           str(hf_json)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        error = f"transformers side exited {proc.returncode}: {proc.stderr[-1500:]}"
        return {"ok": False, "flanjax_step_s": fj["step_time_s"], "error": error}
    hf = json.loads(hf_json.read_text())
    return {"ok": True, "command": " ".join(argv), "flanjax_step_s": fj["step_time_s"],
            "transformers_step_s": hf["step_time_s"],
            "ratio_flanjax_over_transformers": fj["step_time_s"] / hf["step_time_s"],
            "flanjax_compile_s": fj["compile_s"], "torch": hf.get("torch", "")}  # fmt: skip
