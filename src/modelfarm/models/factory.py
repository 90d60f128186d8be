"""Turn a manifest entry into a backend: find and check its weights, then load it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelfarm.errors import BackendUnavailableError
from modelfarm.manifest import ModelSpec
from modelfarm.models.base import Backend
from modelfarm.sources import Progress, resolve, resolve_tokenizer

_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Prepared:
    """A model whose weights are found and verified, ready to load."""

    estimate_bytes: int
    """Memory it will take once loaded (the manifest's memory_mb, or from the file size)."""
    load: Callable[[], Backend]
    """Blocking: call it in a worker thread."""


def prepare(
    spec: ModelSpec,
    *,
    base_dir: Path,
    cache_dir: Path,
    threads: int,
    progress: Progress | None = None,
) -> Prepared:
    """Blocking (may assemble and hash a large file): call it in a worker thread."""
    if spec.backend == "openai":
        assert spec.base_url is not None
        api_key = None
        if spec.api_key_env:
            api_key = os.environ.get(spec.api_key_env)
            if not api_key:
                raise BackendUnavailableError(
                    f"model {spec.name!r}: the environment variable {spec.api_key_env} that should "
                    "hold its API key is not set; export it before starting the farm"
                )
        from modelfarm.models.openai_compat import OpenAIBackend

        base_url, key = spec.base_url, api_key
        return Prepared(
            spec.memory_mb * _MIB if spec.memory_mb else 0,
            lambda: OpenAIBackend(
                spec.name,
                base_url,
                remote_model=spec.remote_model or spec.name,
                api_key=key,
                timeout=spec.timeout,
                max_connections=max(spec.concurrency, 1),
            ),
        )

    path = resolve(spec, base_dir, cache_dir, progress)
    size = path.stat().st_size
    estimate = spec.memory_mb * _MIB if spec.memory_mb else int(size * 1.2) + 64 * _MIB
    n_threads = min(spec.threads or threads, threads)

    if spec.backend == "embedding":
        tokenizer = resolve_tokenizer(spec, base_dir)
        from modelfarm.models.embedding import OnnxEmbeddingBackend

        return Prepared(
            estimate,
            # one intra-op thread: one sentence ran 2.5x slower on two (thread hand-offs)
            lambda: OnnxEmbeddingBackend(
                spec.name, path, tokenizer, max_tokens=spec.context_length, threads=spec.threads or 1
            ),
        )

    from modelfarm.models.llama import LlamaCppBackend

    return Prepared(
        estimate,
        lambda: LlamaCppBackend(
            spec.name,
            path,
            context_length=spec.context_length,
            threads=n_threads,
            chat_format=spec.chat_format,
        ),
    )
