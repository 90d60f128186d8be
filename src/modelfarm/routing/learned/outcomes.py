"""Outcomes files: which model did how well on which prompt, the learned router's training data.

One CSV row per prompt:

    prompt              the text a router sees (required)
    score__<model>      that model's quality on this prompt, in [0, 1] (one column per model)
    cost__<model>       optional: what that model cost on this prompt, in USD
    group               optional: rows with the same group are the same question (kept together
                        on one side of any cross-validation split)
    id                  optional: a row's name, echoed in `modelfarm router score` output

Rows are numbered from 1, the first row below the header. Other columns are ignored. Every
problem is reported as an `OutcomesError` naming the file, the column (and row) and what to do.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelfarm.errors import ConfigError

SCORE = "score__"
COST = "cost__"


class OutcomesError(ConfigError):
    """An outcomes CSV (or a router file) cannot be used: the message names file, column and fix."""

    code = "invalid_outcomes"


@dataclass(frozen=True)
class Outcomes:
    """Rows of one or more outcomes files, in file order."""

    texts: list[str]
    ids: list[str]
    """The `id` column, else the data row number (1 = the first row below the header), prefixed
    with `<file stem>:` when several files are read together."""
    groups: list[str]
    """The `group` column, else the id: every row its own group."""
    models: list[str]
    """Models with a `score__` column, in column order."""
    quality: np.ndarray
    """(N, M) float64 realised quality in [0, 1]; (N, 0) when read without scores."""
    cost: np.ndarray | None
    """(N, M) float64 USD per row and model, when every model has a `cost__` column."""

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, models: Sequence[str]) -> Outcomes:
        """The same rows with only `models`' columns, in that order."""
        index = [self.models.index(m) for m in models]
        cost = None if self.cost is None else self.cost[:, index]
        return Outcomes(self.texts, self.ids, self.groups, list(models), self.quality[:, index], cost)


def _number(path: Path, column: str, row: int, raw: str, *, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan and an empty cell
        raise OutcomesError(
            f"{path}: column {column!r}, row {row}: {raw!r} is not a number in [{low:g}, {high:g}]; "
            f"fix the value or drop the row"
        )
    return value


def read_one(path: Path, *, need_scores: bool = True, id_prefix: str = "") -> Outcomes:
    """Read and validate one outcomes CSV."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise OutcomesError(f"{path}: cannot read outcomes file ({exc.strerror}); check the path") from exc
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long prompts are legal
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            records = list(reader)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise OutcomesError(f"{path}: not a UTF-8 CSV file ({exc}); save it as CSV with a header") from exc
    if "prompt" not in header:
        raise OutcomesError(
            f"{path}: no 'prompt' column (found: {', '.join(header) or 'none'}); "
            f"the outcomes format needs prompt and score__<model> columns"
        )
    models = [c[len(SCORE) :] for c in header if c.startswith(SCORE)]
    if any(not m for m in models):
        raise OutcomesError(f"{path}: column {SCORE!r} has no model name; name it score__<model>")
    if need_scores and len(models) < 2:
        raise OutcomesError(
            f"{path}: {len(models)} score__<model> column(s); a router needs at least two models, "
            f"one column per model with its quality in [0, 1]"
        )
    cost_models = [c[len(COST) :] for c in header if c.startswith(COST)]
    for m in cost_models:
        if m not in models:
            raise OutcomesError(f"{path}: column {COST + m!r} has no matching {SCORE + m!r} column")
    if not records:
        raise OutcomesError(f"{path}: no rows below the header")

    texts, ids, groups = [], [], []
    quality = np.zeros((len(records), len(models)))
    has_cost = bool(models) and set(cost_models) == set(models)
    cost = np.zeros((len(records), len(models))) if has_cost else None
    for i, rec in enumerate(records):
        row = i + 1
        text = rec.get("prompt")
        if not text:
            raise OutcomesError(f"{path}: column 'prompt', row {row}: empty; every row needs its prompt")
        texts.append(text)
        ids.append(rec.get("id") or f"{id_prefix}{row}")
        groups.append(rec.get("group") or ids[-1])
        for j, m in enumerate(models):
            quality[i, j] = _number(path, SCORE + m, row, rec.get(SCORE + m) or "", low=0.0, high=1.0)
            if cost is not None:
                cost[i, j] = _number(path, COST + m, row, rec.get(COST + m) or "", low=0.0, high=math.inf)
    return Outcomes(texts, ids, groups, models, quality, cost)


def read_outcomes(paths: Sequence[Path], *, need_scores: bool = True) -> Outcomes:
    """Read several outcomes files as one; they must score the same models."""
    if not paths:
        raise OutcomesError("no outcomes file given; pass at least one --data FILE.csv")
    several = len(paths) > 1
    parts = [read_one(Path(p), need_scores=need_scores, id_prefix=f"{Path(p).stem}:" if several else "") for p in paths]
    first = parts[0]
    models = first.models
    for path, part in zip(paths[1:], parts[1:], strict=True):
        if set(part.models) != set(first.models):
            if need_scores:
                raise OutcomesError(
                    f"{path}: scores models {sorted(part.models)} but {paths[0]} scores "
                    f"{sorted(first.models)}; every file needs the same score__<model> columns"
                )
            models = []  # scoring only needs the prompts
    if len(parts) == 1:
        return first
    parts = [p.select(models) for p in parts]
    costs = [p.cost for p in parts]
    cost = None if any(c is None for c in costs) else np.vstack([c for c in costs if c is not None])
    return Outcomes(
        texts=[t for p in parts for t in p.texts],
        ids=[t for p in parts for t in p.ids],
        groups=[t for p in parts for t in p.groups],
        models=models,
        quality=np.vstack([p.quality for p in parts]),
        cost=cost,
    )
