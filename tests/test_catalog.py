"""Tests of flanjax.data.catalog: every dataset and split, on the real files.

The real-data tests read ../shared/data beside the repository (never copied
into it) and are skipped only when that directory is absent.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flanjax.data import catalog
from flanjax.data import normalizers as norm
from flanjax.data.catalog import (
    CATALOG,
    DatasetSpec,
    default_data_dir,
    get_spec,
    load_records,
    load_records_remote,
)
from flanjax.data.readers import DataFileError

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not found: real-data tests need it beside the repo")
    return SHARED_DATA


class Starts:
    """Equal to a string of ``length`` characters that starts with ``prefix``."""

    def __init__(self, prefix: str, length: int) -> None:
        self.prefix, self.length = prefix, length

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str) and other.startswith(self.prefix) and len(other) == self.length
        )

    def __repr__(self) -> str:
        return f"Starts({self.prefix!r}, length={self.length})"


# Record counts documented in ../shared/data/SOURCES.md; MultiRC is counted
# after flattening (83 passages -> 953 questions -> 4,848 answer rows) and E2E
# after grouping (4,672 rows -> 547 meaning representations).
EXPECTED_COUNTS = {
    ("rte", "train"): 2490,
    ("rte", "validation"): 277,
    ("cb", "train"): 250,
    ("cb", "validation"): 56,
    ("copa", "validation"): 100,
    ("wsc", "validation"): 104,
    ("boolq", "validation"): 3270,
    ("multirc", "validation"): 4848,
    ("sst2", "train"): 6920,
    ("sst2", "validation"): 872,
    ("sst2", "test"): 1821,
    ("trec", "train"): 5452,
    ("trec", "test"): 500,
    ("agnews", "train"): 7600,
    ("nq_open", "validation"): 3610,
    ("e2e", "validation"): 547,
    ("gsm8k", "train"): 7473,
    ("cot_gsm8k", "train"): 7473,
    ("cot_aqua", "train"): 2728,
    ("cot_creak", "train"): 6915,
    ("cot_ecqa", "train"): 7112,
    ("cot_qasc", "train"): 1084,
    ("cot_sensemaking", "train"): 6070,
    ("cot_strategyqa", "train"): 2061,
    ("self_instruct", "train"): 175,
}

FIRST_RECORDS: dict[tuple[str, str], dict[str, Any]] = {
    ("rte", "train"): {
        "premise": "No Weapons of Mass Destruction Found in Iraq Yet.",
        "hypothesis": "Weapons of Mass Destruction Found in Iraq.",
        "label": "not_entailment",
        "label_index": 1,
    },
    ("rte", "validation"): {
        "premise": "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung "
        "cancer at age 44, according to the Christopher Reeve Foundation.",
        "hypothesis": "Christopher Reeve had an accident.",
        "label": "not_entailment",
        "label_index": 1,
    },
    ("cb", "train"): {
        "premise": "It was a complex language. Not written down but handed down. "
        "One might say it was peeled down.",
        "hypothesis": "the language was peeled down",
        "label": "entailment",
        "label_index": 0,
    },
    ("cb", "validation"): {
        "premise": "Valence the void-brain, Valence the virtuous valet. Why couldn't the "
        "figger choose his own portion of titanic anatomy to shaft? Did he think he was helping?",
        "hypothesis": "Valence was helping",
        "label": "contradiction",
        "label_index": 1,
    },
    ("copa", "validation"): {
        "premise": "The man turned on the faucet.",
        "choice1": "The toilet filled with water.",
        "choice2": "Water flowed from the spout.",
        "choices": ["The toilet filled with water.", "Water flowed from the spout."],
        "question": "effect",
        "label_index": 1,
        "answer": "Water flowed from the spout.",
    },
    ("wsc", "validation"): {
        "text": Starts("Bernard , who had not told the government official that he", 251),
        "span1_text": "anyone",
        "span1_index": 32,
        "span2_text": "him",
        "span2_index": 47,
        "label": "false",
        "label_index": 0,
    },
    ("boolq", "validation"): {
        "passage": Starts("Ethanol fuel -- All biomass goes through at least some", 1384),
        "question": "does ethanol take more energy make that produces",
        "answer": "no",
        "label": "no",
        "label_index": 0,
    },
    ("multirc", "validation"): {
        "passage": Starts("What causes a change in motion? The application of a force.", 841),
        "question": "Would the mass of a baseball affect how much force you have to use "
        "to pick it up?",
        "answer": "No",
        "label": "false",
        "label_index": 0,
        "group_id": "p0-q0",
    },
    ("sst2", "train"): {
        "sentence": "a stirring , funny and finally transporting re-imagining of beauty "
        "and the beast and 1930s horror films",
        "label": "positive",
        "label_index": 1,
    },
    ("sst2", "validation"): {
        "sentence": "one long string of cliches .",
        "label": "negative",
        "label_index": 0,
    },
    ("sst2", "test"): {
        "sentence": "no movement , no yuks , not much of anything .",
        "label": "negative",
        "label_index": 0,
    },
    ("trec", "train"): {
        "question": "How did serfdom develop in and then leave Russia ?",
        "label": "description",
        "label_index": 0,
        "coarse_label": "DESC",
        "fine_label": "manner",
    },
    ("trec", "test"): {
        "question": "How far is it from Denver to Aspen ?",
        "label": "numeric",
        "label_index": 5,
        "coarse_label": "NUM",
        "fine_label": "dist",
    },
    ("agnews", "train"): {
        "title": "Fears for T N pension after talks",
        "text": "Unions representing workers at Turner   Newall say they are "
        "'disappointed' after talks with stricken parent firm Federal Mogul.",
        "label": "Business",
        "label_index": 2,
    },
    ("nq_open", "validation"): {
        "question": "when was the last time anyone was on the moon",
        "answers": ["14 December 1972 UTC", "December 1972"],
        "answer": "14 December 1972 UTC",
    },
    ("e2e", "validation"): {
        "meaning_representation": "name[Alimentum], area[city centre], familyFriendly[no]",
        "attributes": {
            "name": "Alimentum",
            "area": "city centre",
            "familyFriendly": "no",
        },
        "references": [
            "There is a place in the city centre, Alimentum, that is not family-friendly.",
            (
                "In the city centre there is a venue name Alimentum, this is not a "
                "family-friendly venue."
            ),
            "Alimentum is not a family-friendly place, located in city centre.",
            "Alimentum is not a family-friendly arena and is located in the city centre.",
            "Alimentum is not a family-friendly place in the city centre.",
            "Alimentum in city centre is not a family-friendly place.",
        ],
    },
    ("gsm8k", "train"): {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half "
        "as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "solution": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
        "<<48+24=72>>72 clips altogether in April and May.\n#### 72",
        "answer": "72",
    },
    ("cot_gsm8k", "train"): {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half "
        "as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "72",
        "rationale": "Natalia sold 48 / 2 = 24 clips in May. Natalia sold 48 + 24 = 72 clips "
        "altogether in April and May.",
    },
    ("cot_aqua", "train"): {
        "question": "Rs. 5600 is divided into three parts A, B and C. How much A is more than "
        "C if their ratio is 1/7:1/7:1/14?\nOptions:\n(A) 300\n(B) 992\n(C) 1120\n(D) 552\n"
        "(E) 312",
        "answer": "(C)",
        "rationale": "1/7:1/7:1/14 = 2:2:1\n1/5*5600 = 1120\n2240-1120 = 1120",
    },
    ("cot_creak", "train"): {
        "question": 'Claim: "Only people named Floyd wearing pink are allowed to attend Pink '
        'Floyd concerts."\nIs the claim above correct, and can it be verified by human common '
        "sense and without a web search?\nOptions:\n- yes\n- no",
        "answer": "no",
        "rationale": "The rock group would not be as popular is they had such requirements "
        "for their concerts.",
    },
    ("cot_ecqa", "train"): {
        "question": "What might a person see at the scene of a brutal killing?\nOptions:\n"
        "- bloody mess\n- pleasure\n- being imprisoned\n- feeling of guilt\n- cake",
        "answer": "bloody mess",
        "rationale": "Bloody mess is covered or stained with blood. A person might see a "
        "bloody mess at the scene of a brutal killing.",
    },
    ("cot_qasc", "train"): {
        "question": "What is the process by which living things give rise to offspring?\n"
        "Options:\n- (A) DNA\n- (B) photosynthesis\n- (C) bird\n- (D) sex\n- (E) subtraction\n"
        "- (F) gametes\n- (G) eggs\n- (H) ovum",
        "answer": "(D)",
        "rationale": "Reproduction is the process by which living things give rise to "
        "offspring. Sex equals reproduction. Sex is the process by which living things give "
        "rise to offspring.",
    },
    ("cot_sensemaking", "train"): {
        "question": "Of the following two sentences, which one is against common sense?\n"
        'Options:\n- Sentence A: "He poured orange juice on his cereal."\n'
        '- Sentence B: "He poured milk on his cereal."\n',
        "answer": "Sentence A",
        "rationale": "Orange juice does not taste good on cereal.",
    },
    ("cot_strategyqa", "train"): {
        "question": "Are more people today related to Genghis Khan than Julius Caesar?",
        "answer": "yes",
        "rationale": "Julius Caesar had three children. Genghis Khan had sixteen children. "
        "Modern geneticists have determined thatout of every 200 men today has DNA that can "
        "be traced to Genghis Khan.",
    },
    ("self_instruct", "train"): {
        "task": "breakfast_suggestion",
        "task_id": "seed_task_0",
        "instruction": "Is there anything I can eat for a breakfast that doesn't include eggs, "
        "yet includes protein, and has roughly 700-1000 calories?",
        "input": "",
        "output": Starts("Yes, you can have 1 oatmeal banana protein shake and 4 strips", 302),
        "is_classification": False,
    },
}

ALL_SPLITS = [(name, split) for name, spec in CATALOG.items() for split in spec.splits]


def test_catalog_lists_every_dataset_and_split() -> None:
    assert sorted(ALL_SPLITS) == sorted(EXPECTED_COUNTS)
    assert sorted(FIRST_RECORDS) == sorted(EXPECTED_COUNTS)


@pytest.mark.parametrize(("name", "split"), ALL_SPLITS)
def test_real_split_count_ids_and_first_record(data_dir: Path, name: str, split: str) -> None:
    spec = get_spec(name)
    records = list(load_records(spec, split, data_dir))
    assert len(records) == EXPECTED_COUNTS[name, split] == spec.num_examples[split]
    assert [r["id"] for r in records] == [f"{name}/{split}/{i}" for i in range(len(records))]
    first = dict(records[0])
    assert first.pop("id") == f"{name}/{split}/0"
    assert first == FIRST_RECORDS[name, split]
    keys = set(first) | {"id"}
    assert all(set(r) == keys for r in records), "every record has the same fields"
    if spec.label_names is not None:
        assert all(r["label"] == spec.label_names[r["label_index"]] for r in records)


LABEL_COUNTS = {
    ("rte", "validation"): {"entailment": 146, "not_entailment": 131},
    ("cb", "validation"): {"contradiction": 28, "entailment": 23, "neutral": 5},
    ("wsc", "validation"): {"false": 66, "true": 38},
    ("boolq", "validation"): {"yes": 2033, "no": 1237},
    ("multirc", "validation"): {"false": 2773, "true": 2075},
    ("sst2", "train"): {"positive": 3610, "negative": 3310},
    ("trec", "test"): {
        "numeric": 113,
        "location": 81,
        "human": 65,
        "description": 138,
        "entity": 94,
        "abbreviation": 9,
    },
    ("agnews", "train"): {
        "World": 1900,
        "Sports": 1900,
        "Business": 1900,
        "Sci/Tech": 1900,
    },
}


@pytest.mark.parametrize(("name", "split"), sorted(LABEL_COUNTS))
def test_real_label_counts(data_dir: Path, name: str, split: str) -> None:
    counts = collections.Counter(r["label"] for r in load_records(name, split, data_dir))
    assert counts == LABEL_COUNTS[name, split]


def test_multirc_groups_and_e2e_references(data_dir: Path) -> None:
    multirc = list(load_records("multirc", "validation", data_dir))
    assert len({r["group_id"] for r in multirc}) == 953
    assert len({r["passage"] for r in multirc}) == 83
    e2e = list(load_records("e2e", "validation", data_dir))
    assert sum(len(r["references"]) for r in e2e) == 4672
    assert all(r["attributes"]["name"] for r in e2e)


def test_clusters_match_flan_clusters_json(data_dir: Path) -> None:
    clusters = json.loads((data_dir / "flan_clusters.json").read_text())["clusters"]
    cluster_of = {dataset: c for c, datasets in clusters.items() for dataset in datasets}
    for spec in CATALOG.values():
        if spec.flan_name is not None:
            assert cluster_of[spec.flan_name] == spec.cluster, spec.name
        else:
            assert spec.name not in cluster_of
            assert spec.cluster in {"cot", "math", "self_instruct"}, spec.name


def test_agnews_label_names_follow_classes_txt(data_dir: Path) -> None:
    text = (data_dir / "train/agnews/classes.txt").read_text().strip()
    assert text == "1-World, 2-Sports, 3-Business, 4-Science/Tech"
    names = [item.split("-", 1)[1] for item in text.split(", ")]
    assert [n.replace("Science", "Sci") for n in names] == list(get_spec("agnews").label_names)


# ------------------------------------------------------------ API and errors


def test_get_spec_unknown_name_lists_known_names() -> None:
    assert get_spec("rte") is CATALOG["rte"]
    with pytest.raises(ValueError, match="unknown dataset 'nope'; known datasets: agnews, boolq"):
        get_spec("nope")


def test_spec_is_frozen_and_carries_remote_names() -> None:
    spec = get_spec("rte")
    assert isinstance(spec, DatasetSpec)
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.splits["test"] = "x"  # type: ignore[index]
    assert {spec: 1}[get_spec("rte")] == 1, "specs can key caches"
    assert spec.tfds_name == "super_glue/rte:1.0.2"
    assert spec.hf_name == ("super_glue", "rte")
    assert get_spec("wsc").tfds_name == "super_glue/wsc.fixed:1.0.2"
    assert get_spec("cot_aqua").tfds_name is None and get_spec("cot_aqua").hf_name is None


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLANJAX_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("FLANJAX_DATA_DIR")
    expected = SHARED_DATA if SHARED_DATA.is_dir() else None
    assert default_data_dir() == expected


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="copa has no split 'train'; splits: validation"):
        load_records("copa", "train", tmp_path)


def test_missing_file_hints_at_data_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_records("rte", "validation", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "eval/superglue/RTE.val.jsonl") in message
    assert "FLANJAX_DATA_DIR" in message


def test_no_data_dir_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "default_data_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="no data directory for 'rte'.*FLANJAX_DATA_DIR"):
        load_records("rte", "validation")


def put(root: Path, relative: str, content: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def test_bad_record_names_file_line_and_field(tmp_path: Path) -> None:
    content = (
        '{"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0}\n'
        '{"premise": "p", "hypothesis": "h", "label": "maybe", "idx": 1}\n'
    )
    path = put(tmp_path, "eval/superglue/RTE.val.jsonl", content)
    records = load_records("rte", "validation", tmp_path)
    assert next(records)["label"] == "entailment"
    with pytest.raises(DataFileError) as info:
        next(records)
    assert str(info.value) == (
        f"{path}:2: field 'label': 'maybe' is not one of entailment, not_entailment"
    )


def test_missing_field_names_it(tmp_path: Path) -> None:
    path = put(tmp_path, "eval/superglue/COPA.val.jsonl", '{"premise": "p"}\n')
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}:1: field 'choice1': missing"
    ):
        list(load_records("copa", "validation", tmp_path))


def test_bad_nested_multirc_record_names_line(tmp_path: Path) -> None:
    good = {
        "idx": 0,
        "passage": {
            "text": "t",
            "questions": [
                {
                    "idx": 0,
                    "question": "q",
                    "answers": [{"text": "a", "idx": 0, "label": 1}],
                }
            ],
        },
    }
    bad = {
        "idx": 1,
        "passage": {"text": "t", "questions": [{"idx": 0, "question": "q"}]},
    }
    path = put(
        tmp_path,
        "eval/superglue/MultiRC.val.jsonl",
        f"{json.dumps(good)}\n{json.dumps(bad)}\n",
    )
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}:2: field 'answers': missing"
    ):
        list(load_records("multirc", "validation", tmp_path))


def test_bad_tsv_line_in_a_catalog_file(tmp_path: Path) -> None:
    path = put(tmp_path, "train/flan_cot/qasc_train.tsv", "q\ta\tr\nq\ta\n")
    with pytest.raises(
        DataFileError,
        match=rf"^{re.escape(str(path))}:2: expected 3 tab-separated fields, got 2$",
    ):
        list(load_records("cot_qasc", "train", tmp_path))


def test_e2e_groups_must_be_consecutive(tmp_path: Path) -> None:
    content = "mr,ref\nname[A],a1\nname[A],a2\nname[B],b1\nname[A],a3\n"
    path = put(tmp_path, "eval/e2e/devset.csv", content)
    records = load_records("e2e", "validation", tmp_path)
    assert next(records)["references"] == ["a1", "a2"]
    assert next(records)["references"] == ["b1"]
    with pytest.raises(
        DataFileError,
        match=rf"^{re.escape(str(path))}:5: field 'mr': rows for 'name\[A\]' are not",
    ):
        next(records)


def test_gsm8k_without_final_answer(tmp_path: Path) -> None:
    path = put(
        tmp_path,
        "train/gsm8k_train.jsonl",
        '{"question": "q", "answer": "no marker"}\n',
    )
    with pytest.raises(
        DataFileError,
        match=rf"^{re.escape(str(path))}:1: field 'answer': no final '#### NUMBER'",
    ):
        list(load_records("gsm8k", "train", tmp_path))


# ------------------------------------------------------------------- remote


class FakeClassLabel:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def int2str(self, index: int) -> str:
        return self.names[index]


@pytest.fixture(autouse=True)
def remote_libraries_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote tests fake the rows; they must not depend on what is installed."""
    monkeypatch.setattr(catalog, "_installed", lambda module: True)


