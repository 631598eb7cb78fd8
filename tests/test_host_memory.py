"""flanjax/host_memory.py: the malloc huge-page tunable, added once, re-executing the process."""

import subprocess
import sys

from flanjax import host_memory


def test_with_tunable_appends_to_existing_tunables():
    assert host_memory.with_tunable({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    env = host_memory.with_tunable({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"})
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "X": "1"}


def test_a_users_setting_or_opt_out_wins():
    mine = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert host_memory.with_tunable(mine) == mine
    off = {"FLANJAX_HUGEPAGES": "0"}
    assert host_memory.with_tunable(off) == off


SHOW = (
    "import os, sys; from flanjax import host_memory; host_memory.ensure(); "
    "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])"
)


def _run(env_extra: dict) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "FLANJAX_HUGEPAGES")}
    cmd = [sys.executable, "-c", SHOW, "a", "--b"]
    return subprocess.run(cmd, env={**env, **env_extra}, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def test_ensure_reexecutes_once_with_the_same_arguments():
    assert _run({}) == "glibc.malloc.hugetlb=1 ['a', '--b']"
    assert _run({"FLANJAX_HUGEPAGES": "0"}) == "None ['a', '--b']"
