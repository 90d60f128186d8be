"""How well the learned quality router routes, by RouteLLM's protocol, against baselines in the same run.

On RouteLLM's MMLU and GSM8K outcomes (dev split, `shared/data/routing/*.dev.csv`; GPT-4 1106 as
the strong model, Mixtral 8x7B as the weak one), 5-fold cross-validation grouped by question
(`group`): every router is trained on four folds and scores the fifth; the out-of-fold scores of
all rows then make one RouteLLM curve (thresholds at the score deciles), from which:

  APGR      area under the performance-gap-recovered curve (random 0.5; higher is better)
  CPT(50%)  share of strong calls needed to recover 50% of the weak-to-strong gap (lower is better)
  CPT(80%)  the same for 80%

Methods:
  ours      `modelfarm.routing.learned.train` with its fixed defaults; score = predicted P(strong
            right) - P(weak right)
  ours-static  (with --static) the same router trained on MiniLM's static token vectors
            (`modelfarm router train --embedding static`: ~1 ms a decision instead of 10-50 ms)
  tfidf-w   baseline: TfidfVectorizer(1-2-grams, min_df=2, sublinear tf) + LogisticRegression
            (C=1) predicting "weak model right"; score = 1 - that probability
  tfidf-sw  the same features, one such model per model; score = P(strong right) - P(weak right)
  random    random scores (mean of 10 seeds)
  oracle    knows the answers (RouteLLM's optimal router)

Decision time: `QualityRouter.predict` on one prompt at a time (p50/p99 over --timing-n prompts),
without the embedding (given) and with it (MiniLM, 2 threads, one prompt per call).

Embeddings are cached under ~/.cache/modelfarm/router-embeddings/ (keyed by a hash of the texts);
the first run embeds ~10.7k prompts, which takes minutes. Training uses one core (n_jobs=1).

usage: python benchmarks/router_quality.py [--data DIR] [--folds 5] [--timing-n 200] [--static] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from modelfarm.routing.learned import metrics, read_outcomes, train
from modelfarm.routing.learned.model import QualityRouter, need_of
from modelfarm.routing.learned.outcomes import Outcomes

REPO = Path(__file__).resolve().parents[1]
STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
BENCHMARKS = ("mmlu", "gsm8k")
CACHE = Path.home() / ".cache" / "modelfarm" / "router-embeddings"


def cached_embeddings(texts: list[str]) -> np.ndarray:
    """(N, 384) MiniLM embeddings, from the cache when the same texts were embedded before."""
    digest = hashlib.sha256(b"all-MiniLM-L6-v2\n")
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x00")
    path = CACHE / f"{digest.hexdigest()[:32]}.npy"
    if path.exists():
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
    from modelfarm.models.embedding import default_embedder

    embedder = default_embedder(threads=2)
    parts, start = [], time.perf_counter()
    for i in range(0, len(texts), 256):
        parts.append(embedder.encode(texts[i : i + 256]))
        print(f"  embedded {i + len(parts[-1])}/{len(texts)} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    embeddings = np.concatenate(parts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, embeddings, allow_pickle=False)
    return embeddings


def static_embeddings(texts: list[str]) -> np.ndarray:
    """(N, 384) MiniLM static-vector embeddings (about 1 ms a prompt: no cache needed)."""
    from modelfarm.models.embedding import default_embedder

    static = default_embedder(threads=2).static()
    return np.concatenate([static.encode(texts[i : i + 256]) for i in range(0, len(texts), 256)])


def _subset(data: Outcomes, rows: np.ndarray) -> Outcomes:
    return Outcomes(
        texts=[data.texts[i] for i in rows],
        ids=[data.ids[i] for i in rows],
        groups=[data.groups[i] for i in rows],
        models=data.models,
        quality=data.quality[rows],
        cost=None,
    )


def tfidf_baseline(
    train_texts: list[str], strong_right: np.ndarray, weak_right: np.ndarray, test_texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(1 - P(weak right), P(strong right) - P(weak right)) on the test texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x, x_test = vectorizer.fit_transform(train_texts), vectorizer.transform(test_texts)
    weak, strong = (
        LogisticRegression(C=1.0, max_iter=2000).fit(x, y).predict_proba(x_test)[:, 1]
        for y in (weak_right, strong_right)
    )
    return 1.0 - weak, strong - weak


def cross_validate(
    data: Outcomes, embeddings: np.ndarray, folds: int, static: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], list[float], QualityRouter]:
    """Out-of-fold scores per method, our per-fold APGR, and the last fold's router."""
    from sklearn.model_selection import GroupKFold

    strong, weak = data.quality[:, 0], data.quality[:, 1]
    ours, base_w, base_sw = np.zeros(len(data)), np.zeros(len(data)), np.zeros(len(data))
    ours_static = np.zeros(len(data))
    per_fold = []
    router = None
    for k, (tr, te) in enumerate(GroupKFold(n_splits=folds).split(embeddings, groups=data.groups)):
        start = time.perf_counter()
        router = train(_subset(data, tr), embeddings[tr], models=[WEAK, STRONG])
        test_texts = [data.texts[i] for i in te]
        ours[te] = need_of(router.predict(embeddings[te], test_texts), router.models.index(STRONG))
        base_w[te], base_sw[te] = tfidf_baseline([data.texts[i] for i in tr], strong[tr], weak[tr], test_texts)
        if static is not None:
            fast = train(_subset(data, tr), static[tr], models=[WEAK, STRONG], embedding="static")
            ours_static[te] = need_of(fast.predict(static[te], test_texts), fast.models.index(STRONG))
        per_fold.append(metrics.score_router(ours[te], strong[te], weak[te]).apgr)
        print(f"  fold {k + 1}/{folds}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    assert router is not None
    scores = {"ours": ours, "tfidf-w": base_w, "tfidf-sw": base_sw}
    if static is not None:
        scores["ours-static"] = ours_static
    return scores, per_fold, router


def decision_times(router: QualityRouter, data: Outcomes, embeddings: np.ndarray, n: int) -> dict[str, float]:
    """p50/p99 milliseconds of one-prompt decisions, without and with the embedding."""
    from modelfarm.models.embedding import default_embedder

    rows = np.random.default_rng(0).permutation(len(data))[:n]
    bare, full = [], []
    embedder = default_embedder(threads=2)
    embedder.encode([data.texts[0]])  # warm-up
    for i in rows:
        text = [data.texts[i]]
        start = time.perf_counter()
        router.predict(embeddings[i : i + 1], text)
        bare.append(1e3 * (time.perf_counter() - start))
        start = time.perf_counter()
        router.predict(embedder.encode(text), text)
        full.append(1e3 * (time.perf_counter() - start))

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 3)

    return {
        "predict_p50_ms": pct(bare, 50),
        "predict_p99_ms": pct(bare, 99),
        "with_embedding_p50_ms": pct(full, 50),
        "with_embedding_p99_ms": pct(full, 99),
    }


