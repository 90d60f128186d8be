"""Fitting a quality router on outcomes: one logistic regression per model, Platt-scaled on
out-of-fold predictions grouped by question.

Hyper-parameters are fixed, not tuned per dataset: C = 0.3 and the block weights of `features.py`
were chosen once, from a small grid (C in 0.1, 0.3, 1; embedding weight 0, 0.3, 0.6, 1; stats
weight 0, 0.3) scored by grouped 5-fold CV on RouteLLM's MMLU and GSM8K dev outcomes, as the best
compromise for both. Neighbouring grid points move APGR by about 0.01, close to its standard
error on MMLU (0.011), so the choice fits those folds very little.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from modelfarm.routing.learned.calibrate import fit_platt
from modelfarm.routing.learned.features import HASH_DIM, Featurizer
from modelfarm.routing.learned.model import QualityRouter
from modelfarm.routing.learned.outcomes import Outcomes, OutcomesError

C = 0.3  # inverse L2 strength of every logistic regression
FOLDS = 5  # out-of-fold predictions for the Platt scaling and the calibration sample
CALIBRATION_ROWS = 4000  # out-of-fold rows kept in the router file to calibrate targets
MAX_ITER = 500


def order_models(
    data: Outcomes, models: Sequence[str] | None, costs: Mapping[str, float] | None
) -> tuple[list[str], list[float]]:
    """Models cheap -> expensive with their prices: `cost__` columns (mean USD per row) if the data
    has them, else `costs`, else the order of `models`, else the order of the score__ columns."""
    chosen = list(models) if models else list(data.models)
    for m in chosen:
        if m not in data.models:
            raise OutcomesError(f"model {m!r} has no score__{m} column; the data scores {', '.join(data.models)}")
    if len(chosen) < 2:
        raise OutcomesError(f"a router needs at least two models, got {chosen}")
    if data.cost is not None:
        price = {m: float(data.cost[:, data.models.index(m)].mean()) for m in chosen}
    elif costs:
        missing = [m for m in chosen if m not in costs]
        if missing:
            raise OutcomesError(f"no cost for {', '.join(missing)}; give --cost MODEL=USD_PER_1M for each")
        price = {m: float(costs[m]) for m in chosen}
    else:
        price = {m: float(i + 1) for i, m in enumerate(chosen)}  # the rank: only the order is known
    ordered = sorted(chosen, key=lambda m: price[m])  # stable: equal prices keep the given order
    return ordered, [price[m] for m in ordered]


def _fit_one(x: sp.csr_matrix, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """(weights (D,), intercept) of an L2 logistic regression on labels in [0, 1]; a fractional
    label y becomes a positive row of weight y and a negative row of weight 1 - y."""
    from sklearn.linear_model import LogisticRegression

    x_width = x.shape[1]
    known = ~np.isnan(y)  # outcomes from use label one model at a time: fit on the labelled rows
    if not known.any():
        return np.zeros(x_width, np.float32), 0.0
    x, y = x[np.flatnonzero(known)], y[known]
    if np.all(y == y[0]):  # one class only: predict its rate
        rate = float(np.clip(y[0], 1e-3, 1 - 1e-3))
        return np.zeros(x.shape[1], np.float32), float(np.log(rate / (1 - rate)))
    active = np.flatnonzero(x.getnnz(axis=0))  # most hashed slots are empty: fit only the rest
    x = x[:, active]
    pos, neg = y > 0, y < 1
    rows = sp.vstack([x[pos], x[neg]], format="csr")
    labels = np.concatenate([np.ones(pos.sum()), np.zeros(neg.sum())])
    weights = np.concatenate([y[pos], 1 - y[neg]])
    model = LogisticRegression(C=c, max_iter=MAX_ITER, solver="liblinear")
    model.fit(rows, labels, sample_weight=weights)
    coef = np.zeros(x_width, np.float32)
    coef[active] = model.coef_[0]
    return coef, float(model.intercept_[0])


def _fit_all(
    featurizer: Featurizer, embeddings: np.ndarray, texts: list[str], quality: np.ndarray, c: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sparse (HASH_DIM, M), dense (D + S, M), bias (M,)) weights for every model."""
    x = featurizer.transform(embeddings, texts)
    fits = [_fit_one(x, quality[:, j], c) for j in range(quality.shape[1])]
    w = np.stack([f[0] for f in fits], axis=1)  # (HASH_DIM + D + S, M)
    return w[:HASH_DIM], w[HASH_DIM:], np.array([f[1] for f in fits], np.float32)


