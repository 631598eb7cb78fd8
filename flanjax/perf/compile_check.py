"""Ahead-of-time compile checks: will this config fit, how fast could it run.

`run(CheckConfig)` builds the train state and the batch of a run as abstract
arrays carrying their shardings (nothing is allocated), compiles the real train
step (`trainer.compile_train_step`) and the score step (rank classification,
`inference.score_choices`, as the evaluator runs it) for the devices of a TPU
topology (`tpu_topologies`) or of this machine, and reports per device: memory
against the chip's HBM with a FITS / DOES NOT FIT verdict, the compiler's FLOP
count against flanjax's analytic count (`flops.py` for the train step), the
collectives of the compiled HLO, a roofline step time with the collectives' time
(`perf.roofline`: without and with full overlap) and the MFU it implies.

`check_fits(compiled, device)` is the memory check on its own, and
`compile_fitting(lowered, device)` the compile that applies it (TPU's compiler
refuses past HBM itself): both raise `MemoryFitError` naming the sizes and the
knobs that would help.
Sizes are bytes per device. Total = arguments + outputs - aliased (donated)
+ temporaries + generated code.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from flanjax import (
    flops,
    inference,
    lora_state,
    optimizers,
    partitioning,
    run_setup,
    train_state,
    trainer,
)
from flanjax.data.pipeline import FEATURE_CONVERTERS
from flanjax.models import DecoderConfig, ModelConfig, T5Config, family_of
from flanjax.perf import hlo_analysis, roofline, tpu_topologies
from flanjax.perf.tpu_topologies import GiB

OOM_OPTIONS = {"xla_tpu_no_crash_on_oom": True}  # libtpu: finish compiling past HBM


# ---------------------------------------------------------------- memory


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """Per-device memory of a compiled program against the device's HBM."""

    argument: int
    output: int
    alias: int
    temp: int
    generated_code: int
    hbm: int

    @property
    def total(self) -> int:
        return self.argument + self.output - self.alias + self.temp + self.generated_code

    @property
    def margin(self) -> int:
        return self.hbm - self.total

    @property
    def fits(self) -> bool:
        return self.margin >= 0

    @property
    def verdict(self) -> str:
        return "FITS" if self.fits else "DOES NOT FIT"

    def as_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        return fields | {"total": self.total, "margin": self.margin, "verdict": self.verdict}

    def summary(self) -> str:
        pct = 100 * self.margin / self.hbm
        return (
            f"{gib(self.total)} of {gib(self.hbm)} HBM per device: {self.verdict} "
            f"(margin {gib(self.margin)}, {pct:+.1f}%)"
        )


