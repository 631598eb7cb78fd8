"""`flanjax preflight`: passes on the quickstart run and a converted SmolLM2 run; fails,
naming the line, on a vocabulary mismatch, empty targets, a contaminated mixture and a
config that does not fit a topology."""

from __future__ import annotations

import re

import pytest
import seqio

import flanjax.tasks  # noqa: F401
from flanjax import cli
from flanjax.data import mixing, registry
from flanjax.data.templates import Template

QUICKSTART = [
    "preflight",
    "--gin_file=runs/quickstart.gin",
    "--gin.T5Config.num_encoder_layers=1",
    "--gin.T5Config.num_decoder_layers=1",
    "--gin.BATCH_SIZE=4",
]


def _preflight(argv: list[str], tmp_path, capsys) -> tuple[int, dict[str, tuple[str, str]]]:
    rc = cli.main([*argv, f"--gin.MODEL_DIR='{tmp_path / 'run'}'"])
    captured = capsys.readouterr()
    out = captured.out
    lines = {}
    for line in out.splitlines()[1:-1]:
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        if len(parts) >= 2 and parts[1] in ("PASS", "FAIL", "SKIP"):
            lines[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    assert out and out.splitlines()[-1].startswith("preflight:"), (out, captured.err[-2000:])
    return rc, lines


def test_the_quickstart_config_passes(tmp_path, capsys):
    rc, lines = _preflight(QUICKSTART, tmp_path, capsys)
    assert rc == 0, lines
    assert lines["held-out"][0] == "PASS"  # the quickstart's eval mixture, from its gin
    for name in ("model", "vocabulary", "templates", "loss mask", "packing", "microbatches"):
        assert lines[name][0] == "PASS", (name, lines[name])
    assert lines["transformers"][0] == "SKIP" and lines["memory fit"][0] == "SKIP"
    assert not (tmp_path / "run").exists()  # preflight writes nothing


def test_empty_targets_and_contamination_fail_by_line(tmp_path, capsys):
    parity = registry.get_task_info("builtin.parity")  # in the held-out cluster
    copied = [
        dict(r, id=f"copy/{r['id']}", missing_answer="") for r in parity.records("validation")
    ]
    records = {"train": copied}  # its evaluation records, as training data
    registry.register_templated_task(
        "test_preflight.copied_parity",
        cluster="strings",  # not the held-out cluster: only the contamination check sees it
        templates=[*parity.templates, Template("empty", "Number {n}.", "{missing_answer}")],
        records=lambda split: records[split],
        splits=("train",),
        vocabulary=seqio.ByteVocabulary(),
    )
    mixing.register_mixture(
        "test_preflight.mix", ["builtin.addition", "test_preflight.copied_parity"]
    )
    try:
        argv = [*QUICKSTART, "--gin.MIXTURE_OR_TASK_NAME='test_preflight.mix'"]
        rc, lines = _preflight(argv, tmp_path, capsys)
    finally:
        registry.unregister("test_preflight.mix")
        registry.unregister("test_preflight.copied_parity")
    assert rc == 1
    assert lines["templates"][0] == "FAIL"
    assert (
        "'test_preflight.copied_parity' template 'empty': the targets render empty"
        in (lines["templates"][1])
    )
    assert lines["held-out"][0] == "FAIL"
    assert "contains evaluation examples of held-out cluster 'comparison'" in lines["held-out"][1]


def test_a_config_that_does_not_fit_the_topology_fails(tmp_path, capsys):
    argv = [
        "preflight",
        "--gin_file=models/t5_1_1_xxl.gin",
        "--gin_file=runs/finetune.gin",
        "--gin.T5Config.num_encoder_layers=1",
        "--gin.T5Config.num_decoder_layers=1",
        "--gin.MIXTURE_OR_TASK_NAME='builtin.train_without_comparison'",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 2048, 'targets': 512}",
        "--gin.TRAIN_STEPS=1",
        "--gin.BATCH_SIZE=16",
        "--topology=v5e:2x2",
    ]
    pytest.importorskip("libtpu")
    rc, lines = _preflight(argv, tmp_path, capsys)
    assert rc == 1
    assert lines["memory fit"][0] == "FAIL" and "DOES NOT FIT" in lines["memory fit"][1]


@pytest.mark.slow
def test_a_converted_smollm2_run_passes_and_a_vocabulary_mismatch_fails(
    smollm2_two_layers_model_dir, shared_data, tmp_path, capsys
):
    """SmolLM2's first two layers (its tokenizer, embedding and layer tensors): the
    checks' code paths on a converted checkpoint at a fraction of the 30 layers' compile."""
    smollm2_model_dir = smollm2_two_layers_model_dir
    argv = [
        "preflight",
        "--gin_file=runs/finetune.gin",
        f"--gin.INITIAL_CHECKPOINT_PATH='{smollm2_model_dir}'",
        "--gin.MIXTURE_OR_TASK_NAME='flan.train_without_entailment'",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 128, 'targets': 16}",
        "--gin.TRAIN_STEPS=1",
        "--gin.BATCH_SIZE=4",
        "--eval_mixture=flan.eval_entailment",
    ]
    rc, lines = _preflight(argv, tmp_path, capsys)
    assert rc == 0, lines
    assert lines["prompt layout"] == ("PASS", "plain")
    assert lines["transformers"][0] == "PASS", lines["transformers"]
    assert "the run's model" in lines["packing"][1]
    rc, lines = _preflight([*argv, "--gin.VOCABULARY='task'"], tmp_path, capsys)
    assert rc == 1 and lines["vocabulary"][0] == "FAIL"
    assert "vocabulary mismatch" in lines["vocabulary"][1]
    assert lines["loss mask"][0] == "SKIP"