def fake_rows(
    rows: list[dict[str, Any]],
) -> Callable[[Any, str], Iterator[dict[str, Any]]]:
    def rows_for(remote: Any, split: str) -> Iterator[dict[str, Any]]:
        assert split in remote.splits.values()
        yield from rows

    return rows_for


def test_remote_tfds_trec_rows_are_renamed_and_normalized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coarse = FakeClassLabel(["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"])
    raw = norm.class_labels_to_names(
        norm.plain_value({"label-coarse": 4, "label-fine": b"dist", "text": b"How far ?"}),
        {"label-coarse": coarse},
    )
    monkeypatch.setattr(catalog, "_tfds_rows", fake_rows([raw]))
    (record,) = load_records_remote("trec", "test", source="tfds")
    assert record == {
        "id": "trec/test/0",
        "question": "How far ?",
        "label": "numeric",
        "label_index": 5,
        "coarse_label": "NUM",
        "fine_label": "dist",
    }


def test_remote_hf_rows_use_the_same_normalizers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [
        {"text": "How far ?", "coarse_label": "NUM", "fine_label": "NUM:dist"},
    ]
    monkeypatch.setattr(catalog, "_hf_rows", fake_rows(rows))
    (record,) = load_records_remote("trec", "train", source="hf")
    assert (record["label"], record["fine_label"]) == ("numeric", "dist")
    news = [{"text": "Body", "label": "Sci/Tech"}]
    monkeypatch.setattr(catalog, "_hf_rows", fake_rows(news))
    (record,) = load_records_remote("agnews", "train", source="hf")
    assert record == {
        "id": "agnews/train/0",
        "title": "",
        "text": "Body",
        "label": "Sci/Tech",
        "label_index": 3,
    }


