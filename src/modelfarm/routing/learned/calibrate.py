"""Turning predicted quality into routing targets, and predicted logits into honest probabilities.

A routing policy says either "send about 20% of prompts to the brain" (a brain share) or "keep the
mean predicted quality at 0.8" (a quality). Both become one number, the target a model's predicted
quality must clear, found by scanning candidate targets on out-of-fold predictions of the training
rows (in-sample predictions are over-confident and would miss the share on new prompts).
"""

from __future__ import annotations

import numpy as np

from modelfarm.routing.learned.model import choose_all

MAX_CANDIDATES = 2000  # targets tried: every distinct predicted value, or this many quantiles


def _candidates(quality: np.ndarray) -> np.ndarray:
    """Targets between every two adjacent distinct predicted values, plus one below and one above all."""
    values = np.unique(quality)
    if len(values) > MAX_CANDIDATES:
        values = np.unique(np.quantile(quality, np.linspace(0.0, 1.0, MAX_CANDIDATES)))
    mids = (values[1:] + values[:-1]) / 2.0  # a target between two values generalises best
    return np.concatenate([[values[0] - 1e-6], mids, [values[-1] + 1e-6]])


def target_for_share(quality: np.ndarray, share: float, strong: int) -> float:
    """The target whose decisions on quality (N, M) send the share closest to `share` to model
    index `strong` (the lowest such target on ties)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    targets = _candidates(quality)
    shares = np.array([np.mean(choose_all(quality, t) == strong) for t in targets])
    return float(targets[int(np.argmin(np.abs(shares - share)))])


def target_for_quality(quality: np.ndarray, mean_quality: float) -> float:
    """The lowest target whose decisions on quality (N, M) reach `mean_quality` predicted quality
    on average; the best reachable target if none does."""
    targets = _candidates(quality)
    rows = np.arange(len(quality))
    reached = np.array([quality[rows, choose_all(quality, t)].mean() for t in targets])
    ok = np.flatnonzero(reached >= mean_quality)
    return float(targets[ok[0]] if len(ok) else targets[int(np.argmax(reached))])


def fit_platt(logits: np.ndarray, labels: np.ndarray, *, l2: float = 1e-3, steps: int = 50) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a * logit + b) against labels in [0, 1] (soft labels
    allowed), by Newton's method on the two parameters with a small ridge for stability."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    params = np.array([1.0, 0.0])
    design = np.stack([z, np.ones_like(z)], axis=1)  # (N, 2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ params, -30.0, 30.0)))
        grad = design.T @ (p - y) + l2 * params
        hess = design.T @ (design * (p * (1 - p))[:, None]) + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        params -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(params[0]), float(params[1])
