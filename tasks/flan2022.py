"""The Flan 2022 collection as released (`flan2022.*`), when FLANJAX_FLAN2022_DIR names it.

The folder holds one subfolder per submix (Flan2021, T0, NIv2, CoT, Dialog) of jsonl or
jsonl.gz shards in the released record format (data/flan_collection.py), as
`scripts/generate_flan_collection.py` writes them. Registers the submix tasks
`flan2022.<source>` and the mixture `flan2022` at the published rates; held-out
clusters, template types and the per-task cap come from the environment:

  FLANJAX_FLAN2022_HELDOUT=natural_language_inference,sentiment_analysis
  FLANJAX_FLAN2022_TEMPLATE_TYPES=zs_opt,zs_noopt
  FLANJAX_FLAN2022_MAX_PER_TASK=30000

Clusters are the collection's generic task categories (lower case, `_` for spaces):
<dir>/categories.json, else DATA_DIR/templates/flan_collection_info.csv. For other
settings call `flan_collection.register_collection` from your own tasks module.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import seqio

from flanjax.data import catalog
from flanjax.data import flan_collection as fc

log = logging.getLogger(__name__)
DIR_ENV = "FLANJAX_FLAN2022_DIR"
INFO = "templates/flan_collection_info.csv"
TOKENIZER = "tokenizers/t5_spiece.model"


def _list(env: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(env, "")
    return tuple(v.strip() for v in value.split(",") if v.strip()) or default


def register(root: str | os.PathLike) -> dict[str, list[str]]:
    data = Path(catalog.default_data_dir() or "/nonexistent")
    cap = os.environ.get("FLANJAX_FLAN2022_MAX_PER_TASK")
    cfg = fc.CollectionConfig(
        files=fc.files_in(root),
        template_types=_list("FLANJAX_FLAN2022_TEMPLATE_TYPES", fc.TEMPLATE_TYPES),
        max_per_task=int(cap) if cap else None,
        heldout=_list("FLANJAX_FLAN2022_HELDOUT", ()),
    )
    vocab = (
        seqio.SentencePieceVocabulary(str(data / TOKENIZER), extra_ids=100)
        if (data / TOKENIZER).is_file()
        else seqio.ByteVocabulary()
    )
    info = data / INFO if (data / INFO).is_file() else None
    return fc.register_collection("flan2022", cfg, vocab, fc.load_categories(root, info))


if os.environ.get(DIR_ENV):
    registered = register(os.environ[DIR_ENV])
    log.info("flan2022: %s", registered)
