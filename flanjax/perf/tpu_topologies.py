"""Accelerator chips and compile-only TPU topologies for ahead-of-time compilation.

With libtpu installed (`pip install flanjax[tpu]`), `jax.experimental.topologies`
describes any TPU slice without the hardware: its devices can be laid out in a
mesh and `jax.jit(...).lower(...).compile()` runs the real TPU compiler for them
on a CPU-only machine. `topology_devices("v5e:16x16")` gives the 256 devices of
a v5e-256; Cloud accelerator names ("v5litepod-256", "v5p-128", "v4-32") are
accepted too (v4 and v5p names count TensorCores, two per chip).

GPUs have no such compile-only description in this JAX build (no CUDA PJRT
plugin): `gpu_unsupported_message()` says so, and `--topology=local` compiles
for the devices of the machine it runs on instead.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Sequence

import jax
from jax.sharding import Mesh

from flanjax import flops, partitioning

GiB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
    """Per-chip capacity and peak rates (one JAX device per chip)."""

    name: str
    device_kinds: tuple[str, ...]  # `jax.Device.device_kind` strings of this chip
    hbm_bytes: int
    peak_flops: float  # dense bf16 FLOP/s
    hbm_bandwidth: float  # bytes/s
    chip_config: str = "default"  # libtpu chip config giving one device per chip
    ici_bandwidth: float = 0.0  # bytes/s, bidirectional chip-to-chip, all links (0: unknown)


def _chip(name: str, device_kinds: tuple[str, ...], hbm: int, hbm_bandwidth: float, **kw) -> Chip:
    """A `Chip` whose peak FLOP/s is `flops.PEAK_FLOPS`' for its first device kind."""
    peak = flops.device_kind_peak_flops(device_kinds[0])
    if peak is None:
        raise ValueError(f"chip {name!r}: no peak FLOP/s for {device_kinds[0]!r} in PEAK_FLOPS")
    return Chip(name, device_kinds, hbm, peak, hbm_bandwidth, **kw)


# ICI, bidirectional per chip, from Google's Cloud TPU pages (docs.cloud.google.com/tpu/docs/
# v5e, v5p, v6e): v5e 400 GB/s (1,600 Gbps), v5p 1,200 GB/s (4,800 Gbps), v6e 800 GB/s.
# v4's page gives no per-chip figure: 2,400 Gbps (300 GB/s) is the commonly quoted one,
# not confirmed on a Google page here; the v4 page's pod all-reduce bandwidth, 1.1 PB/s
# over 4,096 chips, is 268 GB/s per chip, the same order. NVLink (NVIDIA's H100/H200 and
# A100 pages): 900 and 600 GB/s. Peak FLOP/s: `flops.PEAK_FLOPS` (`_chip`).
CHIPS: dict[str, Chip] = {
    "v4": _chip("v4", ("TPU v4",), 32 * GiB, 1.2e12, chip_config="megacore", ici_bandwidth=300e9),
    "v5e": _chip("v5e", ("TPU v5 lite", "TPU v5e"), 16 * GiB, 0.82e12, ici_bandwidth=400e9),
    "v5p": _chip("v5p", ("TPU v5p", "TPU v5"), 95 * GiB, 2.76e12, ici_bandwidth=1200e9),
    "v6e": _chip("v6e", ("TPU v6 lite", "TPU v6e"), 32 * GiB, 1.64e12, ici_bandwidth=800e9),
    "h100": _chip("h100", ("NVIDIA H100",), 80 * GiB, 3.35e12, ici_bandwidth=900e9),
    "h200": _chip("h200", ("NVIDIA H200",), 141 * 10**9, 4.8e12, ici_bandwidth=900e9),
    "a100": _chip("a100", ("NVIDIA A100",), 80 * GiB, 2.0e12, ici_bandwidth=600e9),
}
TPU_GENERATIONS = ("v4", "v5e", "v5p", "v6e")
_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6litepod": "v6e", "v6lite": "v6e"}
_CORES_PER_CHIP = {"v4": 2, "v5p": 2}  # Cloud names of these count TensorCores
_GPU_PREFIXES = ("gpu", "cuda", "rocm", "h100", "h200", "a100", "b200", "l4")


def chip_for_device_kind(kind: str) -> Chip | None:
    """The chip whose device kind is `kind` (exact match first, then prefix)."""
    for chip in CHIPS.values():
        if kind in chip.device_kinds:
            return chip
    matches = [(len(k), c) for c in CHIPS.values() for k in c.device_kinds if kind.startswith(k)]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def hbm_bytes(device_kind_or_bytes: str | int | float | jax.Device) -> int:
    """HBM capacity per device, from a byte count, a device, or a device kind."""
    if isinstance(device_kind_or_bytes, (int, float)):
        return int(device_kind_or_bytes)
    if isinstance(device_kind_or_bytes, str):
        kind = device_kind_or_bytes
        chip = CHIPS.get(kind) or chip_for_device_kind(kind)
    else:
        stats = _memory_stats(device_kind_or_bytes)
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
        kind = device_kind_or_bytes.device_kind
        chip = chip_for_device_kind(kind)
    if chip is None:
        raise ValueError(
            f"unknown HBM size for device kind {kind!r}; pass the capacity in bytes "
            f"(known: {', '.join(c for ch in CHIPS.values() for c in ch.device_kinds)})"
        )
    return chip.hbm_bytes


def _memory_stats(device: jax.Device) -> dict:
    try:
        return device.memory_stats() or {}
    except Exception:  # compile-only and CPU devices have none
        return {}


