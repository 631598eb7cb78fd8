"""Catalog of the real datasets: where they lie, how to read and normalize them.

One frozen :class:`DatasetSpec` per dataset. Local files live under the data
directory (``FLANJAX_DATA_DIR``, by default ``../shared/data`` beside the
repository); :func:`load_records` streams them through the readers of
:mod:`flanjax.data.readers` and the normalizers of
:mod:`flanjax.data.normalizers`, whose docstring lists each dataset's fields.
Every record gets ``id = "<name>/<split>/<index>"`` (0-based position in the
normalized stream), which is unique and stable for a given file, so a pipeline
can check that no example was dropped or repeated.

Clusters come from FLAN's ``flan_clusters.json`` (``flan_name`` is the name
under which that file lists the dataset). Datasets it does not list get:

* ``"cot"``: the FLAN v2 chain-of-thought training sets;
* ``"math"``: GSM8K (FLAN 2021's cluster of ``math_dataset``); note that
  ``cot_gsm8k`` holds the same problems, so the held-out splits
  (:mod:`flanjax.data.heldout`) treat both as one dataset: holding out
  ``"math"`` also drops ``cot_gsm8k`` from training, and the reverse;
* ``"self_instruct"``: Self-Instruct's seed tasks.

Users with internet can read the same datasets with :func:`load_records_remote`
through TFDS or Hugging Face ``datasets``; each :class:`RemoteSource` says how
the remote splits and field names map onto the local ones. Remote class-label
integers are turned into their names before normalizing, so the normalizers
see the same label spellings wherever they come from.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flanjax.data import normalizers as norm
from flanjax.data.readers import (
    DATA_DIR_ENV,
    DataFileError,
    numbered_csv,
    numbered_jsonl,
    numbered_labeled_lines,
    numbered_tsv,
)

__all__ = [
    "CATALOG",
    "DatasetSpec",
    "RemoteSource",
    "default_data_dir",
    "get_spec",
    "load_records",
    "load_records_remote",
    "local_path",
]

Record = dict[str, Any]
READERS: Mapping[str, Callable[..., Iterator[tuple[int, Record]]]] = MappingProxyType(
    {
        "jsonl": numbered_jsonl,
        "csv": numbered_csv,
        "tsv": numbered_tsv,
        "labeled_lines": numbered_labeled_lines,
    }
)


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True, eq=False)
class RemoteSource:
    """A TFDS or Hugging Face source of a dataset, and how it maps to local.

    Frozen, read-only mappings; compared and hashed by identity.

    Attributes:
      name: TFDS ``name/config:version``, or the Hugging Face dataset path.
      config: the Hugging Face config name (None for TFDS, or no config).
      splits: local split -> remote split; local splits absent here have no
        remote counterpart.
      fields: remote field -> the raw field the normalizer reads.
      defaults: raw fields the remote lacks, with the value to use.
      note: how the remote data differs from the local file, if it does.
    """

    name: str
    config: str | None = None
    splits: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        for attr in ("splits", "fields", "defaults"):
            object.__setattr__(self, attr, _frozen(getattr(self, attr)))


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSpec:
    """One dataset: its local files, reader, normalizer and remote sources.

    Frozen, its mappings read-only; compared and hashed by identity (each
    spec is a singleton of ``CATALOG``), so it can key caches.

    Attributes:
      name: short name, the catalog key ("rte").
      cluster: FLAN task cluster (see the module docstring).
      splits: split -> file path relative to the data directory.
      reader: key of ``READERS``: "jsonl", "csv", "tsv" or "labeled_lines".
      normalize: raw record -> normalized fields (without ``id``).
      num_examples: split -> number of normalized records in the local file.
      label_names: the answer choices of a classification dataset, in the
        order of ``label_index``; None otherwise.
      reader_options: keyword arguments for the reader (e.g. TSV fieldnames).
      explode: local raw record -> several raw records (MultiRC's passages,
        Self-Instruct's instances); remote sources are flat already.
      group_by: merge consecutive raw rows that share this field into one
        ``{group_by: value, "rows": [row, ...]}`` record (E2E references).
      flan_name: the dataset's name in FLAN's flan_clusters.json, if listed.
      tfds, hf: remote sources, if any.
    """

    name: str
    cluster: str
    splits: Mapping[str, str]
    reader: str
    normalize: Callable[[Record], Record]
    num_examples: Mapping[str, int]
    label_names: tuple[str, ...] | None = None
    reader_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    explode: Callable[[Record], Iterable[Record]] | None = None
    group_by: str | None = None
    flan_name: str | None = None
    tfds: RemoteSource | None = None
    hf: RemoteSource | None = None

    def __post_init__(self) -> None:
        if self.reader not in READERS:
            raise ValueError(f"{self.name}: unknown reader {self.reader!r}")
        if set(self.num_examples) != set(self.splits):
            raise ValueError(f"{self.name}: num_examples must cover exactly {set(self.splits)}")
        for attr in ("splits", "num_examples", "reader_options"):
            object.__setattr__(self, attr, _frozen(getattr(self, attr)))

    @property
    def tfds_name(self) -> str | None:
        """E.g. ``"super_glue/rte:1.0.2"``."""
        return self.tfds.name if self.tfds else None

    @property
    def hf_name(self) -> tuple[str, str | None] | None:
        """``(path, config)`` for ``datasets.load_dataset``, e.g. ``("super_glue", "rte")``."""
        return (self.hf.name, self.hf.config) if self.hf else None


def _same(*splits: str) -> dict[str, str]:
    return {split: split for split in splits}


def _super_glue(
    name: str, cluster: str, *, config: str = "", flan_name: str = "", **kwargs: Any
) -> DatasetSpec:
    """A SuperGLUE task: TFDS super_glue/<config>, HF ("super_glue", <config>)."""
    splits, note, config = kwargs.pop("splits"), kwargs.pop("note", ""), config or name
    return DatasetSpec(
        name=name,
        cluster=cluster,
        splits=splits,
        reader="jsonl",
        flan_name=flan_name or name,
        tfds=RemoteSource(f"super_glue/{config}:1.0.2", splits=_same(*splits), note=note),
        hf=RemoteSource("super_glue", config, splits=_same(*splits), note=note),
        **kwargs,
    )


_SUPERGLUE = "eval/superglue"
_WSC_NOTE = (
    "The local file is plain WSC: idx 42's span2_index points at 'use', not "
    "'it'; wsc.fixed repairs spans that are not substrings of the text."
)
_SST2_NOTE = (
    "GLUE's SST-2 train split holds 67,349 phrases, not the 6,920 sentences "
    "of the local train file; GLUE hides test labels, so test is local only."
)
_E2E_TFDS_NOTE = (
    "GEM's e2e_nlg is the cleaned E2E (tuetschek/e2e-cleaning): its MRs are "
    "corrected, so groups and counts differ from the original devset."
)
_HF_AGNEWS_NOTE = "HF ag_news has no title: 'text' is read as the text, title is ''."

_SPECS: tuple[DatasetSpec, ...] = (
    _super_glue(
        "rte",
        "entailment",
        splits={
            "train": "train/rte/train.jsonl",
            "validation": f"{_SUPERGLUE}/RTE.val.jsonl",
        },
        num_examples={"train": 2490, "validation": 277},
        normalize=norm.normalize_rte,
        label_names=norm.ENTAILMENT_2,
    ),
    _super_glue(
        "cb",
        "entailment",
        splits={
            "train": "train/cb/train.jsonl",
            "validation": f"{_SUPERGLUE}/CB.val.jsonl",
        },
        num_examples={"train": 250, "validation": 56},
        normalize=norm.normalize_cb,
        label_names=norm.ENTAILMENT_3,
    ),
    _super_glue(
        "copa",
        "common_sense",
        splits={"validation": f"{_SUPERGLUE}/COPA.val.jsonl"},
        num_examples={"validation": 100},
        normalize=norm.normalize_copa,
    ),
    _super_glue(
        "wsc",
        "coreference",
        config="wsc.fixed",
        splits={"validation": f"{_SUPERGLUE}/WSC.val.jsonl"},
        num_examples={"validation": 104},
        normalize=norm.normalize_wsc,
        label_names=norm.FALSE_TRUE,
        note=_WSC_NOTE,
    ),
    _super_glue(
        "boolq",
        "reading_comprehension",
        flan_name="bool_q",
        splits={"validation": f"{_SUPERGLUE}/BoolQ.val.jsonl"},
        num_examples={"validation": 3270},
        normalize=norm.normalize_boolq,
        label_names=norm.NO_YES,
    ),
    _super_glue(
        "multirc",
        "reading_comprehension",
        splits={"validation": f"{_SUPERGLUE}/MultiRC.val.jsonl"},
        # 83 passages, 953 questions, 4,848 (question, candidate answer) rows.
        num_examples={"validation": 4848},
        normalize=norm.normalize_multirc,
        label_names=norm.FALSE_TRUE,
        explode=norm.explode_multirc,
    ),
    DatasetSpec(
        name="sst2",
        cluster="sentiment",
        flan_name="sst2",
        splits={
            "train": "train/sst2/train.txt",
            "validation": "eval/sst2/dev.txt",
            "test": "eval/sst2/test.txt",
        },
        num_examples={"train": 6920, "validation": 872, "test": 1821},
        reader="labeled_lines",
        normalize=norm.normalize_sst2,
        label_names=norm.SENTIMENT,
        tfds=RemoteSource(
            "glue/sst2:2.0.0",
            splits=_same("train", "validation"),
            fields={"sentence": "text"},
            note=_SST2_NOTE,
        ),
        hf=RemoteSource(
            "glue",
            "sst2",
            splits=_same("train", "validation"),
            fields={"sentence": "text"},
            note=_SST2_NOTE,
        ),
    ),
    DatasetSpec(
        name="trec",
        cluster="question_classification",
        flan_name="trec",
        splits={"train": "train/trec/train.txt", "test": "eval/trec/test.txt"},
        num_examples={"train": 5452, "test": 500},
        reader="labeled_lines",
        normalize=norm.normalize_trec,
        label_names=norm.TREC_LABELS,
        tfds=RemoteSource(
            "trec:1.0.0",
            splits=_same("train", "test"),
            fields={"label-coarse": "coarse_label", "label-fine": "fine_label"},
        ),
        hf=RemoteSource("trec", splits=_same("train", "test")),
    ),
    DatasetSpec(
        name="agnews",
        cluster="summarization",  # FLAN lists ag_news_subset under summarization
        flan_name="ag_news_subset",
        # The local file is the original test split, used here for training.
        splits={"train": "train/agnews/data.csv"},
        num_examples={"train": 7600},
        reader="csv",
        reader_options={
            "has_header": True,
            "fieldnames": ("label", "title", "description"),
        },
        normalize=norm.normalize_agnews,
        label_names=norm.AGNEWS_LABELS,
        tfds=RemoteSource("ag_news_subset:1.0.0", splits={"train": "test"}),
        hf=RemoteSource(
            "ag_news",
            splits={"train": "test"},
            fields={"text": "description"},
            defaults={"title": ""},
            note=_HF_AGNEWS_NOTE,
        ),
    ),
    DatasetSpec(
        name="nq_open",
        cluster="open_domain_qa",
        flan_name="natural_questions",
        splits={"validation": "eval/nq_open_dev.jsonl"},
        num_examples={"validation": 3610},
        reader="jsonl",
        normalize=norm.normalize_nq_open,
        tfds=RemoteSource("natural_questions_open:1.0.0", splits=_same("validation")),
        hf=RemoteSource("nq_open", splits=_same("validation")),
    ),
    DatasetSpec(
        name="e2e",
        cluster="structure_to_text",
        flan_name="e2e_nlg",
        splits={"validation": "eval/e2e/devset.csv"},
        # 4,672 rows: 547 meaning representations with their references.
        num_examples={"validation": 547},
        reader="csv",
        normalize=norm.normalize_e2e,
        group_by="mr",
        tfds=RemoteSource(
            "gem/e2e_nlg:1.1.0",
            splits=_same("validation"),
            fields={"meaning_representation": "mr", "target": "ref"},
            note=_E2E_TFDS_NOTE,
        ),
        hf=RemoteSource(
            "e2e_nlg",
            splits=_same("validation"),
            fields={"meaning_representation": "mr", "human_reference": "ref"},
        ),
    ),
    DatasetSpec(
        name="gsm8k",
        cluster="math",
        splits={"train": "train/gsm8k_train.jsonl"},
        num_examples={"train": 7473},
        reader="jsonl",
        normalize=norm.normalize_gsm8k,
        tfds=RemoteSource("gsm8k:1.0.0", splits=_same("train")),
        hf=RemoteSource("gsm8k", "main", splits=_same("train")),
    ),
    *(
        DatasetSpec(
            name=f"cot_{source}",
            cluster="cot",
            splits={"train": f"train/flan_cot/{source}_train.tsv"},
            num_examples={"train": count},
            reader="tsv",
            reader_options={"fieldnames": ("question", "answer", "rationale")},
            normalize=norm.normalize_cot,
        )
        for source, count in (
            ("gsm8k", 7473),
            ("aqua", 2728),
            ("creak", 6915),
            ("ecqa", 7112),
            ("qasc", 1084),
            ("sensemaking", 6070),
            ("strategyqa", 2061),
        )
    ),
    DatasetSpec(
        name="self_instruct",
        cluster="self_instruct",
        splits={"train": "train/self_instruct_seed_tasks.jsonl"},
        num_examples={"train": 175},  # 175 tasks, one instance each
        reader="jsonl",
        normalize=norm.normalize_self_instruct,
        explode=norm.explode_self_instruct,
    ),
)

CATALOG: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> DatasetSpec:
    """The spec called ``name``; ValueError listing the known names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def default_data_dir() -> Path | None:
    """``$FLANJAX_DATA_DIR`` if set, else ``<repo>/../shared/data`` if it exists."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    shared = repo_root.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def _as_spec(spec: DatasetSpec | str) -> DatasetSpec:
    return get_spec(spec) if isinstance(spec, str) else spec


def _check_split(spec: DatasetSpec, split: str, available: Iterable[str]) -> None:
    available = list(available)
    if split not in available:
        raise ValueError(f"{spec.name} has no split {split!r}; splits: {', '.join(available)}")


def local_path(
    spec: DatasetSpec | str, split: str, data_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The local file of ``split``; FileNotFoundError (with a hint) if absent."""
    spec = _as_spec(spec)
    _check_split(spec, split, spec.splits)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    hint = (
        f"set {DATA_DIR_ENV} to the folder that holds the data "
        "(by default ../shared/data beside the repository)"
    )
    if root is None:
        raise FileNotFoundError(f"no data directory for {spec.name!r}: {hint}")
    path = root / spec.splits[split]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file ({spec.name} {split}); {hint}")
    return path


def load_records(
    spec: DatasetSpec | str, split: str, data_dir: str | os.PathLike[str] | None = None
) -> Iterator[Record]:
    """Streams the normalized records of a local split (``data_dir`` None: default).

    Checks split and file at once; then a malformed line, or a record that
    fails to normalize, raises DataFileError naming file, line and field.
    """
    spec = _as_spec(spec)
    path = local_path(spec, split, data_dir)
    rows = READERS[spec.reader](path, **spec.reader_options)
    if spec.explode is not None:
        rows = _exploded(spec.explode, rows, lambda line: f"{path}:{line}")
    return _normalized(spec, split, rows, lambda line: f"{path}:{line}")


Where = norm.Where


def _guarded(where: str, action: Callable[[], Any]) -> Any:
    """Runs ``action``; a record error becomes a DataFileError prefixed ``where``."""
    try:
        return action()
    except norm.RecordError as exc:
        raise DataFileError(f"{where}: {exc}") from None
    except (TypeError, AttributeError, KeyError) as exc:
        raise DataFileError(f"{where}: malformed record ({type(exc).__name__}: {exc})") from None


def _exploded(
    explode: Callable[[Record], Iterable[Record]],
    rows: Iterable[tuple[Any, Record]],
    where: Where,
) -> Iterator[tuple[Any, Record]]:
    for position, raw in rows:
        for part in _guarded(where(position), lambda raw=raw: list(explode(raw))):
            yield position, part


def _normalized(
    spec: DatasetSpec, split: str, rows: Iterable[tuple[Any, Record]], where: Where
) -> Iterator[Record]:
    if spec.group_by is not None:
        rows = norm.group_consecutive(spec.group_by, rows, where)
    for index, (position, raw) in enumerate(rows):
        fields = _guarded(where(position), lambda raw=raw: spec.normalize(raw))
        yield {"id": f"{spec.name}/{split}/{index}", **fields}


def load_records_remote(
    spec: DatasetSpec | str, split: str, *, source: str | None = None
) -> Iterator[Record]:
    """Streams normalized records of ``split`` from TFDS or Hugging Face.

    ``source`` is "tfds", "hf" or None (TFDS if installed and known, else
    HF). Needs internet (or a prepared TFDS / HF cache). The library is
    imported here, never at module import. Records are normalized exactly as
    local ones; remote order may differ from the local file, and so may ids.
    """
    spec = _as_spec(spec)
    _check_split(spec, split, spec.splits)
    kind, remote = _choose_source(spec, source)
    _check_split(spec, split, remote.splits)
    remote_split = remote.splits[split]
    rows = _tfds_rows(remote, remote_split) if kind == "tfds" else _hf_rows(remote, remote_split)
    renamed = ((i, _renamed(row, remote)) for i, row in enumerate(rows))
    label = f"{kind} {remote.name}" + (f" ({remote.config})" if remote.config else "")
    return _normalized(spec, split, renamed, lambda i: f"{label} {remote_split}[{i}]")


_MODULES = {"tfds": "tensorflow_datasets", "hf": "datasets"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _choose_source(spec: DatasetSpec, source: str | None) -> tuple[str, RemoteSource]:
    known = {kind: getattr(spec, kind) for kind in _MODULES if getattr(spec, kind)}
    if not known:
        raise ValueError(f"{spec.name} has no TFDS or Hugging Face source: read its local files")
    if source is not None:
        if source not in _MODULES:
            raise ValueError(f"source must be 'tfds' or 'hf', got {source!r}")
        if source not in known:
            raise ValueError(f"{spec.name} has no {source} source; it has {sorted(known)}")
        candidates = [source]
    else:
        candidates = list(known)
    for kind in candidates:
        if _installed(_MODULES[kind]):
            return kind, known[kind]
    wanted = " or ".join(f"`pip install {_MODULES[k].replace('_', '-')}`" for k in candidates)
    raise ImportError(f"loading {spec.name} remotely needs {wanted}, or read the local files")


def _tfds_rows(remote: RemoteSource, split: str) -> Iterator[Record]:
    import tensorflow_datasets as tfds  # heavy and optional: imported on use

    dataset, info = tfds.load(remote.name, split=split, with_info=True, shuffle_files=False)
    class_labels = {
        key: feature
        for key, feature in info.features.items()
        if isinstance(feature, tfds.features.ClassLabel)
    }
    for example in tfds.as_numpy(dataset):
        yield norm.class_labels_to_names(norm.plain_value(example), class_labels)


def _hf_rows(remote: RemoteSource, split: str) -> Iterator[Record]:
    import datasets  # heavy and optional: imported on use

    dataset = datasets.load_dataset(remote.name, remote.config, split=split)
    class_labels = {
        key: feature
        for key, feature in dataset.features.items()
        if isinstance(feature, datasets.ClassLabel)
    }
    for row in dataset:
        yield norm.class_labels_to_names(dict(row), class_labels)


def _renamed(row: Record, remote: RemoteSource) -> Record:
    renamed = {remote.fields.get(key, key): value for key, value in row.items()}
    for key, value in remote.defaults.items():
        renamed.setdefault(key, value)
    return renamed
