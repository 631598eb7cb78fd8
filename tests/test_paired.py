"""flanjax/perf/paired.py: two worker processes stepped in turn over pipes."""

import sys
import textwrap

import pytest

from flanjax.perf import paired

# a worker whose k-th step "takes" k * SECONDS (reported, not slept): the parent's
# bookkeeping is checked exactly, without timing anything
WORKER = textwrap.dedent(
    """
    import itertools, sys
    from flanjax.perf import paired
    print("noise on stdout is passed through", flush=True)
    counter = itertools.count(1)
    paired.serve(lambda: next(counter) * float(sys.argv[1]))
    """
)


def _argv(seconds: float) -> list[str]:
    return [sys.executable, "-c", WORKER, str(seconds)]


def test_alternate_runs_warmup_then_rounds_of_each_worker():
    times = paired.alternate({"a": _argv(1.0), "b": _argv(2.0)}, rounds=3, warmup=2, settle_s=0)
    # steps 1-2 of each are the untimed warm-up
    assert times == {"a": [3.0, 4.0, 5.0], "b": [6.0, 8.0, 10.0]}
    assert paired.summary(times, "a", "b") == {
        "rounds": 3,
        "a_step_s": 4.0,
        "b_step_s": 8.0,
        "median_ratio_a_over_b": 0.5,
        "ratios": [0.5, 0.5, 0.5],
        "a_steps_s": [3.0, 4.0, 5.0],
        "b_steps_s": [6.0, 8.0, 10.0],
    }


def test_a_worker_that_dies_names_itself():
    dead = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"worker 'b' exited with code 3 before PAIRED_READY"):
        paired.alternate({"a": _argv(1.0), "b": dead}, rounds=1)


def test_exactly_two_workers():
    with pytest.raises(ValueError, match="exactly two workers"):
        paired.alternate({"a": _argv(1.0)}, rounds=1)
