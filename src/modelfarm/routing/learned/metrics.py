"""How good a router is: RouteLLM's APGR and CPT for two models, cost/quality curves for N.

Two models (RouteLLM's protocol, `routellm/evals/benchmarks.py` and `evaluate.py`): a router gives
each prompt a score, how much it needs the strong model. The thresholds are the edges of ten
equal-count bins of the scores (min, the nine deciles, max); at each edge prompts scoring >= edge go
to the strong model (at the top edge, > edge, so nobody does). That gives 11 points of (strong share,
accuracy). APGR is the area under that curve, rescaled so all-weak is 0 and all-strong is 1; random
routing scores 0.5. CPT(x) is the strong share at which the curve recovers x of the gap between the
weak and the strong model's accuracy (linear interpolation, as `np.interp` in RouteLLM).

N models: each operating point assigns every prompt one model. Its cost is the mean cost per prompt,
normalised so that everything on the cheapest model is 0 and everything on the most expensive is 1;
its quality is the mean realised quality. The area under quality over normalised cost, rescaled the
same way as APGR ("area gain"), equals APGR when there are two models of fixed price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 10  # RouteLLM's `num_results`: ten equal-count bins, eleven thresholds
RANDOM_SEEDS = 10  # random routing is averaged over this many seeded draws


@dataclass(frozen=True)
class Curve:
    """A router's operating points, sorted by `x`."""

    x: np.ndarray
    """(K,) strong share (two models) or normalised cost (N models), in [0, 1]."""
    quality: np.ndarray
    """(K,) mean realised quality (accuracy for 0/1 scores) at each point."""


@dataclass(frozen=True)
class PairScore:
    """RouteLLM's figures for one router on one two-model benchmark."""

    apgr: float
    cpt50: float
    """Strong share (0-1) needed to recover 50% of the weak-to-strong gap; lower is better."""
    cpt80: float
    curve: Curve


def _sorted(x: np.ndarray, quality: np.ndarray) -> Curve:
    order = np.argsort(x, kind="stable")
    return Curve(np.asarray(x, dtype=np.float64)[order], np.asarray(quality, dtype=np.float64)[order])


def threshold_curve(scores: np.ndarray, strong: np.ndarray, weak: np.ndarray, n_bins: int = N_BINS) -> Curve:
    """RouteLLM's sweep. scores, strong, weak: (N,); strong/weak are each row's realised quality."""
    scores = np.asarray(scores, dtype=np.float64)
    edges = np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1))  # as pd.qcut(..., retbins=True)
    shares, accs = [], []
    for i, edge in enumerate(edges):
        to_strong = scores > edge if i == len(edges) - 1 else scores >= edge
        shares.append(float(to_strong.mean()))
        accs.append(float(np.where(to_strong, strong, weak).mean()))
    return _sorted(np.array(shares), np.array(accs))


def area_gain(curve: Curve, low: float, high: float) -> float:
    """Area under the curve, rescaled so a flat `low` is 0 and a flat `high` is 1 (APGR)."""
    span = float(curve.x[-1] - curve.x[0])
    if high == low or span == 0.0:
        return float("nan")
    area = float(np.trapezoid(curve.quality, curve.x))
    return (area - low * span) / ((high - low) * span)


def calls_to_recover(curve: Curve, low: float, high: float, fraction: float) -> float:
    """CPT: the x at which quality first reaches low + fraction * (high - low), as RouteLLM computes it."""
    return float(np.interp(low + fraction * (high - low), curve.quality, curve.x))


def pair_score(curve: Curve, strong: np.ndarray, weak: np.ndarray) -> PairScore:
    low, high = float(np.mean(weak)), float(np.mean(strong))
    return PairScore(
        apgr=area_gain(curve, low, high),
        cpt50=calls_to_recover(curve, low, high, 0.5),
        cpt80=calls_to_recover(curve, low, high, 0.8),
        curve=curve,
    )