def _logits(
    featurizer: Featurizer,
    weights: tuple[np.ndarray, np.ndarray, np.ndarray],
    embeddings: np.ndarray,
    texts: list[str],
) -> np.ndarray:
    """(N, M) logits of fitted weights (sparse, dense, bias) on rows."""
    sparse, dense = featurizer.tfidf(texts), featurizer.dense(embeddings, texts)
    return np.asarray(sparse @ weights[0] + dense @ weights[1] + weights[2])


def _platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    known = ~np.isnan(labels)
    return fit_platt(logits[known], labels[known]) if known.sum() >= 2 else (1.0, 0.0)


def _folds(groups: list[str], k: int, seed: int) -> list[np.ndarray]:
    """Test-row indices of k folds that keep each group whole."""
    keys = sorted(set(groups))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(keys, rng.permutation(len(keys)) % k, strict=True))
    labels = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(labels == f) for f in range(k)]


def train(
    data: Outcomes,
    embeddings: np.ndarray,
    *,
    models: Sequence[str] | None = None,
    costs: Mapping[str, float] | None = None,
    c: float = C,
    folds: int = FOLDS,
    seed: int = 0,
    embedding: str = "full",
    progress: Callable[[str], None] | None = None,
) -> QualityRouter:
    """Fit a router on outcomes rows and their (N, D) embeddings, of the `embedding` kind (see
    model.EMBEDDINGS): the router will ask for the same kind when it routes."""
    ordered, prices = order_models(data, models, costs)
    data = data.select(ordered)
    say = progress or (lambda _: None)
    k = min(folds, len(set(data.groups)))
    logits = np.zeros(data.quality.shape)  # (N, M) out-of-fold
    if k >= 2:
        for i, test in enumerate(_folds(data.groups, k, seed)):
            say(f"fold {i + 1}/{k}")
            train_rows = np.setdiff1d(np.arange(len(data)), test)
            tr_texts = [data.texts[r] for r in train_rows]
            feats = Featurizer.fit(tr_texts)
            sparse, dense, bias = _fit_all(feats, embeddings[train_rows], tr_texts, data.quality[train_rows], c)
            logits[test] = _logits(feats, (sparse, dense, bias), embeddings[test], [data.texts[r] for r in test])
    say("final fit")
    featurizer = Featurizer.fit(data.texts)
    sparse, dense, bias = _fit_all(featurizer, embeddings, data.texts, data.quality, c)
    if k < 2:  # too few groups to hold any out: no scaling, calibrate in-sample
        logits = _logits(featurizer, (sparse, dense, bias), embeddings, data.texts)
        platt = np.tile(np.array([1.0, 0.0], np.float32), (len(ordered), 1))
    else:
        platt = np.array([_platt(logits[:, j], data.quality[:, j]) for j in range(len(ordered))], np.float32)
    calibrated = 1.0 / (1.0 + np.exp(-np.clip(logits * platt[:, 0] + platt[:, 1], -30, 30)))
    keep = np.random.default_rng(seed).permutation(len(data))[:CALIBRATION_ROWS]
    return QualityRouter(
        models=ordered,
        costs=prices,
        featurizer=featurizer,
        sparse_weights=sparse,
        dense_weights=dense,
        bias=bias,
        platt=platt,
        calibration=calibrated[np.sort(keep)].astype(np.float32),
        info={"rows": len(data), "c": c, "folds": k, "seed": seed},
        embedding=embedding,
    )
