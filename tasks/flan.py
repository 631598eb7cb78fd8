"""The real datasets of the catalog as seqio tasks `flan.<dataset>`, with FLAN mixtures.

Every dataset of `flanjax.data.catalog.CATALOG` becomes the task `flan.<name>`
(`flan.rte`, `flan.cot_gsm8k`, ...) in its FLAN cluster, rendered through the
templates of `flan_templates`, tokenized with the T5 SentencePiece vocabulary
(DATA_DIR/tokenizers/t5_spiece.model, plus seqio's 100 extra ids). Mixtures:
`flan.all`, and per cluster c `flan.train_without_<c>` and `flan.eval_<c>`.

Records are read from local files under the data directory
(`catalog.default_data_dir()`: $FLANJAX_DATA_DIR or ../shared/data), lazily:
registering reads only the first record of each dataset, to check that every
template renders; the rest is read on first use. Without a data directory (or
without the tokenizer) nothing is registered and a log line says why; a
dataset whose file is missing is skipped the same way.

Chain-of-thought templates are on by default; set FLANJAX_FLAN_COT=0 before
importing (or call `register(cot=False)`) to leave them out.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import seqio

from flanjax.data import catalog, heldout, registry
from flanjax.data.readers import DATA_DIR_ENV, DataFileError
from flanjax.tasks import flan_templates

log = logging.getLogger(__name__)

PREFIX = "flan"
TOKENIZER = "tokenizers/t5_spiece.model"
EXTRA_IDS = 100
COT_ENV = "FLANJAX_FLAN_COT"

Record = dict[str, Any]
Prepare = Callable[[Mapping[str, Any]], Record]


class LazyRecords(Sequence[Record]):
    """One split's prepared records, read from disk only when needed.

    `len()` is the catalog's count and `[0]` reads just the first record, so
    registering a task does not read its files; anything else loads the
    whole split once (and checks the count).
    """

    def __init__(
        self, spec: catalog.DatasetSpec, split: str, data_dir: Path, prepare: Prepare
    ) -> None:
        self._spec, self._split, self._dir, self._prepare = spec, split, data_dir, prepare
        self._records: tuple[Record, ...] | None = None

    def __len__(self) -> int:
        return self._spec.num_examples[self._split]

    def __getitem__(self, index: Any) -> Any:
        if self._records is None and index == 0:
            return self.first()
        return self.load()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.load())

    def first(self) -> Record:
        return self.head(1)[0]

    def head(self, n: int) -> list[Record]:
        """The first `n` records, reading no further than them if not loaded yet."""
        if self._records is not None:
            return list(self._records[:n])
        stream = catalog.load_records(self._spec, self._split, self._dir)
        return [self._prepare(r) for r in itertools.islice(stream, n)]

    def load(self) -> tuple[Record, ...]:
        if self._records is None:
            stream = catalog.load_records(self._spec, self._split, self._dir)
            records = tuple(self._prepare(r) for r in stream)
            if len(records) != len(self):
                raise DataFileError(
                    f"{self._spec.name} {self._split}: read {len(records)} records, the "
                    f"catalog expects {len(self)}"
                )
            self._records = records
        return self._records


def _records_fn(
    spec: catalog.DatasetSpec, data_dir: Path, prepare: Prepare
) -> Callable[[str], LazyRecords]:
    splits = {s: LazyRecords(spec, s, data_dir, prepare) for s in spec.splits}

    def records(split: str) -> LazyRecords:
        if split not in splits:
            raise ValueError(f"{PREFIX}.{spec.name} has no split {split!r}; splits: {list(splits)}")
        return splits[split]

    return records


def cot_enabled() -> bool:
    """FLANJAX_FLAN_COT: unset or anything but 0/false/no/off -> True."""
    return os.environ.get(COT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def vocabulary(data_dir: Path) -> seqio.SentencePieceVocabulary:
    """The T5 SentencePiece vocabulary (32,000 pieces + 100 extra ids)."""
    return _vocabulary(str(data_dir / TOKENIZER))


@functools.cache
def _vocabulary(path: str) -> seqio.SentencePieceVocabulary:
    return seqio.SentencePieceVocabulary(path, extra_ids=EXTRA_IDS)


def register_dataset(
    spec: catalog.DatasetSpec, data_dir: Path, vocab: seqio.Vocabulary, *, cot: bool = True
) -> registry.TaskInfo:
    """Registers `flan.<spec.name>`; reads the first record of its first split."""
    bundle = flan_templates.get(spec.name)
    templates = bundle.select(cot=cot)
    return registry.register_templated_task(
        f"{PREFIX}.{spec.name}",
        cluster=spec.cluster,
        templates=templates,
        records=_records_fn(spec, data_dir, bundle.prepare),
        splits=tuple(spec.splits),
        vocabulary=vocab,
        metric=bundle.metric,
    )


def _data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The data directory, or None after logging why there is none."""
    root = Path(data_dir) if data_dir is not None else catalog.default_data_dir()
    hint = f"set {DATA_DIR_ENV} or put the data in ../shared/data beside the repository"
    if root is None or not root.is_dir():
        log.info("flan tasks not registered: no data directory (%s; %s)", root, hint)
        return None
    if not (root / TOKENIZER).is_file():
        log.info("flan tasks not registered: no tokenizer at %s", root / TOKENIZER)
        return None
    return root


def register(
    data_dir: str | os.PathLike[str] | None = None, *, cot: bool | None = None
) -> list[str]:
    """Registers every catalog dataset found under `data_dir`, and the flan mixtures.

    Returns the registered task names (empty without data). `cot` None reads
    FLANJAX_FLAN_COT.
    """
    root = _data_dir(data_dir)
    if root is None:
        return []
    cot = cot_enabled() if cot is None else cot
    vocab = vocabulary(root)
    names = []
    for spec in catalog.CATALOG.values():
        try:
            names.append(register_dataset(spec, root, vocab, cot=cot).name)
        except (FileNotFoundError, DataFileError) as e:
            log.warning("task %s.%s not registered: %s", PREFIX, spec.name, e)
    if names:
        heldout.register_cluster_mixtures(PREFIX, names)
    log.info("registered %d flan tasks from %s (cot=%s)", len(names), root, cot)
    return names


TASK_NAMES: list[str] = register()
