"""The one protocol every backend implements.

A backend needs one method, `stream`; `chat` collects it unless the backend has a faster way.
Embedding backends implement `embed` instead. Backends know nothing about routing or HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from modelfarm.errors import InvalidRequestError
from modelfarm.types import ChatChunk, ChatRequest, ChatResult, TokenLogprob, Usage


class Backend(ABC):
    """A loaded model that can answer chat requests (and maybe embed text)."""

    name: str = "backend"
    cpu_threads: int = 0
    """CPU threads one request keeps busy on this machine (0 for remote models)."""
    memory_bytes: int = 0
    """Memory the loaded model takes on this machine."""

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the answer piece by piece; the last chunk has finish_reason and usage.

        Closing the iterator early (client gone) must stop the generation.
        """

    async def chat(self, request: ChatRequest) -> ChatResult:
        parts: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish, usage = "stop", Usage()
        async for chunk in self.stream(request):
            parts.append(chunk.text)
            logprobs.extend(chunk.logprobs)
            finish = chunk.finish_reason or finish
            usage = chunk.usage or usage
        return ChatResult("".join(parts), finish, usage, logprobs if request.logprobs else None)

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embeddings of each text, and the number of tokens read."""
        raise InvalidRequestError(f"model {self.name!r} does not make embeddings", param="model")

    async def aclose(self) -> None:
        """Free what the model holds (memory, connections). Nothing to free by default."""
        return None


class EmbeddingOnly(Backend):
    """Base for embedding models: chat requests are refused with a clear error."""

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise InvalidRequestError(f"model {self.name!r} is an embedding model; use POST /v1/embeddings", param="model")