def score_router(scores: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> PairScore:
    """APGR, CPT(50%), CPT(80%) of a router's scores on rows with realised strong/weak quality (N,)."""
    return pair_score(threshold_curve(scores, strong, weak), strong, weak)


def score_random(strong: np.ndarray, weak: np.ndarray, seeds: int = RANDOM_SEEDS) -> PairScore:
    """Random routing by RouteLLM's sweep, averaged over `seeds` seeded draws (expected APGR 0.5)."""
    runs = [
        score_router(np.random.default_rng((seed, 0x5EED)).random(len(strong)), strong, weak) for seed in range(seeds)
    ]
    x = np.mean([r.curve.x for r in runs], axis=0)
    quality = np.mean([r.curve.quality for r in runs], axis=0)
    return PairScore(
        apgr=float(np.mean([r.apgr for r in runs])),
        cpt50=float(np.mean([r.cpt50 for r in runs])),
        cpt80=float(np.mean([r.cpt80 for r in runs])),
        curve=Curve(x, quality),
    )


def score_oracle(strong: np.ndarray, weak: np.ndarray, n_bins: int = N_BINS) -> PairScore:
    """The best possible router (RouteLLM's `get_optimal_accuracy`): spend strong calls on the rows
    that gain most from them, at shares 0, 10%, ..., 100%."""
    strong = np.asarray(strong, dtype=np.float64)
    weak = np.asarray(weak, dtype=np.float64)
    gain = np.sort(np.clip(strong - weak, 0.0, None))[::-1]  # (N,) best rows first
    cum = np.concatenate([[0.0], np.cumsum(gain)])  # cum[k]: gain from the k best strong calls
    shares = np.linspace(0.0, 1.0, n_bins + 1)
    quality = [weak.mean() + cum[int(share * len(weak))] / len(weak) for share in shares]
    return pair_score(Curve(shares, np.array(quality)), strong, weak)


# ---- N models -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiScore:
    """A cost/quality curve over N models and its area gain (APGR's N-model analogue)."""

    area_gain: float
    curve: Curve
    shares: np.ndarray
    """(K, M) share of prompts sent to each model at each point of `curve`."""


def _normalised_cost(cost: np.ndarray, spent: np.ndarray) -> np.ndarray:
    low, high = float(cost[:, 0].mean()), float(cost[:, -1].mean())
    return (spent - low) / (high - low) if high > low else np.zeros_like(spent)


def multi_curve(assignments: np.ndarray, quality: np.ndarray, cost: np.ndarray) -> MultiScore:
    """assignments: (K, N) model index per operating point and row; quality, cost: (N, M) realised
    quality and cost per row and model, models ordered cheap -> expensive."""
    rows = np.arange(quality.shape[0])
    q = np.array([quality[rows, a].mean() for a in assignments])
    spent = np.array([cost[rows, a].mean() for a in assignments])
    m = quality.shape[1]
    shares = np.array([np.bincount(a, minlength=m) / len(a) for a in assignments])  # (K, M)
    return _multi(_normalised_cost(cost, spent), q, shares, quality)


def _multi(x: np.ndarray, q: np.ndarray, shares: np.ndarray, quality: np.ndarray) -> MultiScore:
    order = np.argsort(x, kind="stable")
    curve = Curve(x[order], q[order])
    # Extend to x = 1 at the best quality reached: more budget never hurts (the oracle stops short).
    if curve.x[-1] < 1.0:
        curve = Curve(np.append(curve.x, 1.0), np.append(curve.quality, curve.quality.max()))
        shares = np.vstack([shares[order], shares[order][-1:]])
    else:
        shares = shares[order]
    low, high = float(quality[:, 0].mean()), float(quality[:, -1].mean())
    return MultiScore(area_gain(curve, low, high), curve, shares)


def multi_random(router_shares: np.ndarray, quality: np.ndarray, cost: np.ndarray) -> MultiScore:
    """Random routing with the router's own model shares at each point (its expected value): shows
    whether the router sends the right prompts, not just the right number, to each model."""
    x = _normalised_cost(cost, router_shares @ cost.mean(axis=0))
    q = router_shares @ quality.mean(axis=0)
    return _multi(x, q, router_shares, quality)


def multi_oracle(quality: np.ndarray, cost: np.ndarray, points: int = 61) -> MultiScore:
    """Knowing every row's realised quality: each row takes argmax(quality - price * cost), swept over
    prices from 0 to very high (the upper hull of the cost/quality trade-off)."""
    scale = max(float(cost[:, -1].mean()), 1e-12)
    prices = np.concatenate([[0.0], np.logspace(-3, 3, points - 2), [np.inf]])
    assignments = []
    for price in prices:
        value = -cost if np.isinf(price) else quality - price * cost / scale  # (N, M)
        # argmax takes the first maximum: the cheapest model among ties
        assignments.append(np.argmax(value, axis=1))
    return multi_curve(np.array(assignments), quality, cost)
