"""Serving logic behind the HTTP glue: lease a model, run it, account for it.

Every request, answered or refused, leaves one ledger row and one metrics observation.
Streams take their first chunk before any byte is sent, so that errors found before
generation starts (unknown model, overload, prompt too long) are proper HTTP errors;
later errors are sent as an SSE `error` event and recorded.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from modelfarm.errors import InvalidRequestError
from modelfarm.ledger import Ledger, RequestRecord
from modelfarm.manifest import ModelSpec
from modelfarm.models.pool import Pool
from modelfarm.serve import wire
from modelfarm.serve.errors import error_body, status_of, type_of
from modelfarm.serve.metrics import Metrics
from modelfarm.types import ChatChunk, Usage

CLIENT_CLOSED = 499  # nginx's status for "the client went away"


def cost_usd(spec: ModelSpec | None, usage: Usage) -> float:
    if spec is None:
        return 0.0
    return (usage.prompt_tokens * spec.price_in + usage.completion_tokens * spec.price_out) / 1e6


@dataclass(slots=True)
class Served:
    body: dict[str, Any]
    headers: dict[str, str]


class Service:
    def __init__(self, pool: Pool, ledger: Ledger, metrics: Metrics) -> None:
        self.pool = pool
        self.ledger = ledger
        self.metrics = metrics

    def new_record(self, endpoint: str, model: str | None, key_id: str | None) -> RequestRecord:
        prefix = "chatcmpl-" if endpoint == "chat" else "emb-"
        return RequestRecord(
            id=prefix + uuid.uuid4().hex, endpoint=endpoint, requested_model=model, key_id=key_id
        )

    def finish(
        self,
        rec: RequestRecord,
        started: float,
        *,
        error: BaseException | None = None,
        usage: Usage | None = None,
        ttft: float | None = None,
        status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        """Write the ledger row and the metrics for one request (answered or not)."""
        rec.latency_ms = (time.perf_counter() - started) * 1000
        if error is not None:
            rec.status = status or status_of(error)
            rec.error_type = error_type or type_of(error)
        elif status is not None:
            rec.status = status
        if usage is not None:
            rec.tokens_in, rec.tokens_out = usage.prompt_tokens, usage.completion_tokens
            spec = self.pool.manifest.model(rec.served_model or "")
            rec.cost_usd = cost_usd(spec, usage)
        rec.ttft_ms = ttft * 1000 if ttft is not None else None
        self.ledger.record(rec)
        self.metrics.observe(
            rec.served_model or rec.requested_model or "?",
            rec.endpoint,
            rec.status,
            rec.tokens_in,
            rec.tokens_out,
            rec.latency_ms / 1000,
            ttft,
        )

    def headers(self, rec: RequestRecord) -> dict[str, str]:
        return {
            "x-modelfarm-model": rec.served_model or "",
            "x-modelfarm-route": "direct",
            "x-request-id": rec.id,
        }

    # -- chat ---------------------------------------------------------------------------

    async def complete(self, body: wire.ChatCompletionBody, rec: RequestRecord, started: float) -> Served:
        request = body.to_request()
        self.pool.spec(body.model)
        rec.served_model = body.model
        async with self.pool.lease(body.model) as backend:
            result = await backend.chat(request)
        rec.finish_reason = result.finish_reason
        self.finish(rec, started, usage=result.usage)
        extra = {"model": body.model, "route": "direct"}
        return Served(wire.completion(rec.id, body.model, result, extra), self.headers(rec))

    async def open_stream(
        self, body: wire.ChatCompletionBody, rec: RequestRecord, started: float
    ) -> AsyncIterator[bytes]:
        """Start generating; raise here (before any byte is sent) if it cannot start."""
        request = body.to_request()
        self.pool.spec(body.model)
        rec.served_model, rec.stream = body.model, True
        stack = contextlib.AsyncExitStack()
        try:
            backend = await stack.enter_async_context(self.pool.lease(body.model))
            chunks = backend.stream(request)
            stack.push_async_callback(_aclose, chunks)
            first = await anext(chunks, None)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            raise
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return self._sse(rec, started, stack, chunks, first, include_usage, request.logprobs)

    async def _sse(
        self,
        rec: RequestRecord,
        started: float,
        stack: contextlib.AsyncExitStack,
        chunks: AsyncIterator[ChatChunk],
        first: ChatChunk | None,
        include_usage: bool,
        logprobs: bool,
    ) -> AsyncIterator[bytes]:
        model, created = rec.served_model or "", int(time.time())
        ttft: float | None = None
        usage: Usage | None = None
        error: BaseException | None = None
        status: int | None = None
        recorded = False
        try:
            yield _event(wire.chunk(rec.id, created, model, None, role=True))
            piece = first
            while piece is not None:
                if ttft is None and piece.text:
                    ttft = time.perf_counter() - started
                if piece.usage is not None:
                    usage = piece.usage
                if piece.finish_reason:
                    rec.finish_reason = piece.finish_reason
                if piece.text or piece.finish_reason or (logprobs and piece.logprobs):
                    yield _event(wire.chunk(rec.id, created, model, piece, want_logprobs=logprobs))
                piece = await anext(chunks, None)
            if include_usage:
                yield _event(wire.usage_chunk(rec.id, created, model, usage or Usage()))
            self.finish(rec, started, usage=usage, ttft=ttft)
            recorded = True
            yield b"data: [DONE]\n\n"
        except (anyio.get_cancelled_exc_class(), GeneratorExit) as exc:
            error, status = exc, CLIENT_CLOSED
            raise
        except Exception as exc:
            error = exc
            body = error_body(getattr(exc, "message", "internal error"), "server_error", type_of(exc))
            yield _event(body)
        finally:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
                if not recorded:
                    kind = "client_disconnected" if status == CLIENT_CLOSED else None
                    self.finish(
                        rec, started, error=error, usage=usage, ttft=ttft, status=status, error_type=kind
                    )

    # -- embeddings -----------------------------------------------------------------------

    async def embed(self, body: wire.EmbeddingBody, rec: RequestRecord, started: float) -> Served:
        texts = body.texts()
        spec = self.pool.spec(body.model)
        if spec.backend != "embedding" and spec.backend != "openai":
            raise InvalidRequestError(f"model {body.model!r} does not make embeddings", param="model")
        rec.served_model = body.model
        async with self.pool.lease(body.model) as backend:
            vectors, tokens = await backend.embed(texts)
        self.finish(rec, started, usage=Usage(prompt_tokens=tokens))
        return Served(wire.embeddings(body.model, vectors, tokens, body.encoding_format), self.headers(rec))


async def _aclose(iterator: AsyncIterator[ChatChunk]) -> None:
    """Close a backend's stream so that it stops generating (async generators have aclose)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
