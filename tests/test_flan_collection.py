"""The Flan 2022 collection format: generated shards, submix rates, filters, held-out clusters."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import seqio
from conftest import SHARED_DATA

from flanjax import example_ids
from flanjax.data import flan_collection as fc
from flanjax.data import generated_collection, registry, sharded_files, stats
from flanjax.data.pipeline import DataConfig
from flanjax.data.readers import DataFileError

VOCAB = seqio.ByteVocabulary()


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    info = SHARED_DATA / "templates" / "flan_collection_info.csv"
    if not info.is_file():
        pytest.skip(f"{info} not found: the collection's task table is in ../shared/data")
    root = tmp_path_factory.mktemp("flan2022")
    sizes = generated_collection.write_collection(root, 4000, info, num_tasks=120, shards=2)
    return root, sizes


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(sharded_files.CACHE_ENV, str(tmp_path / "cache"))


def _register(root, name, **kw):
    cfg = fc.CollectionConfig(files=fc.files_in(root), **kw)
    return fc.register_collection(name, cfg, VOCAB, fc.load_categories(root, None))


def test_generated_shards_hold_the_released_record_format(collection, shared_data, tmp_path):
    root, sizes = collection
    assert sum(sizes.values()) == 4000 and set(sizes) <= set(fc.SOURCES)
    first = json.loads((root / "NIv2" / "train-00000-of-00002.jsonl").open().readline())
    assert set(first) == set(fc.FIELDS) and first["task_source"] == "NIv2"
    assert first["template_type"] in fc.TEMPLATE_TYPES
    counts = fc.shard_counts(str(root / "NIv2" / "train-00000-of-00002.jsonl"))
    assert sum(counts.values()) == sharded_files.count_records(
        str(root / "NIv2" / "train-00000-of-00002.jsonl")
    )
    again = tmp_path / "again"  # deterministic: the same seed writes the same bytes
    info = shared_data / "templates" / "flan_collection_info.csv"
    generated_collection.write_collection(again, 4000, info, num_tasks=120, shards=2)
    for path in root.rglob("*.jsonl"):
        assert (again / path.relative_to(root)).read_bytes() == path.read_bytes()


def _stream_sources(name, n) -> Counter:
    cfg = DataConfig(name, {"inputs": 256, "targets": 32}, batch_size=1, pack=False)
    ds, tasks = example_ids.tagged_dataset(cfg, seqio.ShardInfo(0, 1))
    return Counter(tasks[int(ex["task"])] for ex in ds.take(n).as_numpy_iterator())


def test_batches_follow_the_submix_rates(collection):
    root, _ = collection
    registered = _register(root, "test.fc_rates")
    rates = {f"test.fc_rates.{s.lower()}": r for s, r in fc.PUBLISHED_RATES.items()}
    rates = {t: rates[t] for t in registered["train"]}
    seen = _stream_sources("test.fc_rates", 2000)
    total = sum(rates.values())
    for task, rate in rates.items():
        p = rate / total
        sd = (p * (1 - p) / 2000) ** 0.5
        assert abs(seen[task] / 2000 - p) < 4 * sd + 1e-3, (task, seen[task], p)


def test_template_types_held_out_clusters_and_caps_filter_the_records(collection):
    root, _ = collection
    categories = fc.load_categories(root, None)
    heldout = fc.cluster_name(Counter(categories.values()).most_common(1)[0][0])
    out = _register(
        root, "test.fc_filter", template_types=("zs_opt",), heldout=(heldout,), max_per_task=20
    )
    held = {t for t, c in categories.items() if fc.cluster_name(c) == heldout}
    for task in out["train"]:
        info = registry.get_task_info(task)
        records = list(info.records("train"))
        assert {r["template_type"] for r in records} == {"zs_opt"}
        assert not {r["task_name"] for r in records} & held
        per_task = Counter(r["task_name"] for r in records)
        assert max(per_task.values()) <= 40  # capped at ~20 (a hash keeps 20/n of each)
        assert abs(len(records) - info.num_examples["train"]) <= 0.25 * len(records) + 10
        ds = seqio.get_mixture_or_task(task).get_dataset(
            {"inputs": 8192, "targets": 512}, "train", shuffle=False
        )
        rendered = [VOCAB.decode(ex["inputs"].tolist()) for ex in ds.as_numpy_iterator()]
        assert len(rendered) == len(records)  # the pipeline keeps what the stream keeps
        assert all("OPTIONS:" in r and " -> " not in r for r in rendered)  # zs_opt only
    assert out["eval"], "the held-out cluster's zero-shot records form evaluation tasks"
    assert registry.tasks_of(f"test.fc_filter.eval_{heldout}") == out["eval"]
    for task in out["eval"]:
        records = list(registry.get_task_info(task).records("validation"))
        assert {r["task_name"] for r in records} <= held
        assert {r["template_type"] for r in records} <= set(fc.ZERO_SHOT)


def test_stats_report_the_collection_without_loading_it(collection):
    root, _ = collection
    _register(root, "test.fc_stats")
    st = stats.mixture_stats("test.fc_stats", 10, 8, {"inputs": 512, "targets": 64}, sample=20)
    assert {t.task for t in st.tasks} == {f"test.fc_stats.{s.lower()}" for s in fc.files_in(root)}
    assert sum(t.train_examples for t in st.tasks) == 4000
    assert "test.fc_stats.niv2" in stats.format_stats(st)


def test_a_record_without_the_collection_fields_is_named(tmp_path):
    (tmp_path / "T0").mkdir()
    bad = tmp_path / "T0" / "train-00000-of-00001.jsonl"
    bad.write_text(json.dumps({"inputs": "a", "targets": "b", "task_name": "x"}) + "\n")
    with pytest.raises(DataFileError, match=r"train-00000-of-00001\.jsonl:1: a collection record "
                       r"needs \['task_source', 'template_type'\]"):  # fmt: skip
        fc.shard_counts(str(bad))
    with pytest.raises(FileNotFoundError, match="no submix folder"):
        fc.files_in(tmp_path / "nothing")
