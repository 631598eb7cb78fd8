"""What a compiled program does: its collectives, and the analytic FLOPs it should do.

`collective_stats(compiled.as_text())` counts the collectives of an optimized
HLO module (all-reduce, all-gather, reduce-scatter, all-to-all,
collective-permute) with their bytes and the bytes each device sends for them
(`traffic`, which `flanjax.perf.roofline` turns into time). `score_flops` counts the
matmul FLOPs of the score step (rank classification) from the model config, as `flanjax.flops`
does for the train step, to compare with the compiler's `cost_analysis()`
(which also counts rematerialization, elementwise work and, when training, the
optimizer update).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import jax

from flanjax.models import DecoderConfig, ModelConfig, T5Config, family_of

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")

# ---------------------------------------------------------------- collectives

_DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "s16": 2, "u16": 2,
                "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8,
                "f64": 8, "c64": 8, "c128": 16}  # fmt: skip
_COMP_RE = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_OP_RE = re.compile(
    r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(?P<shape>.+?)\s+(?P<op>"
    + "|".join(COLLECTIVES)
    + r")(?P<start>-start)?\("
)
_CALL_RE = re.compile(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)")
_CALLS_RE = re.compile(r"(?:branch_computations|called_computations)=\{([^}]*)\}")


def shape_bytes(shape: str, largest: bool = False) -> float:
    """Bytes of an HLO shape string (a tuple sums, or with `largest` takes its largest)."""
    sizes = []
    for dtype, dims in re.findall(r"\b([a-z]+\d*[a-z0-9]*)\[([\d,]*)\]", shape):
        width = 1 if dtype.startswith("f8") else _DTYPE_BYTES.get(dtype)
        if width is None:
            continue
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        sizes.append(n * width)
    if not sizes:
        return 0.0
    return float(max(sizes) if largest else sum(sizes))


def _split_computations(hlo: str) -> dict[str, list[str]]:
    comps: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in hlo.splitlines():
        m = _COMP_RE.match(line)
        if m:
            name = "ENTRY" if m.group(1) else m.group(2)
            current = comps.setdefault(name, [])
        elif line.startswith("}"):
            current = None
        elif current is not None:
            current.append(line)
    return comps


def _trip_count(line: str, comps: dict[str, list[str]]) -> int:
    """A while loop's trip count: XLA's known_trip_count, else `i < N` in its condition."""
    m = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
    if m:
        return int(m.group(1))
    cond = re.search(r"condition=%?([\w.\-]+)", line)
    body = comps.get(cond.group(1), []) if cond else []
    consts = [int(c) for ln in body for c in re.findall(r"s32\[\][^=]*constant\((\d+)\)", ln)]
    lt = any("direction=LT" in ln for ln in body)
    return consts[0] if lt and len(consts) == 1 else 1


def _multipliers(comps: dict[str, list[str]]) -> dict[str, int]:
    """How many times each computation runs per execution of the entry computation."""
    callers: dict[str, list[tuple[str, int]]] = {}
    for name, lines in comps.items():
        for line in lines:
            called = _CALL_RE.findall(line)
            for group in _CALLS_RE.findall(line):
                called += [c.strip().lstrip("%") for c in group.split(",") if c.strip()]
            trips = _trip_count(line, comps) if " while(" in line else 1
            body = re.search(r"body=%?([\w.\-]+)", line)
            for c in called:
                factor = trips if body and c == body.group(1) else 1
                callers.setdefault(c, []).append((name, factor))

    @functools.cache
    def mult(name: str) -> int:
        if name == "ENTRY" or name not in callers:
            return 1 if name == "ENTRY" else 0
        return sum(mult(c) * f for c, f in callers[name] if c != name)

    return {name: mult(name) for name in comps}


def group_size(line: str, num_devices: int = 0) -> int:
    """Devices in each replica group of a collective's HLO line: the mesh form (the
    product of the named axes' sizes), the iota form `replica_groups=[G,P]<=[N]` or the
    listed `{{0,1,..},..}`; a collective-permute
    pairs 2; no groups (`{}`) means every device (`num_devices`, 0 if unknown)."""
    if "collective-permute" in line.split("(")[0]:
        return 2
    m = re.search(r"replica_groups=mesh\[([^\]]*)\][^{]*\{([^}]*)\}", line)
    if m:  # mesh form: mesh['axis_0'=2,'axis_1'=4], device_ids=(...) {'axis_1'}
        sizes = dict(re.findall(r"'([^']+)'=(\d+)", m.group(1)))
        return math.prod(int(sizes.get(a, 1)) for a in re.findall(r"'([^']+)'", m.group(2)))
    m = re.search(r"replica_groups=\[([\d,]+)\]<=", line)
    if m:
        return int(m.group(1).split(",")[-1])
    m = re.search(r"replica_groups=\{\{([\d,\s]*)\}", line)
    if m:
        return len([d for d in m.group(1).split(",") if d.strip()])
    return num_devices


def ring_traffic(op: str, result_bytes: float, group: int) -> float:
    """Bytes each device sends for one collective in a ring over `group` devices (the
    bandwidth-optimal algorithms): an all-gather or all-to-all sends (P-1)/P of its
    result, a reduce-scatter P-1 times its shard, an all-reduce (a reduce-scatter then
    an all-gather) 2 (P-1)/P of its result, a collective-permute its result. An unknown
    group (0) counts as a large one (the factor's limit)."""
    share = (group - 1) / group if group > 0 else 1.0
    if op == "reduce-scatter":
        return result_bytes * (group - 1 if group > 0 else 1.0)
    factor = {"all-reduce": 2 * share, "collective-permute": 1.0}.get(op, share)
    return result_bytes * factor


def collective_stats(hlo: str, num_devices: int = 0) -> dict[str, dict[str, float]]:
    """Collectives of a compiled (optimized) HLO module by kind: count, bytes per
    device per execution (each result's size: an all-gather's gathered array, a
    reduce-scatter's shard), and `traffic`: the bytes each device sends for them
    (`ring_traffic`, from each op's replica groups). Loop bodies count once per
    iteration. TPU's async collective fusions repeat one collective in several fused
    computations of a chain (frontend attribute `chain_id`); a chain counts once."""
    comps = _split_computations(hlo)
    mult = _multipliers(comps)
    seen: dict[tuple[str, str], tuple[float, int, int]] = {}
    stats = {k: {"count": 0.0, "bytes": 0.0, "traffic": 0.0} for k in COLLECTIVES}
    for name, lines in comps.items():
        for i, line in enumerate(lines):
            m = _OP_RE.match(line)
            if not m or not mult.get(name, 0):
                continue
            size = shape_bytes(m.group("shape"), largest=bool(m.group("start")))
            chain = re.search(r'chain_id="(\d+)"', line)
            key = (m.group("op"), chain.group(1) if chain else f"{name}#{i}")
            old = seen.get(key, (0.0, 0, 0))
            group = max(old[2], group_size(line))  # a chain's members may omit it
            seen[key] = (max(old[0], size), max(old[1], mult[name]), group)
    for (op, _), (size, times, group) in seen.items():
        stats[op]["count"] += times
        stats[op]["bytes"] += size * times
        stats[op]["traffic"] += ring_traffic(op, size, group or num_devices) * times
    return stats


# ---------------------------------------------------------------- analytic FLOPs


def _t5_encoder_flops(m: T5Config, b: int, length: int) -> float:
    hk, d = m.num_heads * m.head_dim, m.d_model
    mlp = (3 if m.mlp_activation == "gated-gelu" else 2) * 2 * d * m.d_ff
    per_token = 4 * 2 * d * hk + 2 * 2 * length * hk + mlp
    bias = 2 * length * length * m.relative_buckets * m.num_heads  # once per batch
    return b * m.num_encoder_layers * length * per_token + bias


def _t5_decoder_flops(m: T5Config, b: int, t: int, enc_length: int, kv_rows: int) -> float:
    """`b` rows of `t` target tokens; the cross-attention keys and values are computed
    for `kv_rows` encoder outputs (b in training, the examples when scoring choices)."""
    hk, d = m.num_heads * m.head_dim, m.d_model
    mlp = (3 if m.mlp_activation == "gated-gelu" else 2) * 2 * d * m.d_ff
    self_attn = 4 * 2 * d * hk + 2 * 2 * t * hk
    cross = 2 * 2 * d * hk + 2 * 2 * enc_length * hk  # q, out; scores and values
    per_row = m.num_decoder_layers * t * (self_attn + cross + mlp) + 2 * t * d * m.vocab_size
    cross_kv = m.num_decoder_layers * enc_length * 2 * 2 * d * hk
    bias = 2 * t * t * m.relative_buckets * m.num_heads
    return b * per_row + kv_rows * cross_kv + bias


def _decoder_token_flops(m: DecoderConfig, attended: int) -> float:
    """One token through every layer, attending to `attended` positions (no logits)."""
    d, k = m.d_model, m.head_dim
    proj = 2 * d * k * (2 * m.num_heads + 2 * m.num_kv_heads)
    attn = 2 * 2 * attended * m.num_heads * k
    return m.num_layers * (proj + attn + 3 * 2 * d * m.d_ff)


def score_flops(model: ModelConfig, b: int, prompt: int, choice: int, c: int) -> float:
    """FLOPs of `inference.score_choices` on b prompts of length `prompt` with c choices
    of length `choice` each. T5: the encoder once, the cross-attention keys/values once
    per example, the decoder on b*c choices. Decoder-only: the prompt prefilled into
    a KV cache of prompt + choice slots (logits at its last position), then the
    choices' first choice-1 tokens against the repeated cache."""
    if family_of(model).encoder_decoder:
        enc = _t5_encoder_flops(model, b, prompt)
        return enc + _t5_decoder_flops(model, b * c, choice, prompt, b)
    slots, head = prompt + choice, 2 * model.d_model * model.vocab_size
    prefill = b * (prompt * _decoder_token_flops(model, slots) + head)
    return prefill + b * c * (choice - 1) * (_decoder_token_flops(model, slots) + head)


def param_count(abs_params: Any) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(abs_params))
