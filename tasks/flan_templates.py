"""FLAN-style templates for every dataset of the real-data catalog.

`TEMPLATES` maps each catalog dataset name (flanjax.data.catalog.CATALOG) to
its `DatasetTemplates`: ten or more templates, written for this project, and
the `prepare` function that adds the derived fields they read. The templates
live in one module per group of FLAN clusters:

* flan_templates_nlu: RTE, CB, COPA, WSC, BoolQ, MultiRC;
* flan_templates_classify: SST-2, TREC, AG News;
* flan_templates_generate: NQ-open, E2E, Self-Instruct;
* flan_templates_cot: GSM8K and the FLAN v2 chain-of-thought sets.

`templates_for(name, cot=False)` leaves the chain-of-thought templates out.
"""

from __future__ import annotations

from flanjax.data.templates import Template
from flanjax.tasks import (
    flan_templates_classify,
    flan_templates_cot,
    flan_templates_generate,
    flan_templates_nlu,
)
from flanjax.tasks.flan_templates_common import DatasetTemplates

TEMPLATES: dict[str, DatasetTemplates] = {
    **flan_templates_nlu.DATASETS,
    **flan_templates_classify.DATASETS,
    **flan_templates_generate.DATASETS,
    **flan_templates_cot.DATASETS,
}


def get(name: str) -> DatasetTemplates:
    """The templates of catalog dataset `name`; ValueError naming the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise ValueError(f"no FLAN templates for {name!r}; known: {known}") from None


def templates_for(name: str, *, cot: bool = True) -> tuple[Template, ...]:
    """The templates of dataset `name`; `cot=False` drops the chain-of-thought ones."""
    return get(name).select(cot=cot)
