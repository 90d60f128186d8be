"""Outcomes learned from use: `POST /v1/feedback` and cascade escalations, read from the ledger.

Each ledger outcome labels one model on one prompt, so the matrix has holes: a missing label is
NaN, and training fits each model only on the rows that label it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelfarm.ledger import Ledger
from modelfarm.routing.learned.outcomes import Outcomes, OutcomesError


def outcomes_from_ledger(path: Path) -> Outcomes:
    """One row per distinct prompt; the mean score where a prompt was labelled more than once."""
    if not path.exists():
        raise OutcomesError(f"{path}: no ledger there; serve some requests first, or pass --ledger PATH")
    book = Ledger(path)
    try:
        rows = book.outcomes()
    finally:
        book.close()
    if not rows:
        raise OutcomesError(
            f"{path}: the ledger has no labelled outcomes yet; send POST /v1/feedback or enable a cascade"
        )
    prompts = list(dict.fromkeys(r.prompt for r in rows))
    models = list(dict.fromkeys(r.model for r in rows))
    total = np.zeros((len(prompts), len(models)))
    count = np.zeros((len(prompts), len(models)))
    p_index = {p: i for i, p in enumerate(prompts)}
    m_index = {m: j for j, m in enumerate(models)}
    for r in rows:
        total[p_index[r.prompt], m_index[r.model]] += r.score
        count[p_index[r.prompt], m_index[r.model]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        quality = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    ids = [f"ledger:{i + 1}" for i in range(len(prompts))]
    return Outcomes(prompts, ids, list(prompts), models, quality, None)


def merge(parts: list[Outcomes]) -> Outcomes:
    """Rows of all parts; models are the union, NaN where a part does not score a model."""
    models = list(dict.fromkeys(m for p in parts for m in p.models))
    blocks = []
    for p in parts:
        block = np.full((len(p), len(models)), np.nan)
        for j, m in enumerate(p.models):
            block[:, models.index(m)] = p.quality[:, j]
        blocks.append(block)
    return Outcomes(
        [t for p in parts for t in p.texts],
        [i for p in parts for i in p.ids],
        [g for p in parts for g in p.groups],
        models,
        np.vstack(blocks),
        None,
    )