def gib(n: float) -> str:
    """Bytes in GiB, or MiB / KiB / B when smaller."""
    for unit, scale in (("GiB", GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


class MemoryFitError(ValueError):
    """A compiled program needs more memory per device than the device has."""

    def __init__(self, message: str, report: MemoryReport | None = None):
        super().__init__(message)
        self.report = report


def memory_report(compiled: Any, device_kind_or_hbm_bytes: Any) -> MemoryReport:
    m = compiled.memory_analysis()
    return MemoryReport(
        argument=int(m.argument_size_in_bytes),
        output=int(m.output_size_in_bytes),
        alias=int(m.alias_size_in_bytes),
        temp=int(m.temp_size_in_bytes),
        generated_code=int(m.generated_code_size_in_bytes),
        hbm=tpu_topologies.hbm_bytes(device_kind_or_hbm_bytes),
    )


def _field(cls: type, word: str) -> str | None:
    names = [f.name for f in dataclasses.fields(cls) if word in f.name]
    return f"{cls.__name__}.{names[0]}" if names else None


def fit_advice(argument: int, temp: int) -> list[str]:
    """The knobs that would help, the larger term's first."""
    remat = " / ".join(filter(None, (_field(c, "remat") for c in (T5Config, DecoderConfig))))
    micro = _field(trainer.TrainConfig, "microbatch") or "gradient accumulation"
    state = (
        "shard parameters and optimizer state over more devices: raise MeshConfig.fsdp "
        f"(or tensor); arguments are {gib(argument)} per device"
    )
    acts = [
        f"rematerialize layers in the backward pass ({remat}: 'full' saves the most); "
        f"temporaries are {gib(temp)} per device",
        f"split each batch into microbatches ({micro}), or lower BATCH_SIZE or "
        "TASK_FEATURE_LENGTHS",
    ]
    rest = [
        "keep activations in bfloat16 (T5Config.dtype / DecoderConfig.dtype) and use "
        "Adafactor (factored second moments) rather than AdamW"
    ]
    return ([state, *acts] if argument >= temp else [*acts, state]) + rest


def fit_error(report: MemoryReport, what: str = "the train step") -> MemoryFitError:
    lines = [
        f"{what} does not fit: it needs {report.summary()}",
        f"  arguments {gib(report.argument)}, outputs {gib(report.output)}, "
        f"aliased {gib(report.alias)}, temporaries {gib(report.temp)}, "
        f"generated code {gib(report.generated_code)}",
        "knobs that would help:",
        *(f"  - {k}" for k in fit_advice(report.argument, report.temp)),
    ]
    return MemoryFitError("\n".join(lines), report)


def check_fits(compiled: Any, device_kind_or_hbm_bytes: Any, what: str = "the train step"):
    """The memory report of `compiled`; raises `MemoryFitError` if it exceeds HBM.

    `device_kind_or_hbm_bytes`: a `jax.Device` (its memory limit when it reports
    one, else its kind's HBM), a device kind ("TPU v5 lite"), a chip ("v5e"), or
    bytes.
    """
    report = memory_report(compiled, device_kind_or_hbm_bytes)
    if not report.fits:
        raise fit_error(report, what)
    return report


def is_out_of_memory(e: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(e) or "Ran out of memory" in str(e)


def compile_fitting(lowered: Any, device_kind_or_hbm_bytes: Any, what: str = "the train step"):
    """`lowered.compile()`, refusing a program that does not fit: TPU's compiler itself
    fails past HBM (RESOURCE_EXHAUSTED), GPU's does not; both become MemoryFitError."""
    try:
        compiled = lowered.compile()
    except jax.errors.JaxRuntimeError as e:
        if not is_out_of_memory(e):
            raise
        hbm = tpu_topologies.hbm_bytes(device_kind_or_hbm_bytes)
        advice = "\n".join(f"  - {k}" for k in fit_advice(1, 0))
        raise MemoryFitError(
            f"{what} does not fit in {gib(hbm)} HBM per device; the compiler says: "
            f"{str(e).splitlines()[0]}\nknobs that would help:\n{advice}"
        ) from e
    check_fits(compiled, device_kind_or_hbm_bytes, what)
    return compiled


# ---------------------------------------------------------------- compiling


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    """What to compile, and for which devices.

    topology: a TPU topology ("v5e:16x16", "v5p-128"), or "local" for this
      machine's devices. num_choices / score_batch_size shape the score step
      (score_batch_size 0: the train batch size).
    """

    train: trainer.TrainConfig
    topology: str
    num_slices: int = 1
    num_choices: int = 4
    score_batch_size: int = 0
    score_step: bool = True
    oom_breakdown: bool = True  # recompile past HBM for the sizes when TPU's compiler refuses


@dataclasses.dataclass
class Target:
    """The devices compiled for, their mesh and their chip (None: unknown rates)."""

    name: str
    devices: list
    mesh: Any
    chip: tpu_topologies.Chip | None
    hbm: int


def make_target(cfg: CheckConfig) -> Target:
    if tpu_topologies.is_gpu_target(cfg.topology):
        raise ValueError(tpu_topologies.gpu_unsupported_message(cfg.topology))
    if cfg.topology == "local":
        chip, devices = tpu_topologies.local_devices()
        mesh = partitioning.make_mesh(cfg.train.mesh, devices)
        hbm = tpu_topologies.hbm_bytes(devices[0]) if chip or _has_limit(devices[0]) else 0
        return Target(f"local ({devices[0].device_kind})", devices, mesh, chip, hbm)
    chip, devices = tpu_topologies.topology_devices(cfg.topology, cfg.num_slices)
    mesh = tpu_topologies.topology_mesh(cfg.train.mesh, devices, cfg.num_slices)
    return Target(cfg.topology, devices, mesh, chip, chip.hbm_bytes)


def _has_limit(device: jax.Device) -> bool:
    return bool(tpu_topologies._memory_stats(device).get("bytes_limit"))


def model_lengths(tcfg: trainer.TrainConfig) -> dict[str, int]:
    """The model's feature lengths (seqio's feature converter on the task lengths)."""
    data = tcfg.data
    name = run_setup.resolve_converter(data, tcfg.model)  # refuses a family mismatch
    converter = FEATURE_CONVERTERS[name](pack=data.pack)
    return dict(converter.get_model_feature_lengths(dict(data.task_feature_lengths)))


def abstract_batch(tcfg: trainer.TrainConfig, mesh, lengths: Mapping[str, int]) -> dict:
    sharding = partitioning.batch_sharding(mesh, tcfg.mesh.rules)
    b = tcfg.data.batch_size
    return {
        k: jax.ShapeDtypeStruct((b, n), jnp.int32, sharding=sharding) for k, n in lengths.items()
    }


def _lower_train(cfg: CheckConfig, mesh, lengths) -> tuple[Any, Any]:
    """(lowered train step, abstract params) with abstract, sharded inputs."""
    tcfg = cfg.train
    trainer.check_microbatches(tcfg, mesh)
    tx, schedule = optimizers.make_optimizer(tcfg.optimizer)
    frozen = None
    if tcfg.lora.enabled:  # adapters and their optimizer state; the base a frozen input
        abstract = lora_state.abstract_state(tcfg.model, tcfg.lora, tx, tcfg.seed)
        base = train_state.abstract_params(tcfg.model)
        base_shardings = train_state.param_shardings(base, mesh, tcfg.mesh.rules)
        frozen = train_state.with_shardings(base, base_shardings)
    else:
        abstract = train_state.abstract_state(tcfg.model, tx, tcfg.seed)
    shardings = train_state.state_shardings(abstract, mesh, tcfg.mesh.rules)
    state = train_state.with_shardings(abstract, shardings)
    batch = abstract_batch(tcfg, mesh, lengths)
    with jax.set_mesh(mesh):  # as the trainer runs it
        step = trainer.compile_train_step(tcfg, tx, schedule, mesh, shardings, frozen=frozen)
        return step.lower(state, batch), abstract.params


def score_lengths(tcfg: trainer.TrainConfig) -> tuple[int, int]:
    """(prompt, choice) lengths of the score step: the task's inputs and targets."""
    lengths = tcfg.data.task_feature_lengths
    return lengths.get("inputs", lengths["targets"]), lengths["targets"]


def _lower_score(cfg: CheckConfig, mesh, abs_params) -> tuple[Any, int]:
    """(lowered score step, its batch size): `inference.score_choices`, rank
    classification of `num_choices` answers per example, as the evaluator runs it."""
    tcfg, rules = cfg.train, cfg.train.mesh.rules
    graphdef = train_state.graphdef_of(tcfg.model, rules)
    p_shardings = train_state.param_shardings(abs_params, mesh, rules)
    params = train_state.with_shardings(abs_params, p_shardings)
    b, c = cfg.score_batch_size or tcfg.data.batch_size, cfg.num_choices
    prompt, choice = score_lengths(tcfg)
    bs = partitioning.batch_sharding(mesh, rules)

    def step(params, inputs, choices):
        model = nnx.merge(graphdef, params)
        return inference.score_choices(model, inputs, choices, num_choices=c)

    inputs = jax.ShapeDtypeStruct((b, prompt), jnp.int32, sharding=bs)
    choices = jax.ShapeDtypeStruct((b * c, choice), jnp.int32, sharding=bs)
    jitted = jax.jit(step, in_shardings=(p_shardings, bs, bs))
    with jax.set_mesh(mesh):  # as the evaluator runs it
        return jitted.lower(params, inputs, choices), b


# ---------------------------------------------------------------- measuring


def _cost(compiled: Any) -> dict[str, float]:
    cost = compiled.cost_analysis()
    if isinstance(cost, list):  # older JAX: one dict per program
        cost = cost[0] if cost else {}
    return dict(cost or {})


def _compile(lowered: Any, target: Target, cfg: CheckConfig, out: dict) -> Any | None:
    """Compiles; on TPU's out-of-memory refusal records the compiler's message and, if
    asked, recompiles past HBM for the sizes. None when there is nothing to measure."""
    t0 = time.perf_counter()
    try:
        compiled = lowered.compile()
        out["compile_s"] = time.perf_counter() - t0
        return compiled
    except jax.errors.JaxRuntimeError as e:
        if not is_out_of_memory(e):
            raise
        out["compile_s"] = time.perf_counter() - t0
        out["compiler_error"] = str(e).splitlines()[0]
    if not (cfg.oom_breakdown and target.devices[0].platform == "tpu"):
        return None
    t0 = time.perf_counter()
    compiled = lowered.compile(OOM_OPTIONS)
    out["oom_breakdown_compile_s"] = time.perf_counter() - t0
    return compiled


def _roofline(dev_flops: float, bytes_accessed: float, analytic: float, target: Target,
              collectives: dict) -> dict:  # fmt: skip
    """`perf.roofline`: the step at the chip's peak rates, collectives included, and the
    MFU it implies for the analytic FLOPs; {} for a chip of unknown rates."""
    if target.chip is None:
        return {}
    n = len(target.devices)
    return roofline.roofline(dev_flops, bytes_accessed, analytic, target.chip, n, collectives)


COST_KEYS = ("flops", "bytes accessed")


def _depth_fields(model: ModelConfig) -> tuple[str, ...]:
    return family_of(model).depth_fields


def unrolled_cost(cfg: CheckConfig, lower: Callable[[CheckConfig], Any]) -> dict[str, float]:
    """FLOPs and bytes of `cfg`'s program at full depth, unrolled, for a model with
    scanned layers, whose loop bodies XLA's cost analysis counts once.

    The layers of a stack are identical, so the cost is linear in each stack's
    depth: compiled unrolled with every stack at depth 1 (`base`) and, per stack
    s, with s at depth 2 (`cost_s`), the full depth n_s costs
    base + sum_s (n_s - 1) * (cost_s - base). Those compiles are small: each
    holds one or two layers per stack. `lower(variant_cfg)` lowers the program.
    """
    model = cfg.train.model
    fields = _depth_fields(model)

    def cost_at(depths: dict[str, int]) -> dict[str, float]:
        m = dataclasses.replace(model, scan_layers=False, **{f: 1 for f in fields} | depths)
        variant = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, model=m))
        cost = _cost(lower(variant).compile())
        return {k: float(cost.get(k, 0.0)) for k in COST_KEYS}

    base = cost_at({})
    total = dict(base)
    for f in fields:
        deeper = cost_at({f: 2})
        for k in COST_KEYS:
            total[k] += (getattr(model, f) - 1) * (deeper[k] - base[k])
    return total


def measure(
    lowered: Any,
    target: Target,
    cfg: CheckConfig,
    analytic_flops: float,
    unrolled: Callable[[], dict[str, float]] | None = None,
) -> dict:
    """Compiles `lowered` and reports memory, FLOPs, collectives and the roofline;
    `unrolled()`, if given, supplies the FLOPs and bytes (`unrolled_cost`)."""
    out: dict[str, Any] = {}
    compiled = _compile(lowered, target, cfg, out)
    if compiled is None:
        out["memory"] = {"hbm": target.hbm, "verdict": "DOES NOT FIT"}
        return out
    mem = memory_report(compiled, target.hbm) if target.hbm else None
    out["memory"] = mem.as_dict() if mem else dataclasses.asdict(memory_report(compiled, 1))
    if not mem:
        out["memory"] |= {"hbm": 0, "verdict": "UNKNOWN"}
    elif "compiler_error" in out:
        out["memory"]["verdict"] = "DOES NOT FIT"  # the compiler's own budget is stricter
    cost = _cost(compiled)
    if unrolled is not None:
        t0 = time.perf_counter()
        cost |= unrolled()
        out["unrolled_cost_s"] = time.perf_counter() - t0
    n = len(target.devices)
    dev_flops = float(cost.get("flops", 0.0))
    bytes_accessed = float(cost.get("bytes accessed", 0.0))
    out["flops"] = {
        "compiler_per_device": dev_flops,
        "compiler_total": dev_flops * n,
        "analytic_total": analytic_flops,
        "compiler_vs_analytic": dev_flops * n / analytic_flops - 1 if analytic_flops else 0.0,
    }
    out["bytes_accessed_per_device"] = bytes_accessed
    out["collectives"] = hlo_analysis.collective_stats(compiled.as_text(), n)
    out["roofline"] = _roofline(dev_flops, bytes_accessed, analytic_flops, target,
                                out["collectives"])  # fmt: skip
    # libtpu reports -1 (none) for some programs; a scanned program's counts one layer
    if unrolled is None and float(cost.get("optimal_seconds", -1.0)) > 0:
        out["roofline"]["compiler_estimate_s"] = float(cost["optimal_seconds"])
    return out


def run(cfg: CheckConfig) -> dict[str, Any]:
    """Compiles the train (and score) step of `cfg` for its target; the full report."""
    tcfg = cfg.train
    target = make_target(cfg)
    lengths = model_lengths(tcfg)
    report: dict[str, Any] = {
        "topology": target.name,
        "num_slices": cfg.num_slices,
        "devices": len(target.devices),
        "device_kind": target.devices[0].device_kind,
        "chip": dataclasses.asdict(target.chip) if target.chip else None,
        "hbm_per_device": target.hbm,
        "mesh": dict(target.mesh.shape),
        "model": type(tcfg.model).__name__,
        "batch_size": tcfg.data.batch_size,
        "feature_lengths": lengths,
    }
    t0 = time.perf_counter()
    lowered, abs_params = _lower_train(cfg, target.mesh, lengths)
    report["params"] = hlo_analysis.param_count(abs_params)
    shapes = {k: (tcfg.data.batch_size, n) for k, n in lengths.items()}
    analytic = flops.batch_flops(tcfg.model, shapes)
    report["scanned_layers"] = tcfg.model.scan_layers
    report["train_step"] = {"lower_s": time.perf_counter() - t0}
    unrolled = None
    if tcfg.model.scan_layers:  # a loop body counts once in XLA's cost analysis

        def lower_train(c: CheckConfig) -> Any:
            return _lower_train(c, target.mesh, lengths)[0]

        unrolled = lambda: unrolled_cost(cfg, lower_train)  # noqa: E731
    report["train_step"] |= measure(lowered, target, cfg, analytic, unrolled)
    if cfg.score_step:
        t0 = time.perf_counter()
        lowered, b = _lower_score(cfg, target.mesh, abs_params)
        prompt, choice = score_lengths(tcfg)
        analytic = hlo_analysis.score_flops(tcfg.model, b, prompt, choice, cfg.num_choices)
        step = {
            "batch_size": b,
            "num_choices": cfg.num_choices,
            "lower_s": time.perf_counter() - t0,
        }
        step |= {"prompt_length": prompt, "choice_length": choice}
        if tcfg.model.scan_layers:

            def lower_score(c: CheckConfig) -> Any:
                return _lower_score(c, target.mesh, train_state.abstract_params(c.train.model))[0]

            unrolled = lambda: unrolled_cost(cfg, lower_score)  # noqa: E731
        report["score_step"] = step | measure(lowered, target, cfg, analytic, unrolled)
    verdicts = [report[k]["memory"]["verdict"] for k in ("train_step", "score_step") if k in report]
    report["verdict"] = next(
        (v for v in ("DOES NOT FIT", "UNKNOWN") if v in verdicts), "FITS"
    )  # fmt: skip
    return report


# ---------------------------------------------------------------- text


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g} ms"


