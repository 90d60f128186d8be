"""The quality router: each model's predicted quality for a prompt, and the cheapest model that clears
a target.

Per model, a logistic regression on the features of `features.py` (tf-idf, embedding, text stats)
predicts the quality in [0, 1] (fractional scores are fitted as weighted 0/1 rows), then a Platt
scaling fitted on out-of-fold predictions makes the numbers honest probabilities. A routing
decision is the cheapest model whose predicted quality clears the target; if none does, the most
expensive. `calibrate.py` picks the target for a wanted brain share or mean quality.

Saved as one JSON file: arrays as base64 little-endian float32/int32, the sparse weights as
(slot, values) pairs. Loading parses JSON and nothing else, so a router file cannot run code.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelfarm.routing.learned.features import (
    EMBEDDING_WEIGHT,
    HASH_DIM,
    MIN_DF,
    STATS,
    STATS_WEIGHT,
    Featurizer,
)
from modelfarm.routing.learned.outcomes import OutcomesError

FORMAT = "modelfarm.quality-router"
VERSION = 1
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDINGS = ("full", "static")
"""What a router's embedding block reads: the full MiniLM encoder (~10-50 ms a prompt on CPU), or
its static token vectors (~1 ms for any length, models/static_embedding.py), the skill-match ones."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))))


