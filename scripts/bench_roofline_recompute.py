"""Re-derive BENCHMARKS.md's full-size projected MFUs with collective time, from the saved
figures instead of re-compiling (each full-size compile takes 15-45 minutes on CPU-2).

Inputs, per pair, are what BENCHMARKS.md saved from the compile-check reports of
2026-11-23: the roofline step without collectives (the slower of compute and HBM),
its MFU, and the collective bytes per chip per step where the text kept them. The
replica-group sizes were not saved, so each collective's ring traffic takes the
large-group limit (`hlo_analysis.ring_traffic` with an unknown group: an all-gather
sends its result once, an all-reduce twice): an upper bound of the traffic, within
(P-1)/P of it. Time = traffic / (ICI / 2) as `flanjax.perf.roofline` computes; the
projected MFU scales with the step: MFU x old step / new step.

  .venv/bin/python scripts/bench_roofline_recompute.py
"""

from __future__ import annotations

from flanjax.perf import hlo_analysis, roofline, tpu_topologies
from flanjax.perf.tpu_topologies import GiB

# pair: (chip, roofline step s without collectives, its MFU, {collective: bytes/chip/step})
SAVED = {
    "llama_8b_v5p_128, scan_layers": ("v5p", 0.263, 0.998,
                                      {"all-gather": 27 * GiB, "all-reduce": 17 * GiB}),
    "flan_t5_xxl_v5p_128, scan_layers": ("v5p", 0.200, 0.948, None),
    "flan_t5_xl_v5e_256": ("v5e", 0.236, 0.244, None),
    "t5_large_v4_32": ("v4", 0.305, 0.307, None),
}  # fmt: skip


def recompute(chip: str, step_s: float, mfu: float, saved: dict | None) -> str:
    if saved is None:
        return "collective bytes not saved: re-run the compile-check"
    stats = {op: {"traffic": hlo_analysis.ring_traffic(op, b, 0)} for op, b in saved.items()}
    coll_s = roofline.collective_seconds(stats, tpu_topologies.CHIPS[chip].ici_bandwidth)
    traffic = sum(s["traffic"] for s in stats.values())
    no_overlap, overlap = step_s + coll_s, max(step_s, coll_s)
    return (
        f"traffic <= {traffic / GiB:.0f} GiB/chip, collectives {1e3 * coll_s:.0f} ms: "
        f"{1e3 * no_overlap:.0f} ms without overlap, MFU {100 * mfu * step_s / no_overlap:.1f}%;"
        f" {1e3 * overlap:.0f} ms with full overlap, MFU {100 * mfu * step_s / overlap:.1f}%"
    )


def main() -> None:
    for name, (chip, step_s, mfu, saved) in SAVED.items():
        print(f"{name} ({chip}): {recompute(chip, step_s, mfu, saved)}")


if __name__ == "__main__":
    main()
