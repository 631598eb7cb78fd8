"""Joining a multi-process run: `jax.distributed.initialize` from config or environment.

One process per host (TPU VMs, GPU nodes) or per GPU. Each process must call
`initialize` before anything touches a JAX device. Where the values come from,
in order (`DistributedConfig.mode = "auto"`):

1. `DistributedConfig` fields set in gin (`--gin.DistributedConfig.process_id=1`),
   or JAX's own variables JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
   JAX_PROCESS_ID;
2. SLURM (`srun`): SLURM_NTASKS processes, this one SLURM_PROCID, the coordinator
   on the first node of SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST) at port
   JAX_COORDINATOR_PORT (default 12345 + SLURM_JOB_ID % 1000); with one task per
   GPU (SLURM_GPUS_PER_TASK=1 or SLURM_NTASKS_PER_NODE > 1 on a GPU node), each
   process sees the GPU SLURM_LOCALID;
3. a Cloud TPU VM: `jax.distributed.initialize()` with no arguments, which reads
   the worker list from the TPU metadata server.

Otherwise (one process on one machine) nothing is initialized. `mode = "off"`
never initializes; `mode = "on"` always calls `jax.distributed.initialize`,
passing what is known and letting JAX detect the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    mode: str = "auto"
    coordinator_address: str | None = None  # "host:port" of process 0
    num_processes: int | None = None
    process_id: int | None = None
    local_device_ids: tuple[int, ...] | None = None  # devices this process uses
    initialization_timeout: int = 300  # seconds to wait for every process
    # A process that misses heartbeats this long is declared dead and every other
    # process exits non-zero (instead of hanging in a collective).
    heartbeat_timeout: int = 100
    shutdown_timeout: int = 300  # seconds the final barrier waits at exit

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"DistributedConfig.mode {self.mode!r}: use one of {MODES}")


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "n[003-005,9],m1" -> "n003"."""
    m = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ValueError(f"cannot parse SLURM node list {nodelist!r}")
    prefix, ranges = m.group(1), m.group(3)
    if not ranges:
        return prefix
    return prefix + re.split(r"[,-]", ranges)[0]


def _slurm(env: Mapping[str, str]) -> dict[str, Any] | None:
    ntasks = int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")))
    if "SLURM_JOB_ID" not in env or ntasks <= 1:
        return None
    nodelist = env.get("SLURM_STEP_NODELIST") or env["SLURM_JOB_NODELIST"]
    port = env.get("JAX_COORDINATOR_PORT") or str(12345 + int(env["SLURM_JOB_ID"]) % 1000)
    out: dict[str, Any] = {
        "coordinator_address": f"{first_slurm_host(nodelist)}:{port}",
        "num_processes": ntasks,
        "process_id": int(env["SLURM_PROCID"]),
    }
    per_node = env.get("SLURM_NTASKS_PER_NODE", env.get("SLURM_TASKS_PER_NODE", "1"))
    one_per_gpu = env.get("SLURM_GPUS_PER_TASK") == "1" or (
        per_node.split("(")[0].isdigit() and int(per_node.split("(")[0]) > 1
    )
    if one_per_gpu and "SLURM_LOCALID" in env:
        out["local_device_ids"] = [int(env["SLURM_LOCALID"])]
    return out


def _on_cloud_tpu_vm() -> bool:
    try:
        from jax._src import hardware_utils

        return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
    except Exception:  # a private API: absent or changed means "no"
        return False


def resolve(cfg: DistributedConfig, env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The keyword arguments for `jax.distributed.initialize`, or None for a
    single-process run (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if cfg.mode == "off":
        return None
    explicit = {
        "coordinator_address": cfg.coordinator_address or env.get("JAX_COORDINATOR_ADDRESS"),
        "num_processes": cfg.num_processes or _int(env.get("JAX_NUM_PROCESSES")),
        "process_id": cfg.process_id
        if cfg.process_id is not None
        else _int(env.get("JAX_PROCESS_ID")),
    }
    if cfg.local_device_ids is not None:
        explicit["local_device_ids"] = list(cfg.local_device_ids)
    timeout = {
        "initialization_timeout": cfg.initialization_timeout,
        "heartbeat_timeout_seconds": cfg.heartbeat_timeout,
        "shutdown_timeout_seconds": cfg.shutdown_timeout,
    }
    if explicit["coordinator_address"]:
        return {**explicit, **timeout}
    slurm = _slurm(env)
    if slurm:
        return {**slurm, **{k: v for k, v in explicit.items() if v is not None}, **timeout}
    if cfg.mode == "on" or _on_cloud_tpu_vm():
        return {**{k: v for k, v in explicit.items() if v is not None}, **timeout}
    return None


def _int(v: str | None) -> int | None:
    return int(v) if v not in (None, "") else None


def initialize(cfg: DistributedConfig = DistributedConfig()) -> bool:
    """Joins the multi-process run if there is one; True if jax.distributed is up.

    Idempotent: a second call (or one after the process already initialized
    jax.distributed itself) does nothing.
    """
    import jax

    if jax.distributed.is_initialized():
        return True
    kwargs = resolve(cfg)
    if kwargs is None:
        return False
    log.info("jax.distributed.initialize(%s)", kwargs)
    jax.distributed.initialize(**kwargs)
    log.info("process %d of %d", jax.process_index(), jax.process_count())
    return True