def is_gpu_target(name: str) -> bool:
    return name.lower().split(":")[0].split("-")[0] in _GPU_PREFIXES


def gpu_unsupported_message(name: str) -> str:
    """Why `name` (a GPU target) cannot be compiled ahead of time here, and what to do."""
    detail = _gpu_probe()
    return (
        f"GPU target {name!r}: this JAX build cannot compile for a GPU without one. "
        f"jax.experimental.topologies has no compile-only GPU topology here ({detail}); "
        "only TPU topologies come from libtpu. Run compile-check with --topology=local on a "
        "machine with the GPU(s) (it then compiles for the local devices, with the real GPU "
        "compiler and the devices' own memory limit), or check a TPU topology instead."
    )


def _gpu_probe() -> str:
    from jax.experimental import topologies

    try:
        topologies.get_topology_desc(platform="cuda", topology_name="")
    except Exception as e:  # NotImplementedError without a CUDA PJRT plugin
        return f"get_topology_desc(platform='cuda'): {type(e).__name__}: {e}"
    return "a CUDA plugin is present, but flanjax has no GPU topology layouts"


def _grid(chips: int, dims: int) -> list[int]:
    """Google's slice shapes: 2D (v5e, v6e) 4x4, 4x8, ...; 3D (v4, v5p) 2x2x1, 2x2x2, 2x2x4."""
    if chips & (chips - 1):
        raise ValueError(f"{chips} chips: slice sizes are powers of two")
    shape = [1] * dims if dims == 2 or chips < 4 else [2, 2, 1]
    while math.prod(shape) < chips:
        i = max(j for j, s in enumerate(shape) if s == min(shape))
        shape[i] *= 2
    return sorted(shape) if dims == 2 else shape


def resolve_topology(name: str) -> tuple[Chip, str]:
    """(chip, libtpu topology name) for "v5e:16x16" or a Cloud name like "v5litepod-256"."""
    m = re.fullmatch(r"([a-z0-9]+)[:=_]([0-9x]+)", name.lower())
    if m:
        gen, layout = _ALIASES.get(m.group(1), m.group(1)), m.group(2)
    else:
        m = re.fullmatch(r"([a-z0-9]+)-(\d+)", name.lower())
        if not m:
            raise ValueError(f"topology {name!r}: use GEN:AxB[xC] (v5e:16x16) or v5p-128")
        gen = _ALIASES.get(m.group(1), m.group(1))
        if gen not in TPU_GENERATIONS:
            raise ValueError(f"topology {name!r}: unknown TPU generation {gen!r}")
        chips = int(m.group(2)) // _CORES_PER_CHIP.get(gen, 1)
        layout = "x".join(map(str, _grid(chips, 2 if gen in ("v5e", "v6e") else 3)))
    if gen not in TPU_GENERATIONS:
        raise ValueError(
            f"topology {name!r}: unknown TPU generation {gen!r} (known: {TPU_GENERATIONS})"
        )
    return CHIPS[gen], f"{gen}:{layout}"


def _quiet_libtpu() -> None:
    """Off a TPU VM, libtpu's start-up probes for TPU metadata and prints warnings, and
    takes /tmp/libtpu_lockfile, which any other process that loaded libtpu (a CPU JAX
    process probing its default backend, a second compile-check) may hold. These
    defaults skip the probe and the lock; they are never set on a machine with TPU chips."""
    if os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio"):
        return
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", "v5litepod-4")


def topology_devices(name: str, num_slices: int = 1) -> tuple[Chip, list[jax.Device]]:
    """(chip, compile-only devices) of `num_slices` slices of TPU topology `name`."""
    chip, topo_name = resolve_topology(name)
    try:
        import libtpu  # noqa: F401
    except ImportError as e:
        raise ValueError(
            "TPU topologies need libtpu: pip install 'flanjax[tpu]' (jax[tpu]==0.10.2)"
        ) from e
    from jax.experimental import topologies

    _quiet_libtpu()
    layout = [int(s) for s in topo_name.split(":")[1].split("x")]
    padded = layout + [1] * (3 - len(layout))
    bounds = tuple(min(b, d) for b, d in zip((2, 2, 1), padded, strict=True))
    try:
        topo = topologies.get_topology_desc(
            platform="tpu",
            topology_name=topo_name,
            chip_config_name=chip.chip_config,
            chips_per_host_bounds=bounds,
            num_slices=num_slices,
        )
    except Exception as e:  # libtpu raises JaxRuntimeError for bad layouts
        raise ValueError(f"topology {name!r} ({topo_name}): {e}") from e
    return chip, list(topo.devices)


def topology_mesh(
    config: partitioning.MeshConfig, devices: Sequence[jax.Device], num_slices: int = 1
) -> Mesh:
    """The run's mesh over `devices` (`partitioning.make_mesh`). Across slices the outer
    `replica` axis spans the data-center network, so it must divide by the slice count."""
    outer = config.shape(len(devices))[0]
    if num_slices > 1 and outer % num_slices:
        raise ValueError(
            f"{num_slices} slices: the mesh's {partitioning.MESH_AXES[0]} axis spans the "
            f"slices, so its size ({outer}) must be a multiple of {num_slices}; set "
            f"--gin.MeshConfig.{partitioning.MESH_AXES[0]}={num_slices}"
        )
    return partitioning.make_mesh(config, devices)


def local_devices() -> tuple[Chip | None, list[jax.Device]]:
    """The devices of this machine's default backend (for --topology=local)."""
    devices = jax.devices()
    return chip_for_device_kind(devices[0].device_kind), devices
