"""Skill match: how close a prompt is to what each model says it is good at.

Each model's skills (its description and example prompts) are embedded once; a prompt's
score for a model is its best cosine similarity with any of them.
"""

from __future__ import annotations

import numpy as np

from modelfarm.manifest import ModelSpec


class SkillIndex:
    def __init__(self, specs: list[ModelSpec], vectors: dict[str, np.ndarray]) -> None:
        self.specs = {s.name: s for s in specs}
        self._vectors = vectors  # model -> (K, D) unit vectors of its skill texts

    @staticmethod
    def texts(spec: ModelSpec) -> list[str]:
        return [t for t in (spec.skills.description, *spec.skills.examples) if t.strip()]

    def scores(self, prompt_vec: np.ndarray) -> dict[str, float]:
        """Best cosine similarity of the prompt (D,) with each model's skill texts."""
        return {name: float(np.max(vecs @ prompt_vec)) for name, vecs in self._vectors.items() if len(vecs)}
