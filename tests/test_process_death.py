"""Multi-host: when one process dies, the others exit non-zero within a bounded time.

Two processes (2 CPU devices each) join through `flanjax.distributed` on 127.0.0.1 and
run a global all-reduce in a loop; process 1 kills itself (SIGKILL) after the first
rounds. Process 0 must then fail, not hang: either its collective errors out on the
lost peer or the coordination service misses the dead process's heartbeats
(`DistributedConfig.heartbeat_timeout`, 5 s here) and stops the survivors.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

HEARTBEAT_S = 5
BOUND_S = 60  # from the death to the survivor's exit: heartbeat timeout + generous slack


def _driver(process_id: int, port: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from flanjax import distributed

    distributed.initialize(
        distributed.DistributedConfig(
            coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id,
            initialization_timeout=60, heartbeat_timeout=HEARTBEAT_S, shutdown_timeout=10,
        )
    )  # fmt: skip
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    total = jax.jit(jnp.sum, out_shardings=jax.sharding.NamedSharding(mesh, jax.P()))
    for step in range(10_000):
        local = np.full((2,), step, np.float32)
        x = jax.make_array_from_process_local_data(sharding, local)
        float(total(x))
        print(f"round {step}", flush=True)
        if process_id == 1 and step == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)


if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    os.environ["JAX_PLATFORMS"] = "cpu"
    _driver(int(sys.argv[1]), int(sys.argv[2]))
    sys.exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_survivor_exits_nonzero_soon_after_a_process_dies(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    port, procs, logs = _free_port(), [], []
    for i in range(2):
        logs.append(tmp_path / f"process_{i}.log")
        with open(logs[-1], "w") as log:
            cmd = [sys.executable, __file__, str(i), str(port)]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        assert procs[1].wait(timeout=240) == -signal.SIGKILL, logs[1].read_text()[-2000:]
        died = time.perf_counter()
        code = procs[0].wait(timeout=BOUND_S)
        waited = time.perf_counter() - died
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    survivor = logs[0].read_text()
    assert "round 3" in survivor  # it was running collectives with the dead process
    assert code != 0, survivor[-2000:]
    print(f"survivor exited {code} after {waited:.1f} s")
    assert waited < BOUND_S
