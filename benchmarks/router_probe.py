"""Research for the MMLU router: does a local model's own answer confidence ("difficulty probe")
predict where the weak model fails, beyond what the prompt text says?

On a seeded random sample of `shared/data/routing/mmlu.dev.csv`, one forward pass of a farm
model over each prompt (which ends with "Answer:") gives its distribution over the letters
A-D: features 1 - max probability, entropy, 1 - margin, and the probability mass on the letters.
Against them, in the same run: the TF-IDF + logistic-regression text baseline (router_quality's
tfidf-sw: P(strong right) - P(weak right)), trained out of fold on the whole file (5 folds
grouped by question), and both together (logistic regression, 5 grouped folds on the sample).
Printed: ROC AUC for "the weak model is wrong" and for "the strong model is right where the weak
one is wrong", and APGR by RouteLLM's protocol (`modelfarm.routing.learned.metrics`), all on the
sample, plus seconds per probe. Probe results are cached per model and prompt under
~/.cache/modelfarm/router-probe/, so a larger --n later only computes the new rows.

usage: python benchmarks/router_probe.py [--model brain] [--n 300] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from _harness import REPO, eprint, machine_info
from modelfarm.manifest import load_manifest
from modelfarm.routing.learned.metrics import score_router
from modelfarm.sources import default_cache_dir, resolve

STRONG, WEAK = "score__gpt-4-1106-preview", "score__mixtral-8x7b-instruct-v0.1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="A local model's answer confidence as a routing feature (MMLU).")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "routing" / "mmlu.dev.csv")
    ap.add_argument("--model", default="brain", help="a llama_cpp model of the default farm")
    ap.add_argument("--n", type=int, default=300, help="prompts in the sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print only the final JSON line")
    return ap.parse_args(argv)


def text_oof(rows: list[dict[str, str]], strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Out-of-fold P(strong right) - P(weak right) from TF-IDF + LR per model (router_quality's
    tfidf-sw baseline), 5 folds grouped by question."""
    texts, groups = [r["prompt"] for r in rows], [r["group"] for r in rows]
    out = np.zeros(len(rows))
    for train, test in GroupKFold(5).split(texts, weak, groups):
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x, x_test = vec.fit_transform([texts[i] for i in train]), vec.transform([texts[i] for i in test])
        p_strong, p_weak = (
            LogisticRegression(C=1.0, max_iter=2000).fit(x, y[train]).predict_proba(x_test)[:, 1]
            for y in (strong, weak)
        )
        out[test] = p_strong - p_weak
    return out


class Probe:
    def __init__(self, model: str, threads: int) -> None:
        from llama_cpp import Llama

        manifest = load_manifest(None)
        spec = manifest.model(model)
        if spec is None or spec.backend != "llama_cpp":
            raise SystemExit(f"--model {model}: not a llama_cpp model of the default farm")
        path = resolve(spec, manifest.base_dir, default_cache_dir(), None)
        self.llm = Llama(str(path), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False)
        self.letters: dict[str, list[int]] = {}
        for letter in "ABCD":
            for text in (" " + letter, letter):
                tokens = self.llm.tokenize(text.encode(), add_bos=False, special=False)
                if len(tokens) == 1:
                    self.letters.setdefault(letter, []).append(tokens[0])

    def features(self, prompt: str) -> list[float]:
        tokens = self.llm.tokenize(prompt.encode(), add_bos=True, special=False)[-2000:]
        self.llm.reset()
        self.llm.eval(tokens)
        n_vocab = self.llm.n_vocab()
        logits = np.array(np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(n_vocab,)), dtype=np.float64)
        top = logits.max()
        log_total = top + math.log(float(np.exp(logits - top).sum()))
        v = np.array([max(logits[t] for t in self.letters[letter]) for letter in "ABCD"])
        p = np.exp(v - v.max())
        p /= p.sum()
        ranked = np.sort(p)
        mass = float(np.exp(np.logaddexp.reduce(v) - log_total))
        return [1 - float(ranked[-1]), float(-(p * np.log(p + 1e-12)).sum()), 1 - float(ranked[-1] - ranked[-2]), mass]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    csv.field_size_limit(1 << 30)
    with args.data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    strong = np.array([float(r[STRONG]) for r in rows])
    weak = np.array([float(r[WEAK]) for r in rows])
    eprint(f"text baseline out of fold on {len(rows)} rows ...")
    oof = text_oof(rows, strong, weak)
    sample = sorted(random.Random(args.seed).sample(range(len(rows)), args.n))
    cache_file = default_cache_dir() / "router-probe" / f"{args.model}.json"
    cache: dict[str, list[float]] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    probe: Probe | None = None
    spent, computed = 0.0, 0
    for k, i in enumerate(sample):
        key = hashlib.sha256(rows[i]["prompt"].encode()).hexdigest()[:24]
        if key not in cache:
            probe = probe or Probe(args.model, args.threads)
            t0 = time.perf_counter()
            cache[key] = probe.features(rows[i]["prompt"])
            spent, computed = spent + time.perf_counter() - t0, computed + 1
            if computed % 25 == 0:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                cache_file.write_text(json.dumps(cache))
                eprint(f"  {k + 1}/{len(sample)} probed, {spent / computed:.2f} s a prompt")
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(cache))
    idx = np.array(sample)
    feats = np.array([cache[hashlib.sha256(rows[i]["prompt"].encode()).hexdigest()[:24]] for i in sample])
    s, w = strong[idx], weak[idx]
    need = (s > w).astype(int)  # the strong model is right where the weak one is wrong
    both = np.zeros(len(idx))
    x = np.column_stack([oof[idx], feats])
    for train, test in GroupKFold(5).split(x, w, [rows[i]["group"] for i in sample]):
        both[test] = LogisticRegression(max_iter=1000).fit(x[train], need[train]).predict_proba(x[test])[:, 1]
    result: dict[str, Any] = {
        "benchmark": "router_probe",
        **machine_info(),
        "model": args.model,
        "n": args.n,
        "seed": args.seed,
        "seconds_per_probe": round(spent / computed, 3) if computed else None,
        "auc_weak_wrong": {
            "text": round(float(roc_auc_score(1 - w, oof[idx])), 3),
            "probe": round(float(roc_auc_score(1 - w, feats[:, 0])), 3),
        },
        "auc_needs_strong": {
            "text": round(float(roc_auc_score(need, oof[idx])), 3),
            "probe": round(float(roc_auc_score(need, feats[:, 0])), 3),
            "text+probe": round(float(roc_auc_score(need, both)), 3),
        },
        "apgr_on_sample": {
            "text": round(score_router(oof[idx], s, w).apgr, 3),
            "probe": round(score_router(feats[:, 0], s, w).apgr, 3),
            "text+probe": round(score_router(both, s, w).apgr, 3),
        },
        "apgr_text_all_rows": round(score_router(oof, strong, weak).apgr, 3),
    }
    if not args.json:
        print(f"model {args.model}, {args.n} prompts (seed {args.seed}), {result['seconds_per_probe']} s a probe")
        print(f"AUC (weak model wrong): {result['auc_weak_wrong']}")
        print(f"AUC (strong right, weak wrong): {result['auc_needs_strong']}")
        print(f"APGR on the sample:     {result['apgr_on_sample']}")
        print(f"text baseline APGR on every row: {result['apgr_text_all_rows']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