def run(name: str, path: Path, folds: int, timing_n: int, with_static: bool) -> dict[str, object]:
    data = read_outcomes([path]).select([STRONG, WEAK])
    print(f"{name}: {len(data)} rows, {len(set(data.groups))} questions", file=sys.stderr)
    embeddings = cached_embeddings(data.texts)
    static = static_embeddings(data.texts) if with_static else None
    scores, per_fold, router = cross_validate(data, embeddings, folds, static)
    strong, weak = data.quality[:, 0], data.quality[:, 1]
    results = {method: metrics.score_router(s, strong, weak) for method, s in scores.items()}
    results["random"] = metrics.score_random(strong, weak)
    results["oracle"] = metrics.score_oracle(strong, weak)
    return {
        "rows": len(data),
        "strong_accuracy": round(float(strong.mean()), 4),
        "weak_accuracy": round(float(weak.mean()), 4),
        "methods": {
            m: {"apgr": round(r.apgr, 4), "cpt50": round(r.cpt50, 4), "cpt80": round(r.cpt80, 4)}
            for m, r in results.items()
        },
        "ours_apgr_per_fold": [round(a, 4) for a in per_fold],
        "ours_apgr_fold_sd": round(statistics.stdev(per_fold), 4) if len(per_fold) > 1 else None,
        "timing": decision_times(router, data, embeddings, timing_n) if timing_n else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "routing")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--timing-n", type=int, default=200, help="prompts timed one by one (0: skip)")
    parser.add_argument("--static", action="store_true", help="also cross-validate a static-vector router")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()

    report = {
        name: run(name, args.data / f"{name}.dev.csv", args.folds, args.timing_n, args.static) for name in BENCHMARKS
    }
    if not args.json:
        print(f"\n{'benchmark':<10}{'method':<10}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}")
        for name, result in report.items():
            for method, m in result["methods"].items():  # type: ignore[attr-defined]
                print(f"{name:<10}{method:<10}{m['apgr']:>8.3f}{100 * m['cpt50']:>9.1f}%{100 * m['cpt80']:>9.1f}%")
            print(f"{'':<10}ours per fold: {result['ours_apgr_per_fold']}")
            if result["timing"]:
                print(f"{'':<10}decision ms: {result['timing']}")
    print(json.dumps({"benchmark": "router_quality", "folds": args.folds, "results": report}))


if __name__ == "__main__":
    main()
