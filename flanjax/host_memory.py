"""glibc's malloc for flanjax's processes: large host buffers on transparent huge pages.

XLA's CPU runtime allocates a step's temporary buffers afresh each step, and glibc
hands large freed blocks back to the kernel, so each step faults its working set
back in, 4 KiB a fault: a T5-small train step on CPU-2 (BENCHMARKS.md) took 450k page
faults and 0.6 s of kernel time, 2.46 s a step. glibc's `glibc.malloc.hugetlb=1`
tunable makes malloc ask for transparent huge pages (madvise), 2 MiB a fault: 2.4k
faults, 0.3 s of kernel time, 2.28 s a step (torch's step, which reuses its blocks,
is unchanged by it). glibc reads tunables only when a process starts, so the
`flanjax` entry point re-executes itself once with the tunable added (`ensure`);
`FLANJAX_HUGEPAGES=0` turns that off. Kernels without THP and other C libraries
ignore the tunable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb=1"
ENV, OFF = "GLIBC_TUNABLES", "FLANJAX_HUGEPAGES"


def has_tunable(env: Mapping[str, str]) -> bool:
    """Whether `env` already sets malloc's huge-page tunable (to any value)."""
    names = {t.split("=", 1)[0] for t in env.get(ENV, "").split(":") if t}
    return TUNABLE.split("=", 1)[0] in names


def with_tunable(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` whose GLIBC_TUNABLES also sets the huge-page tunable, unless it
    is set already or `FLANJAX_HUGEPAGES=0` (tunables are colon-separated)."""
    out = dict(env)
    if env.get(OFF, "1") != "0" and not has_tunable(env):
        out[ENV] = ":".join(t for t in (env.get(ENV, ""), TUNABLE) if t)
    return out


def ensure() -> None:
    """Re-executes this Python process with the tunable, on Linux, unless it is set
    or turned off: call first thing in a program's entry point, before any import
    that allocates (it keeps the PID, the arguments and the rest of the environment)."""
    if sys.platform != "linux" or os.environ.get(OFF, "1") == "0" or has_tunable(os.environ):
        return
    argv = [sys.executable, *sys.orig_argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, with_tunable(os.environ))
