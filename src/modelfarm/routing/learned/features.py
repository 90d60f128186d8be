"""What the router sees of a prompt: its MiniLM embedding, hashed TF-IDF word n-grams, text stats.

All three blocks go side by side into one sparse row, each block scaled so none drowns the others:

    [ tf-idf of hashed word 1-2-grams (HASH_DIM, L2-normalised) | embedding (384, unit length, times
      EMBEDDING_WEIGHT) | text stats (len(STATS), standardised, times STATS_WEIGHT) ]

On RouteLLM's outcomes (grouped 5-fold CV) the stats matter most on GSM8K (APGR +0.05: long
problems with many and large numbers are hard), the tf-idf on MMLU (the subject); a heavier
embedding helps GSM8K a little and MMLU not at all, hence its weight of one half.

Hashing (crc32 of the n-gram, modulo HASH_DIM) needs no vocabulary, so the saved state is just the
idf vector and the stats' mean and std: plain arrays, no pickled transformer. Terms seen in fewer
than MIN_DF training rows get idf 0, which drops them (as TfidfVectorizer(min_df=2) does).
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

HASH_DIM = 2**18  # hashed n-gram slots; collisions are rare below ~100k distinct terms
MIN_DF = 2
STATS_WEIGHT = 0.3  # a stat's weight relative to one standardised unit
EMBEDDING_WEIGHT = 0.5  # the embedding block's norm, against the tf-idf block's 1
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # TfidfVectorizer's default tokens
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")

STATS = (
    "log chars",
    "log words",
    "log distinct words",
    "log numbers",
    "log largest number",
    "decimals",
    "has percent",
    "slashes",
    "question marks",
    "sentences",
    "upper-case share",
)


def text_stats(text: str) -> list[float]:
    """Cheap signals of how hard a prompt is (long, many numbers, large numbers), in STATS order."""
    numbers = _NUMBER.findall(text)
    values = [float(n.replace(",", "")) for n in numbers if n.replace(",", "").replace(".", "", 1).isdigit()]
    words = text.split()
    return [
        math.log1p(len(text)),
        math.log1p(len(words)),
        math.log1p(len(set(words))),
        math.log1p(len(numbers)),
        math.log1p(max(values, default=0.0)),
        float(sum("." in n for n in numbers)),
        float("%" in text),
        float(text.count("/")),
        float(text.count("?")),
        float(text.count(". ") + 1),
        sum(c.isupper() for c in text) / max(1, len(text)),
    ]


def hashed_grams(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(slots, counts) of the lower-cased word unigrams and bigrams of one text, slots ascending."""
    tokens = _TOKEN.findall(text.lower())
    grams = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    hashed = np.fromiter((zlib.crc32(g.encode()) % HASH_DIM for g in grams), np.int64, len(grams))
    return np.unique(hashed, return_counts=True)


def _csr(rows: list[tuple[np.ndarray, np.ndarray]]) -> sp.csr_matrix:
    """(N, HASH_DIM) float32 matrix from per-row (slots, values)."""
    indptr = np.cumsum([0] + [len(slots) for slots, _ in rows])
    indices = np.concatenate([slots for slots, _ in rows] or [np.zeros(0, np.int64)])
    data = np.concatenate([values for _, values in rows] or [np.zeros(0)]).astype(np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), HASH_DIM))


@dataclass(frozen=True)
class Featurizer:
    """The fitted state of the features: idf and the stats' standardisation."""

    idf: np.ndarray
    """(HASH_DIM,) float32; 0 for slots seen in fewer than MIN_DF training rows."""
    stats_mean: np.ndarray
    """(len(STATS),) float32."""
    stats_std: np.ndarray
    """(len(STATS),) float32, never 0."""

    @classmethod
    def fit(cls, texts: list[str]) -> Featurizer:
        slots = [hashed_grams(t)[0] for t in texts]
        df = np.bincount(np.concatenate(slots or [np.zeros(0, np.int64)]), minlength=HASH_DIM)  # rows per slot
        n = len(texts)
        idf = np.where(df >= MIN_DF, np.log((1 + n) / (1 + df)) + 1.0, 0.0)  # sklearn's smooth idf
        stats = np.array([text_stats(t) for t in texts], dtype=np.float64)
        return cls(
            idf=idf.astype(np.float32),
            stats_mean=stats.mean(axis=0).astype(np.float32),
            stats_std=np.maximum(stats.std(axis=0), 1e-6).astype(np.float32),
        )

    def tfidf_row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(slots, values) of one text's tf-idf: sublinear tf times idf, L2-normalised, float32.
        Plain numpy on a few dozen slots: this is the per-request path."""
        slots, counts = hashed_grams(text)
        values = (1.0 + np.log(counts)) * self.idf[slots]
        keep = values > 0  # slots unseen in training (idf 0) carry nothing
        slots, values = slots[keep], values[keep]
        return slots, (values / max(float(np.sqrt(values @ values)), 1e-12)).astype(np.float32)

    def tfidf(self, texts: list[str]) -> sp.csr_matrix:
        """(N, HASH_DIM) tf-idf rows as one sparse matrix, for training."""
        return _csr([self.tfidf_row(t) for t in texts])

    def stats(self, texts: list[str]) -> np.ndarray:
        """(N, len(STATS)) standardised and weighted text stats, float32."""
        raw = np.array([text_stats(t) for t in texts], dtype=np.float32).reshape(len(texts), len(STATS))
        return np.asarray((raw - self.stats_mean) / self.stats_std * STATS_WEIGHT, dtype=np.float32)

    def dense(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """(N, D + len(STATS)) float32 dense block: weighted embedding and stats; embeddings: (N, D)."""
        if len(embeddings) != len(texts):
            raise ValueError(f"{len(embeddings)} embeddings for {len(texts)} texts")
        emb = np.asarray(embeddings, dtype=np.float32).reshape(len(texts), -1) * EMBEDDING_WEIGHT
        return np.hstack([emb, self.stats(texts)])

    def transform(self, embeddings: np.ndarray, texts: list[str]) -> sp.csr_matrix:
        """(N, HASH_DIM + D + len(STATS)) float32: both blocks side by side, for training."""
        dense = self.dense(embeddings, texts)
        return sp.hstack([self.tfidf(texts), sp.csr_matrix(dense)], format="csr", dtype=np.float32)
