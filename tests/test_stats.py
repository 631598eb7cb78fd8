"""`flanjax tasks stats`: expected examples, tokens, truncation and packing, checked by hand."""

from __future__ import annotations

import pytest
import seqio

import flanjax.tasks  # noqa: F401  (registers the built-in suite)
from flanjax import cli
from flanjax.data import mixing, registry, stats
from flanjax.data.templates import Template

LENGTHS = {"inputs": 32, "targets": 8}


@pytest.fixture(scope="module")
def toy_mixture():
    """Byte-vocabulary tasks of fixed lengths (EOS included).

    stats.a: 300 records, 10 input and 4 target tokens. stats.b: 6,000 records,
    40 input tokens (truncated to 32) and 8 target tokens, through a zero-shot
    and a chain-of-thought template. Capped at 3,000: rates 300 : 3000.
    """
    vocab = seqio.ByteVocabulary()
    a = [{"id": f"a/{i}", "x": "a" * 9, "y": "b" * 3} for i in range(300)]
    b = [{"id": f"b/{i}", "x": "c" * 39, "y": "d" * 7} for i in range(6000)]
    registry.register_templated_task(
        "stats.a", cluster="toy", templates=[Template("t0", "{x}", "{y}")],
        records=lambda split: a, splits=("train",), vocabulary=vocab,
    )  # fmt: skip
    registry.register_templated_task(
        "stats.b", cluster="toy",
        templates=[Template("t0", "{x}", "{y}"), Template("t1", "{x}", "{y}", kind="cot")],
        records=lambda split: b, splits=("train",), vocabulary=vocab,
    )  # fmt: skip
    mixing.register_mixture("stats.mix", ["stats.a", "stats.b"], cap=3000)
    yield "stats.mix"
    for name in ("stats.mix", "stats.a", "stats.b"):
        registry.unregister(name)


def test_next_fit_packing_by_hand():
    # Rows: [a, a] (20 in, 8 tg); the third a overflows the targets: [a]; then b
    # (40 -> 32 in) overflows the inputs: [b]. 3 rows of 32 + 8 positions.
    rows, nonpad, (fill_in, fill_tg) = stats.pack_next_fit([(10, 4)] * 3 + [(40, 8)], (32, 8))
    assert rows == 3
    assert nonpad == pytest.approx((30 + 32 + 12 + 8) / 120)
    assert (fill_in, fill_tg) == pytest.approx((62 / 96, 20 / 24))


def test_unpacked_mixture_by_hand(toy_mixture):
    st = stats.mixture_stats(toy_mixture, 10, 4, LENGTHS, pack=False)
    assert st.examples == pytest.approx(40)  # 10 steps x 4 rows, one example a row
    a, b = sorted(st.tasks, key=lambda t: t.task)
    assert (a.proportion, b.proportion) == pytest.approx((1 / 11, 10 / 11))
    assert (a.examples, b.examples) == pytest.approx((40 / 11, 400 / 11))
    assert b.epochs == pytest.approx(400 / 11 / 6000)
    assert (a.inputs_tokens, a.targets_tokens, a.truncated_inputs) == (10, 4, 0)
    assert (b.inputs_tokens, b.targets_tokens) == (32, 8)
    assert (b.truncated_inputs, b.truncated_targets) == (1.0, 0.0)  # 8 tokens fit 8
    assert st.tokens == pytest.approx(40 / 11 * 14 + 400 / 11 * 40)
    by_type = st.by_type()
    assert sorted(by_type) == ["cot/no_options", "zero_shot/no_options"]
    assert by_type["cot/no_options"] == pytest.approx((200 / 11, 200 / 11 * 40))
    assert by_type["zero_shot/no_options"] == pytest.approx(
        (40 / 11 + 200 / 11, 40 / 11 * 14 + 200 / 11 * 40)
    )
    # Expected (14/11 + 400/11) / 40 positions hold tokens; 4,000 seeded draws land near it.
    assert st.nonpadding == pytest.approx((14 / 11 + 400 / 11) / 40, abs=0.01)


def test_packed_single_task_by_hand(toy_mixture):
    st = stats.mixture_stats("stats.a", 10, 4, LENGTHS)
    # Two examples fill a row's 8 target positions: 2 per row, 80 examples.
    assert st.examples_per_row == 2.0 and st.examples == 80
    assert st.nonpadding == pytest.approx((20 + 8) / 40)
    assert st.nonpadding_by_feature == pytest.approx({"inputs": 20 / 32, "targets": 1.0})
    assert st.unpacked_nonpadding == pytest.approx(14 / 40)
    # Targets bind: 4 / 8 per example against 10 / 32 of inputs, so at best (10 + 4) / (0.5 x 40).
    assert st.packing_bound == pytest.approx(0.7)
    assert st.tasks[0].epochs == pytest.approx(80 / 300)


def test_decoder_only_packing_by_hand(toy_mixture):
    lengths = {"inputs": 32, "targets": 16}
    # Each stats.a example is one sequence of 10 + 4 = 14 tokens in 48 positions: 3 a row
    # (3,000 draws: 1,000 full rows).
    st = stats.mixture_stats("stats.a", 10, 4, lengths, converter="prefix_lm", draws=3000)
    assert st.examples_per_row == 3.0 and st.examples == 120
    assert st.nonpadding == pytest.approx(42 / 48)
    assert st.nonpadding_by_feature == pytest.approx({"sequence": 42 / 48})
    assert st.unpacked_nonpadding == pytest.approx(14 / 48)
    assert st.packing_bound == 1.0
    # Encoder-decoder: 3 inputs of 10 fill 30 of 32, so 3 a row there too, but 12 of 16 targets.
    enc_dec = stats.mixture_stats("stats.a", 10, 4, lengths, draws=3000)
    assert enc_dec.nonpadding == pytest.approx((30 + 12) / 48)
    assert enc_dec.nonpadding_by_feature == pytest.approx({"inputs": 30 / 32, "targets": 12 / 16})


def test_cli_stats_on_the_builtin_mixture(capsys):
    args = ["tasks", "stats", "builtin.train_without_comparison", "--steps", "10"]
    args += ["--batch_size", "8", "--feature_lengths", "inputs:64,targets:16", "--no_pack"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "builtin.train_without_comparison: 10 steps x 8 rows, inputs:64 targets:16, unpacked\n"
        "expected examples 80 (1.00 per row)"
    )
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("b")}
    # 9 tasks of 2,000 examples (under the cap): 1/9 each, 80/9 = 8.9 examples, 0.0044 epochs.
    for task in ("builtin.addition", "builtin.passage_where", "builtin.uppercase"):
        assert rows[task][1:4] == ["11.11%", "9", "0.00"]
    # Every passage is longer than 64 bytes: all truncated, reported, none dropped.
    assert rows["builtin.passage_where"][5] == "64.0"
    assert rows["builtin.passage_where"][7] == "100.0%"
    assert rows["builtin.addition"][7] == "0.0%"
    assert "warning: 3 tasks have examples longer than the feature lengths" in out
    assert (
        "  builtin.passage_where: inputs of 100.0% of its examples (about 9 of 9) cut to 64 "
        "tokens\n" in out
    )
    bad = ["tasks", "stats", "builtin.trian_without_comparison", "--steps", "1"]
    assert cli.main([*bad, "--batch_size", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown task or mixture 'builtin.trian_without_comparison'" in err
    assert "Did you mean: builtin.train_without_comparison" in err