def test_remote_superglue_and_grouped_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    boolq = {"question": "q", "passage": "p", "idx": 0, "label": "True"}
    multirc = {
        "paragraph": "p",
        "question": "q",
        "answer": "a",
        "idx": {"paragraph": 3, "question": 1, "answer": 9},
        "label": "False",
    }
    e2e = [{"meaning_representation": "name[A]", "target": t} for t in ("x", "y")]
    monkeypatch.setattr(catalog, "_tfds_rows", fake_rows([boolq]))
    assert next(load_records_remote("boolq", "validation", source="tfds"))["answer"] == "yes"
    monkeypatch.setattr(catalog, "_tfds_rows", fake_rows([multirc]))
    record = next(load_records_remote("multirc", "validation", source="tfds"))
    assert (record["label"], record["group_id"]) == ("false", "p3-q1")
    monkeypatch.setattr(catalog, "_tfds_rows", fake_rows(e2e))
    (record,) = load_records_remote("e2e", "validation", source="tfds")
    assert record["references"] == ["x", "y"]


def test_remote_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="cot_qasc has no TFDS or Hugging Face source"):
        load_records_remote("cot_qasc", "train")
    with pytest.raises(ValueError, match="sst2 has no split 'test'; splits: train, validation"):
        load_records_remote("sst2", "test", source="tfds")
    monkeypatch.setattr(catalog, "_installed", lambda module: False)
    with pytest.raises(ImportError, match="pip install tensorflow-datasets.*pip install datasets"):
        load_records_remote("rte", "validation")


def test_importing_the_data_layer_imports_no_heavy_library() -> None:
    code = (
        "import sys, flanjax.data.catalog, flanjax.data.readers; "
        "heavy = {'jax', 'tensorflow', 'tensorflow_datasets', 'datasets', 'flanjax.models'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