def _si(x: float) -> str:
    return f"{x:.3g}" if x < 1e3 else f"{x:.3e}"


def _step_lines(name: str, step: dict) -> list[str]:
    mem = step["memory"]
    times = f"lowered {step['lower_s']:.1f} s, compiled {step.get('compile_s', 0):.1f} s"
    if "oom_breakdown_compile_s" in step:
        times += f", recompiled past HBM {step['oom_breakdown_compile_s']:.1f} s"
    lines = [f"{name} ({times})"]
    if "compiler_error" in step:
        lines.append(f"  compiler      {step['compiler_error']}")
    if "argument" in mem:
        lines.append(
            f"  memory        arguments {gib(mem['argument'])}, outputs {gib(mem['output'])}, "
            f"aliased {gib(mem['alias'])}, temporaries {gib(mem['temp'])}, "
            f"code {gib(mem['generated_code'])}"
        )
    if mem.get("hbm") and "total" in mem:
        pct = 100 * mem["margin"] / mem["hbm"]
        lines.append(
            f"                total {gib(mem['total'])} of {gib(mem['hbm'])} HBM per device: "
            f"{mem['verdict']} (margin {gib(mem['margin'])}, {pct:+.1f}%)"
        )
    else:
        lines.append(f"                {mem['verdict']}")
    if "flops" not in step:
        return lines
    f = step["flops"]
    lines.append(
        f"  FLOPs         compiler {_si(f['compiler_total'])} per step "
        f"({_si(f['compiler_per_device'])} per device), analytic {_si(f['analytic_total'])}: "
        f"compiler {100 * f['compiler_vs_analytic']:+.1f}%"
    )
    parts = [
        f"{k} {int(v['count'])} x {gib(v['bytes'])} (sends {gib(v.get('traffic', 0))})"
        for k, v in step["collectives"].items()
        if v["count"]
    ]
    lines.append(f"  collectives   {', '.join(parts) or 'none'} (per device per step)")
    r = step["roofline"]
    if r:
        est = r.get("compiler_estimate_s")
        lines.append(
            f"  roofline      {roofline.summary(r)}"
            + (f"; compiler's estimate {_ms(est)}" if est is not None else "")
        )
    return lines


def format_report(report: dict[str, Any]) -> str:
    mesh = " ".join(f"{k}={v}" for k, v in report["mesh"].items())
    lengths = ", ".join(f"{k} {v}" for k, v in report["feature_lengths"].items())
    lines = [
        f"model         {report['model']}, {report['params'] / 1e9:.3g}B parameters",
        f"target        {report['topology']}: {report['devices']} x {report['device_kind']}"
        f" ({report['num_slices']} slice(s)), {gib(report['hbm_per_device'])} HBM each",
        f"mesh          {mesh}",
        f"batch         {report['batch_size']} x ({lengths})",
    ]
    for key in ("train_step", "score_step"):
        if key in report:
            lines += _step_lines(key.replace("_", " "), report[key])
    if report.get("scanned_layers"):
        lines.append(
            "note          scanned layers: memory is the scanned program's; FLOPs and bytes "
            "are the unrolled program's, from compiles at depth 1 and 2 (XLA counts a "
            "loop body once)"
        )
    lines.append(f"verdict       {report['verdict']}")
    return "\n".join(lines)
