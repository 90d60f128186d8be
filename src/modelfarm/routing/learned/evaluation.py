"""A router's figures on outcomes it was not trained on, beside random and oracle routing.

Two models: RouteLLM's APGR, CPT(50%), CPT(80%) of `strong_score`. N models: the cost/quality
curve of `choose` swept over targets, and its area gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelfarm.routing.learned import metrics
from modelfarm.routing.learned.model import QualityRouter, choose_all, need_of
from modelfarm.routing.learned.outcomes import Outcomes, OutcomesError

SWEEP_POINTS = 41  # targets swept for an N-model curve (quantiles of the predicted quality)


@dataclass(frozen=True)
class Evaluation:
    """Figures for one router on one outcomes set, per method: router, random, oracle."""

    models: list[str]
    rows: int
    pair: dict[str, metrics.PairScore] | None
    """Two models: RouteLLM's figures per method."""
    multi: dict[str, metrics.MultiScore] | None
    """More than two models: cost/quality curves per method."""
    single: dict[str, tuple[float, float]]
    """Each model alone: (normalised cost or strong share, mean quality)."""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"models": self.models, "rows": self.rows}
        doc["single"] = {m: {"x": x, "quality": q} for m, (x, q) in self.single.items()}
        if self.pair is not None:
            doc["pair"] = {
                name: {"apgr": s.apgr, "cpt50": s.cpt50, "cpt80": s.cpt80, "curve": _curve(s.curve)}
                for name, s in self.pair.items()
            }
        if self.multi is not None:
            doc["multi"] = {
                name: {"area_gain": s.area_gain, "curve": _curve(s.curve)} for name, s in self.multi.items()
            }
        return doc


def _curve(curve: metrics.Curve) -> dict[str, list[float]]:
    return {"x": [round(float(v), 6) for v in curve.x], "quality": [round(float(v), 6) for v in curve.quality]}


def evaluate(router: QualityRouter, data: Outcomes, quality: np.ndarray) -> Evaluation:
    """Score `router`, whose predictions on `data` are quality (N, M), against the realised scores."""
    missing = [m for m in router.models if m not in data.models]
    if missing:
        raise OutcomesError(
            f"the eval data has no score__ column for {', '.join(missing)}; "
            f"it needs one for each of the router's models ({', '.join(router.models)})"
        )
    real = data.select(router.models)
    truth = real.quality  # (N, M) realised quality, models cheap -> expensive
    if len(router.models) == 2:
        weak, strong = truth[:, 0], truth[:, 1]
        pair = {
            "router": metrics.score_router(need_of(quality, 1), strong, weak),
            "random": metrics.score_random(strong, weak),
            "oracle": metrics.score_oracle(strong, weak),
        }
        single = {router.models[0]: (0.0, float(weak.mean())), router.models[1]: (1.0, float(strong.mean()))}
        return Evaluation(router.models, len(data), pair, None, single)
    # Cost per row and model: the data's cost__ columns, else the router's prices.
    cost = real.cost if real.cost is not None else np.tile(np.array(router.costs), (len(real), 1))
    targets = np.concatenate([[-1.0], np.quantile(quality, np.linspace(0, 1, SWEEP_POINTS)), [2.0]])
    assignments = np.array([choose_all(quality, t) for t in targets])  # (K, N)
    ours = metrics.multi_curve(assignments, truth, cost)
    multi = {
        "router": ours,
        "random": metrics.multi_random(ours.shares, truth, cost),
        "oracle": metrics.multi_oracle(truth, cost),
    }
    low, high = float(cost[:, 0].mean()), float(cost[:, -1].mean())
    single = {
        m: ((float(cost[:, j].mean()) - low) / (high - low) if high > low else 0.0, float(truth[:, j].mean()))
        for j, m in enumerate(router.models)
    }
    return Evaluation(router.models, len(data), None, multi, single)