@dataclass
class QualityRouter:
    """Predicts every model's quality on a prompt; models are ordered cheap -> expensive."""

    models: list[str]
    costs: list[float]
    """Relative price of each model (USD per row, per 1M tokens, or the rank): only order and ratios
    are used, by the N-model cost curves."""
    featurizer: Featurizer
    sparse_weights: np.ndarray
    """(HASH_DIM, M) float32 logistic weights of the tf-idf block."""
    dense_weights: np.ndarray
    """(D + len(STATS), M) float32 weights of the embedding and stats block."""
    bias: np.ndarray
    """(M,) float32 intercepts."""
    platt: np.ndarray
    """(M, 2) float32: calibrated quality = sigmoid(a * logit + b)."""
    calibration: np.ndarray
    """(K, M) float32 out-of-fold predicted quality of (a sample of) the training rows, from which
    targets for a brain share or a mean quality are calibrated."""
    info: dict[str, Any] = field(default_factory=dict)
    """How it was trained (rows, files, hyper-parameters); informative only."""
    embedding: str = "full"
    """One of EMBEDDINGS: which MiniLM vectors `predict` must be given (those it was trained on)."""

    # ---- predicting ----------------------------------------------------------------------------

    def logits(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """(N, M) uncalibrated logits; embeddings: (N, D) unit-length MiniLM vectors."""
        dense = self.featurizer.dense(embeddings, texts)  # (N, D + S)
        if dense.shape[1] != self.dense_weights.shape[0]:
            raise ValueError(
                f"embeddings have {dense.shape[1] - len(STATS)} dims; this router was trained on "
                f"{self.dense_weights.shape[0] - len(STATS)}-dim {EMBEDDING_MODEL} vectors ({self.embedding})"
            )
        rows = [self.featurizer.tfidf_row(t) for t in texts]  # a few dozen slots each
        sparse = np.array([values @ self.sparse_weights[slots] for slots, values in rows], np.float32)
        return np.asarray(sparse.reshape(len(texts), -1) + dense @ self.dense_weights + self.bias)

    def predict(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """(N, M) predicted quality in [0, 1] of each model on each prompt."""
        z = self.logits(embeddings, texts)
        return _sigmoid(z * self.platt[:, 0] + self.platt[:, 1])

    def strong_score(self, embeddings: np.ndarray, texts: list[str], strong: str) -> np.ndarray:
        """(N,) how much each prompt needs `strong`: its predicted quality minus the best of the
        other models' (for two models, P(strong right) - P(weak right))."""
        return need_of(self.predict(embeddings, texts), self.models.index(self._known(strong)))

    def choose(self, quality_row: np.ndarray, target: float) -> int:
        """Index of the cheapest model whose predicted quality clears `target`, else the last."""
        return int(choose_all(np.asarray(quality_row)[None, :], target)[0])

    def calibrate_share(self, quality: np.ndarray, share: float, strong: str | None = None) -> float:
        """The target that sends `share` of the rows of `quality` (N, M) to `strong` (default: the
        most expensive model)."""
        from modelfarm.routing.learned.calibrate import target_for_share

        return target_for_share(quality, share, self.models.index(self._known(strong or self.models[-1])))

    def calibrate_quality(self, quality: np.ndarray, mean_quality: float) -> float:
        """The lowest target whose decisions reach `mean_quality` predicted quality on `quality`."""
        from modelfarm.routing.learned.calibrate import target_for_quality

        return target_for_quality(quality, mean_quality)

    def _known(self, model: str) -> str:
        if model not in self.models:
            raise OutcomesError(f"model {model!r} is not in this router; it knows {', '.join(self.models)}")
        return model

    # ---- saving --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        slots = np.flatnonzero(np.any(self.sparse_weights != 0, axis=1) | (self.featurizer.idf != 0))
        return {
            "format": FORMAT,
            "version": VERSION,
            "models": self.models,
            "costs": self.costs,
            "embedding": {
                "model": EMBEDDING_MODEL,
                "kind": self.embedding,
                "dim": int(self.dense_weights.shape[0] - len(STATS)),
            },
            "features": {
                "hash_dim": HASH_DIM,
                "min_df": MIN_DF,
                "stats": list(STATS),
                "stats_weight": STATS_WEIGHT,
                "embedding_weight": EMBEDDING_WEIGHT,
                "stats_mean": _b64(self.featurizer.stats_mean),
                "stats_std": _b64(self.featurizer.stats_std),
            },
            "slots": _b64(slots.astype(np.int32)),
            "idf": _b64(self.featurizer.idf[slots]),
            "sparse_weights": _b64(self.sparse_weights[slots]),
            "dense_weights": _b64(self.dense_weights),
            "bias": _b64(self.bias),
            "platt": _b64(self.platt),
            "calibration": _b64(self.calibration),
            "info": self.info,
        }

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_json()), encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> QualityRouter:
        """Read a router file: JSON only (anything else, a pickle included, is refused)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise OutcomesError(f"{path}: cannot read router file ({exc.strerror}); check the path") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OutcomesError(
                f"{path}: not a router file (routers are JSON written by `modelfarm router train`)"
            ) from exc
        try:
            return cls.from_json(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise OutcomesError(f"{path}: damaged router file ({exc}); train it again") from exc

    @classmethod
    def from_json(cls, doc: Any) -> QualityRouter:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"'format' is not {FORMAT!r}")
        features = doc["features"]
        expected = {
            "hash_dim": HASH_DIM,
            "min_df": MIN_DF,
            "stats": list(STATS),
            "stats_weight": STATS_WEIGHT,
            "embedding_weight": EMBEDDING_WEIGHT,
        }
        if doc["version"] != VERSION or {k: features[k] for k in expected} != expected:
            raise ValueError("written by another version of modelfarm")
        embedding = str(doc["embedding"].get("kind", "full"))  # files from before `kind` used the encoder
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding kind {embedding!r} is not one of {', '.join(EMBEDDINGS)}")
        models = [str(m) for m in doc["models"]]
        m = len(models)
        slots = _unb64(doc["slots"], np.int32, (-1,))
        if slots.size and (slots.min() < 0 or slots.max() >= HASH_DIM):
            raise ValueError("feature slot out of range")
        idf = np.zeros(HASH_DIM, np.float32)
        idf[slots] = _unb64(doc["idf"], np.float32, (len(slots),))
        sparse = np.zeros((HASH_DIM, m), np.float32)
        sparse[slots] = _unb64(doc["sparse_weights"], np.float32, (len(slots), m))
        n_stats = len(STATS)
        featurizer = Featurizer(
            idf, _unb64(features["stats_mean"], np.float32, (n_stats,)),
            _unb64(features["stats_std"], np.float32, (n_stats,)),
        )  # fmt: skip
        return cls(
            models=models,
            costs=[float(c) for c in doc["costs"]],
            featurizer=featurizer,
            sparse_weights=sparse,
            dense_weights=_unb64(doc["dense_weights"], np.float32, (-1, m)),
            bias=_unb64(doc["bias"], np.float32, (m,)),
            platt=_unb64(doc["platt"], np.float32, (m, 2)),
            calibration=_unb64(doc["calibration"], np.float32, (-1, m)),
            info=dict(doc.get("info", {})),
            embedding=embedding,
        )


def need_of(quality: np.ndarray, strong: int) -> np.ndarray:
    """(N,) quality[:, strong] minus the best other model's, for quality (N, M)."""
    others = np.delete(quality, strong, axis=1)
    best_other = others.max(axis=1) if others.shape[1] else np.zeros(len(quality))
    return np.asarray(quality[:, strong] - best_other)


def choose_all(quality: np.ndarray, target: float) -> np.ndarray:
    """(N,) index of the cheapest model with quality >= target per row of (N, M), else M - 1."""
    clears = np.asarray(quality) >= target
    clears[:, -1] = True  # nobody clears: the most expensive model answers
    return np.asarray(np.argmax(clears, axis=1))


def _b64(array: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"dtype": data.dtype.str, "shape": list(data.shape), "data": base64.b64encode(data.tobytes()).decode()}


def _unb64(doc: dict[str, Any], dtype: type[np.generic], shape: tuple[int, ...]) -> np.ndarray:
    """Decode an array, checking its dtype and shape (-1 = any length)."""
    want = np.dtype(dtype).newbyteorder("<")
    if np.dtype(doc["dtype"]) != want:
        raise ValueError(f"array of {doc['dtype']}, expected {want.str}")
    array = np.frombuffer(base64.b64decode(doc["data"], validate=True), dtype=want)
    declared = tuple(int(n) for n in doc["shape"])
    if len(declared) != len(shape) or any(s not in (-1, d) for s, d in zip(shape, declared, strict=True)):
        raise ValueError(f"array of shape {declared}, expected {shape}")
    return array.reshape(declared).astype(dtype)
