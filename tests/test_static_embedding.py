"""Static token vectors distilled from the default farm's MiniLM (built once per machine, cached)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from modelfarm.models.embedding import OnnxEmbeddingBackend, default_embedder
from modelfarm.models.static_embedding import StaticEmbedder

CODE_SKILLS = ["Short code snippets.", "Write a Python function that reverses a string.", "Fix this SQL query."]


@pytest.fixture(scope="module")
def backend() -> OnnxEmbeddingBackend:
    return default_embedder(threads=2)


def test_code_prompts_match_code_skills_better_than_chat(backend: OnnxEmbeddingBackend) -> None:
    static = backend.static()
    skills = static.encode(CODE_SKILLS)
    code = static.encode(["How do I sort a list of tuples by the second item in Python?"]) @ skills.T
    chat = static.encode(["What a lovely morning, isn't it?"]) @ skills.T
    assert code.max() > chat.max() + 0.05  # measured: 0.50 against 0.42


def test_vectors_are_unit_length_and_empty_text_is_zero(backend: OnnxEmbeddingBackend) -> None:
    vectors = backend.static().encode(["a sentence", "", "   "])
    assert vectors.shape == (3, backend.static().dim)
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
    assert not vectors[1].any() and not vectors[2].any()


def test_long_texts_are_not_cut_at_the_encoders_limit(backend: OnnxEmbeddingBackend) -> None:
    head = "the weather is mild today. " * 200  # ~1,200 tokens, far past MiniLM's 256
    a, b = backend.static().encode([head + "python code", head + "gardening tools"])
    assert not np.allclose(a, b)


def test_the_cached_table_is_reloaded_without_distilling(backend: OnnxEmbeddingBackend, tmp_path: Path) -> None:
    import shutil
    import time

    backend.static()  # make sure the machine's cache exists
    cache = Path(os.environ.get("MODELFARM_CACHE", "~/.cache/modelfarm")).expanduser() / "static-embeddings"
    for f in cache.glob("*.npy"):
        shutil.copy(f, tmp_path / f.name)
    t0 = time.perf_counter()
    again = StaticEmbedder.load_or_distill(backend._session, backend._tok, backend._model_file, tmp_path)
    assert time.perf_counter() - t0 < 5  # distilling takes ~25 s
    text = ["Fix this SQL query."]
    assert np.allclose(again.encode(text), backend.static().encode(text), atol=1e-3)
