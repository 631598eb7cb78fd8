"""Roofline step time and projected MFU of a compiled program, collectives included.

Per device and step: compute = FLOPs / peak FLOP/s; memory = HBM bytes accessed / HBM
bandwidth; collectives = the bytes the device sends for its collectives (ring
algorithms: `hlo_analysis.collective_stats`' "traffic", from each op's replica groups)
/ half the chip's bidirectional ICI bandwidth (`tpu_topologies.Chip.ici_bandwidth`: a
device sends at most half of it, with every link busy). A collective over one mesh
axis rides fewer links than a torus has, so this collective time is a lower bound of
the real one; latencies of small collectives are left out.

Two bounds of the step: no overlap, step = max(compute, memory) + collectives (every
collective waits for, and holds up, the compute); full overlap, step = max(compute,
memory, collectives) (the latency-hiding scheduler hides them all behind compute).
"mfu", the projected MFU, is the no-overlap one: analytic FLOPs / (step x peak x
devices); "mfu_overlap" the full-overlap one; "mfu_no_collectives" the roofline
without collectives (what compile-check reported before collectives were modeled).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def collective_seconds(collectives: Mapping[str, Mapping[str, float]], ici_bandwidth: float):
    """Seconds per step the device spends sending its collectives' traffic; None when
    the chip's ICI bandwidth is unknown (0)."""
    if not ici_bandwidth:
        return None
    return sum(v.get("traffic", 0.0) for v in collectives.values()) / (ici_bandwidth / 2)


def roofline(
    dev_flops: float,
    bytes_accessed: float,
    analytic_flops: float,
    chip: Any,
    num_devices: int,
    collectives: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """The roofline of one device's program on `chip` (a `tpu_topologies.Chip`)."""
    compute_s, memory_s = dev_flops / chip.peak_flops, bytes_accessed / chip.hbm_bandwidth
    local_s = max(compute_s, memory_s)
    coll_s = collective_seconds(collectives, chip.ici_bandwidth)
    peak = chip.peak_flops * num_devices

    def mfu(step_s: float) -> float:
        return analytic_flops / (step_s * peak) if step_s else 0.0

    out = {
        "compute_s": compute_s,
        "memory_s": memory_s,
        "collective_s": coll_s,
        "bound": "compute" if compute_s >= memory_s else "memory",
        "mfu_no_collectives": mfu(local_s),
        "overlap_assumption": "mfu: none (collectives add to the step); mfu_overlap: full",
    }
    if coll_s is None:  # unknown interconnect: the roofline without collectives
        return out | {"step_s": local_s, "step_overlap_s": local_s, "mfu": mfu(local_s),
                      "mfu_overlap": mfu(local_s)}  # fmt: skip
    overlap_s = max(local_s, coll_s)
    if coll_s > local_s:
        out["bound"] = "collectives"
    return out | {"step_s": local_s + coll_s, "step_overlap_s": overlap_s,
                  "mfu": mfu(local_s + coll_s), "mfu_overlap": mfu(overlap_s)}  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g} ms"


def summary(r: Mapping[str, Any]) -> str:
    """One line: the three times, the two step bounds and their MFUs."""
    coll = r.get("collective_s")
    head = f"compute {_ms(r['compute_s'])}, HBM {_ms(r['memory_s'])}"
    if coll is None:
        return (f"{head} -> {_ms(r['step_s'])}/step ({r['bound']}-bound), MFU {r['mfu']:.1%} "
                "(collectives not modeled: unknown interconnect)")  # fmt: skip
    return (
        f"{head}, collectives {_ms(coll)} -> {_ms(r['step_s'])}/step without overlap, MFU "
        f"{r['mfu']:.1%}; {_ms(r['step_overlap_s'])} with full overlap, MFU "
        f"{r['mfu_overlap']:.1%} ({r['bound']}-bound; {r['mfu_no_collectives']:.1%} "
        "without collectives)"
    )
