"""Sentence embeddings from a BERT-style ONNX model (all-MiniLM-L6-v2 by default).

onnxruntime and tokenizers only, no torch: tokenize, run the encoder, mean-pool the last
hidden state over real (unpadded) tokens, L2-normalise, as sentence-transformers does.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np

from modelfarm.errors import BackendUnavailableError, InvalidRequestError
from modelfarm.models.base import EmbeddingOnly
from modelfarm.models.static_embedding import StaticEmbedder

_BATCH = 32


class OnnxEmbeddingBackend(EmbeddingOnly):
    def __init__(self, name: str, model: Path, tokenizer: Path, *, max_tokens: int, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self._model_file = model
        self._static: StaticEmbedder | None = None
        self.cpu_threads = 1
        self.memory_bytes = model.stat().st_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            self._tok = Tokenizer.from_file(str(tokenizer))
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad files
            raise BackendUnavailableError(f"model {name!r}: cannot load {model}: {exc}") from exc
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.enable_padding()
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Blocking: unit-length embeddings, shape (len(texts), dim), float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._embed_sync(texts)[0], dtype=np.float32)

    def static_ready(self) -> StaticEmbedder | None:
        return self._static

    def static(self) -> StaticEmbedder:
        """Blocking: this encoder's static token vectors (distilled on first use, then cached)."""
        with self._lock:
            if self._static is None:
                from modelfarm.sources import default_cache_dir

                self._static = StaticEmbedder.load_or_distill(
                    self._session, self._tok, self._model_file, default_cache_dir() / "static-embeddings"
                )
            return self._static

    @property
    def dim(self) -> int:
        shape = self._session.get_outputs()[0].shape
        return int(shape[-1]) if isinstance(shape[-1], int) else 384

    def _embed_sync(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vectors: list[list[float]] = []
        n_tokens = 0
        for start in range(0, len(texts), _BATCH):
            batch = self._tok.encode_batch(texts[start : start + _BATCH])
            ids = np.array([e.ids for e in batch], dtype=np.int64)  # (B, T)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)  # (B, T)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            with self._lock:
                hidden = self._session.run(None, feeds)[0]  # (B, T, D)
            weights = mask[..., None].astype(np.float32)  # (B, T, 1)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors.extend(pooled.astype(float).tolist())
            n_tokens += int(mask.sum())
        return vectors, n_tokens

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        if not texts:
            raise InvalidRequestError("input must not be empty", param="input")
        return await asyncio.to_thread(self._embed_sync, texts)


def default_embedder(threads: int = 1) -> OnnxEmbeddingBackend:
    """The default farm's MiniLM, loaded directly (blocking), for the router and scripts."""
    from modelfarm.manifest import load_manifest
    from modelfarm.sources import default_cache_dir, resolve, resolve_tokenizer

    manifest = load_manifest(None)
    spec = next(m for m in manifest.models if m.backend == "embedding")
    model = resolve(spec, manifest.base_dir, default_cache_dir())
    return OnnxEmbeddingBackend(
        spec.name,
        model,
        resolve_tokenizer(spec, manifest.base_dir),
        max_tokens=spec.context_length,
        threads=threads,
    )
