"""XLA flags: added once, never overriding the user's, and off with FLANJAX_XLA_FLAGS=0."""

from flanjax import xla_flags


def test_user_flags_win_and_nothing_is_added_twice() -> None:
    env = {"XLA_FLAGS": "--xla_gpu_enable_latency_hiding_scheduler=false --foo=1"}
    value = xla_flags.apply(env)
    flags = value.split()
    assert flags[:2] == ["--xla_gpu_enable_latency_hiding_scheduler=false", "--foo=1"]
    assert "--xla_gpu_enable_latency_hiding_scheduler=true" not in flags
    assert "--xla_gpu_enable_pipelined_all_gather=true" in flags
    assert xla_flags.apply(env) == value  # idempotent
    assert len(flags) == 2 + len(xla_flags.GPU_FLAGS) - 1


def test_opt_out() -> None:
    env = {"FLANJAX_XLA_FLAGS": "0", "XLA_FLAGS": "--foo=1"}
    assert xla_flags.apply(env) == "--foo=1" and env["XLA_FLAGS"] == "--foo=1"
