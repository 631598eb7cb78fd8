"""Mixing rates: caps, temperature, nested v2-style mixtures and prompt-format variants."""

from __future__ import annotations

import pytest
import seqio

import flanjax.tasks  # noqa: F401  (registers builtin.* and, with data, flan.*)
from flanjax.data import few_shot, mixing, registry
from flanjax.data.mixing import Submix

SIZES = {"big": 10_000, "mid": 3_000, "small": 500}


def test_cap_gives_the_rates_computed_by_hand():
    assert mixing.examples_proportional_rates(SIZES, cap=3000) == {
        "big": 3000.0,
        "mid": 3000.0,
        "small": 500.0,
    }
    # 3000 / (3000 + 3000 + 500) and 500 / 6500.
    props = mixing.normalize(mixing.examples_proportional_rates(SIZES, cap=3000))
    assert props == pytest.approx({"big": 0.461538, "mid": 0.461538, "small": 0.076923}, abs=1e-6)
    # Uncapped: 10000 / 13500.
    uncapped = mixing.normalize(mixing.examples_proportional_rates(SIZES, cap=None))
    assert uncapped["big"] == pytest.approx(0.740741, abs=1e-6)


def test_temperature_gives_the_rates_computed_by_hand():
    # T = 2: sqrt(3000) = 54.7723 twice and sqrt(500) = 22.3607, total 131.9052.
    rates = mixing.examples_proportional_rates(SIZES, cap=3000, temperature=2.0)
    assert rates == pytest.approx({"big": 54.7723, "mid": 54.7723, "small": 22.3607}, abs=1e-4)
    props = mixing.normalize(rates)
    assert props == pytest.approx({"big": 0.415240, "mid": 0.415240, "small": 0.169521}, abs=1e-6)
    # A very high temperature approaches uniform; T = 1 is examples-proportional.
    flat = mixing.normalize(mixing.examples_proportional_rates(SIZES, temperature=1e6))
    assert flat == pytest.approx({k: 1 / 3 for k in SIZES}, abs=1e-4)
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        mixing.examples_proportional_rates(SIZES, temperature=0)


def test_registered_mixtures_use_the_capped_rates(shared_data):
    # flan.eval_entailment: CB has 250 training examples, RTE 2,490 (both under 3,000).
    assert mixing.effective_proportions("flan.eval_entailment") == pytest.approx(
        {"flan.cb": 250 / 2740, "flan.rte": 2490 / 2740}
    )
    assert mixing.task_rates(["flan.agnews", "flan.rte"], cap=3000) == {
        "flan.agnews": 3000.0,  # 7,600 examples, capped
        "flan.rte": 2490.0,
    }
    mixing.register_mixture("test.mix", ["flan.agnews", "flan.cb"], cap=1000)
    try:
        assert mixing.effective_proportions("test.mix") == pytest.approx(
            {"flan.agnews": 0.8, "flan.cb": 0.2}  # 1000 : 250
        )
    finally:
        registry.unregister("test.mix")


V2 = Submix(
    "test.v2",
    children=(
        Submix("test.v2.flan", 0.5, ("builtin.addition", "builtin.parity"), cap=30_000,
               sizes={"builtin.addition": 40_000, "builtin.parity": 10_000}),
        Submix("test.v2.t0", 0.3, ("builtin.uppercase", "builtin.reverse_word"), cap=20_000,
               sizes={"builtin.uppercase": 5_000, "builtin.reverse_word": 5_000}),
        Submix("test.v2.cot", 0.2, ("builtin.passage_where",), cap=100_000,
               sizes={"builtin.passage_where": 100}),
    ),
)  # fmt: skip


def test_nested_mixture_gives_the_product_proportions():
    # flan: 0.5 x (30000 : 10000 after the cap) -> 0.375, 0.125; t0: 0.3 x (1/2, 1/2);
    # cot: 0.2 x 1.
    expected = {
        "builtin.addition": 0.375,
        "builtin.parity": 0.125,
        "builtin.uppercase": 0.15,
        "builtin.reverse_word": 0.15,
        "builtin.passage_where": 0.2,
    }
    assert mixing.nested_proportions(V2) == pytest.approx(expected)
    mixing.register_nested(V2)
    try:
        assert isinstance(seqio.get_mixture_or_task("test.v2.flan"), seqio.Mixture)
        assert mixing.effective_proportions("test.v2") == pytest.approx(expected)  # seqio's rates
    finally:
        for name in ("test.v2", "test.v2.flan", "test.v2.t0", "test.v2.cot"):
            registry.unregister(name)
    with pytest.raises(ValueError, match="give tasks or children"):
        Submix("bad", tasks=("a",), children=(V2,))


def test_format_recipe_splits_submixes_across_prompt_formats():
    formats = {"zs_opt": 0.4, "zs_noopt": 0.3, "fs_opt": 0.2, "fs_noopt": 0.1}
    tree = mixing.format_recipe(
        "test.fmt",
        {"arith": (3.0, ["builtin.addition"]), "cmp": (1.0, ["builtin.parity"])},
        formats,
    )
    # addition has no options: only the noopt cells, 0.3 : 0.1 of arith's 3/4.
    # parity has t0 without and t1, t2 with options: all four cells of cmp's 1/4.
    assert mixing.nested_proportions(tree) == pytest.approx(
        {
            "builtin.addition.zs_noopt": 0.75 * 0.75,
            "builtin.addition.fs_noopt": 0.75 * 0.25,
            "builtin.parity.zs_opt": 0.25 * 0.4,
            "builtin.parity.zs_noopt": 0.25 * 0.3,
            "builtin.parity.fs_opt": 0.25 * 0.2,
            "builtin.parity.fs_noopt": 0.25 * 0.1,
        }
    )
    few = registry.get_task_info("builtin.parity.fs_opt")
    assert [t.id for t in few.templates] == ["t1.3shot", "t2.3shot"]
    assert all(t.kind == "few_shot" and t.options_in_prompt for t in few.templates)
    record = registry.get_task_info("builtin.parity").records("validation")[0]
    example = few.templates[0].render(record, few.name)
    assert example.inputs.count("Is this number even or odd?") == 4  # 3 exemplars + the query
    pool = registry.get_task_info("builtin.parity").records("train")
    shots = few_shot.select_exemplars(pool, record["id"], 3)
    assert all(str(r["id"]).startswith("parity/train/") for r in shots)
    for r in shots:  # each exemplar solved, then the query last
        assert f"Number: {r['n']}\nIs this number even or odd?" in example.inputs
    assert example.inputs.rindex(f"Number: {record['n']}\n") > example.inputs.rindex("\n\n")
    zero = registry.get_task_info("builtin.parity.zs_noopt")
    assert [t.id for t in zero.templates] == ["t0"]
    for name in [*registry.task_infos()]:
        if name.startswith(("builtin.addition.", "builtin.parity.")):
            registry.unregister(name)
