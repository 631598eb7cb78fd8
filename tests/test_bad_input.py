"""Bad data input: each case stops with a message naming file, line, task, template or field.

Cases checked elsewhere and not repeated here: a malformed jsonl line
(test_readers: invalid JSON, non-object, invalid UTF-8, empty file), a csv line
with the wrong field count (test_readers), a bad tsv line and a bad field value in a
catalog file (test_catalog), a template naming a missing field at registration
(test_builtin_tasks, test_templates), a label outside the choices when rendering
(test_templates), an unknown task or mixture (test_builtin_tasks, and through gin
in test_cli), truncation counts in `flanjax tasks stats` (test_stats).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import seqio

import flanjax.tasks  # noqa: F401  (registers the built-in suite)
from flanjax import cli
from flanjax.data import catalog, mixing, registry
from flanjax.data.pipeline import BatchIterator, DataConfig
from flanjax.data.readers import DataFileError
from flanjax.data.templates import Template, TemplateError
from flanjax.tasks import flan, flan_templates

RTE = [
    '{"premise": "A cat sat.", "hypothesis": "A cat exists.", "label": "entailment", "idx": 0}',
    '{"premise": "It rained.", "hypothesis": "It was dry.", "label": "not_entailment", "idx": 1}',
]


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    for name in names:
        registry.unregister(name)


def test_malformed_jsonl_line_in_a_task_file_names_file_and_line(tmp_path: Path):
    path = tmp_path / "train" / "rte" / "train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([*RTE, '{"premise": "x", "hypothesis": "y", "label": }', ""]))
    spec = catalog.get_spec("rte")
    records = flan._records_fn(spec, tmp_path, flan_templates.get("rte").prepare)("train")
    assert records[0]["premise"] == "A cat sat."  # registration reads the first record only
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}:3: invalid JSON"):
        records.load()  # what training reads


def test_malformed_csv_line_in_a_task_file_names_file_and_line(tmp_path: Path):
    path = tmp_path / "train" / "agnews" / "data.csv"
    path.parent.mkdir(parents=True)
    path.write_text('"3","Title","Body"\n"4","Only two"\n')
    with pytest.raises(DataFileError) as e:
        list(catalog.load_records("agnews", "train", tmp_path))
    assert str(e.value) == f"{path}:2: expected 3 comma-separated fields, got 2"


def _register(name: str, records: list[dict], templates: list[Template], **kw) -> None:
    registry.register_templated_task(
        name, cluster="x", templates=templates, records=lambda split: records,
        splits=("train",), vocabulary=kw.pop("vocabulary", seqio.ByteVocabulary()), **kw,
    )  # fmt: skip


def _read(name: str) -> None:
    seqio.get_mixture_or_task(name).get_dataset({"inputs": 32, "targets": 8}, split="train")


def test_a_later_record_missing_a_field_names_task_template_field_and_record(cleanup):
    records = [{"id": "r0", "q": "a", "a": "b"}, {"id": "r1", "q": "c"}]
    _register("bad.missing", records, [Template("t0", "{q}", "{a}")])
    cleanup.append("bad.missing")
    with pytest.raises(TemplateError) as e:
        _read("bad.missing")
    assert str(e.value) == (
        "task 'bad.missing', template 't0': the record has no field 'a' (its fields: id, q) "
        "(split 'train', record 'r1')"
    )


def test_a_later_label_outside_the_choices_names_the_record(cleanup):
    records = [{"id": "r0", "q": "a", "answer": "yes"}, {"id": "r1", "q": "b", "answer": "maybe"}]
    _register("bad.label", records, [Template("t0", "{q}", "{answer}", choices=("yes", "no"))])
    cleanup.append("bad.label")
    with pytest.raises(TemplateError) as e:
        _read("bad.label")
    assert str(e.value) == (
        "task 'bad.label', template 't0': the label 'maybe' in field 'answer' is not among the "
        "answer choices ['yes', 'no'] (split 'train', record 'r1')"
    )


def test_an_empty_dataset_is_refused_at_registration():
    with pytest.raises(ValueError, match="^task 'bad.empty': split 'train' has no records$"):
        _register("bad.empty", [], [Template("t0", "{q}", "{a}")])
    assert "bad.empty" not in seqio.TaskRegistry.names()


def test_unknown_task_mixture_or_model_config(capsys):
    with pytest.raises(ValueError, match=r"unknown task or mixture 'builtin.adition'.*addition"):
        BatchIterator(DataConfig("builtin.adition", {"inputs": 8, "targets": 8}, batch_size=2))
    with pytest.raises(ValueError, match=r"unknown flanjax task 'builtin.adition'.*addition"):
        registry.get_task_info("builtin.adition")
    argv = ["train", "--gin_file=models/t5_1_1_smal.gin", "--gin_file=runs/finetune.gin"]
    assert cli.main(argv) == 2
    assert "gin file 'models/t5_1_1_smal.gin' not found in" in capsys.readouterr().err


def test_feature_lengths_too_small_truncate_and_never_drop():
    message = "every length must be a positive integer"
    with pytest.raises(ValueError, match=r"\{'inputs': 0, 'targets': 8\}: every .* " + message):
        DataConfig("builtin.addition", {"inputs": 0, "targets": 8}, batch_size=8)
    with pytest.raises(ValueError, match="every converter needs a 'targets' length"):
        DataConfig("builtin.addition", {"inputs": 8}, batch_size=8)
    cfg = DataConfig(
        "builtin.addition", {"inputs": 4, "targets": 8}, batch_size=8,
        split="validation", pack=False, shuffle=False,
    )  # fmt: skip
    it = BatchIterator(cfg)
    rows = np.concatenate([next(it)["encoder_input_tokens"] for _ in range(8)])
    # 64 validation records, one epoch of 8 x 8 rows: every one kept, cut to 3 bytes + EOS.
    assert rows.shape == (64, 4)
    assert (rows[:, -1] == 1).all() and (rows[:, :3] > 1).all()
    assert len({tuple(r) for r in rows}) > 1  # several prompt openings, none dropped


def test_vocabularies_that_differ_across_a_mixture(cleanup):
    _register(
        "bad.vocab", [{"id": "r0", "q": "a", "a": "b"}], [Template("t0", "{q}", "{a}")],
        vocabulary=seqio.ByteVocabulary(extra_ids=10),
    )  # fmt: skip
    cleanup.extend(["bad.vocab", "bad.mix"])
    message = (
        "mixture 'bad.mix': tasks 'builtin.addition' and 'bad.vocab' use different 'inputs' "
        "vocabularies (ByteVocabulary(extra_ids=0) and ByteVocabulary(extra_ids=10)); every "
        "task of a mixture must share one"
    )
    with pytest.raises(ValueError) as e:
        mixing.register_mixture("bad.mix", ["builtin.addition", "bad.vocab"])
    assert str(e.value) == message
    with pytest.raises(ValueError, match=re.escape(message)):
        mixing.register_rated("bad.mix", {"builtin.addition": 1.0, "bad.vocab": 1.0})
    assert "bad.mix" not in seqio.MixtureRegistry.names()
