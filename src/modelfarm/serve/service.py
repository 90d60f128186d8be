"""Serving logic behind the HTTP glue: decide, run, account.

Every chat request goes through the router (a concrete model name skips the choice but not
the privacy guard), then an `Execution` (cascade, fallback). Every request, answered or
refused, leaves one ledger row and one metrics observation; routed requests also leave a
decision row. Streams take their first chunk before any byte is sent, so that errors found
before generation starts (unknown model, overload, prompt too long, PII blocked) are
proper HTTP errors; later errors are sent as an SSE `error` event and recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from modelfarm.errors import InvalidRequestError
from modelfarm.ledger import DecisionRecord, Ledger, Outcome, RequestRecord
from modelfarm.manifest import ModelSpec
from modelfarm.models.pool import Pool
from modelfarm.routing.decision import Decision
from modelfarm.routing.execute import Execution
from modelfarm.routing.router import Router, prompt_text
from modelfarm.serve import wire
from modelfarm.serve.errors import error_body, status_of, type_of
from modelfarm.serve.metrics import Metrics
from modelfarm.types import ChatChunk, ChatResult, Usage

CLIENT_CLOSED = 499  # nginx's status for "the client went away"


def token_cost(spec: ModelSpec | None, tokens_in: int, tokens_out: int, seconds: float = 0.0) -> float:
    """USD for one model's work: token prices plus its compute price per second."""
    if spec is None:
        return 0.0
    return (tokens_in * spec.price_in + tokens_out * spec.price_out) / 1e6 + seconds * spec.price_per_second


@dataclass(slots=True)
class Served:
    body: dict[str, Any]
    headers: dict[str, str]


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")[:400]


class Service:
    def __init__(self, pool: Pool, ledger: Ledger, metrics: Metrics, router: Router) -> None:
        self.pool = pool
        self.ledger = ledger
        self.metrics = metrics
        self.router = router

    def new_record(self, endpoint: str, model: str | None, key_id: str | None) -> RequestRecord:
        prefix = "chatcmpl-" if endpoint == "chat" else "emb-"
        return RequestRecord(id=prefix + uuid.uuid4().hex, endpoint=endpoint, requested_model=model, key_id=key_id)

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
        cost: float | None = None,
        decision: DecisionRecord | None = None,
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
            rec.cost_usd = cost if cost is not None else token_cost(spec, usage.prompt_tokens, usage.completion_tokens)
        rec.ttft_ms = ttft * 1000 if ttft is not None else None
        self.ledger.record(rec, decision)
        self.metrics.observe(
            rec.served_model or rec.requested_model or "?",
            rec.endpoint,
            rec.status,
            rec.tokens_in,
            rec.tokens_out,
            rec.latency_ms / 1000,
            ttft,
        )

    def headers(self, rec: RequestRecord, decision: Decision | None = None) -> dict[str, str]:
        route = "direct" if decision is None else f"{decision.policy}; {decision.reason}"
        return {
            "x-modelfarm-model": rec.served_model or "",
            "x-modelfarm-route": _ascii(route),
            "x-request-id": rec.id,
        }

    # -- accounting of routed requests ----------------------------------------------------

    def _learnable_prompt(self, decision: Decision) -> str | None:
        """The prompt as the ledger may keep it: as sent, or with PII placeholders, or not at all."""
        if not decision.pii:
            return prompt_text(decision.messages)
        return prompt_text(decision.redacted) if decision.redacted is not None else None

    def _execution(self, decision: Decision, body: wire.ChatCompletionBody, rec: RequestRecord) -> Execution:
        prompt = self._learnable_prompt(decision)

        def escalated(model: str, _: ChatResult, why: str) -> None:
            if prompt is not None:  # an escalation is a labelled outcome: this model fell short here
                self.ledger.add_outcome(Outcome(prompt, model, 0.0, "cascade", rec.id))

        return Execution(self.pool, self.router.breaker, decision, body.to_request(), on_escalate=escalated)

    def _account(self, rec: RequestRecord, decision: Decision, exe: Execution) -> tuple[float, DecisionRecord]:
        """The USD cost of every attempt, and the decision row to write with the request row."""
        manifest = self.pool.manifest
        cost = 0.0
        for a in exe.attempts:
            cost += token_cost(manifest.model(a.model), a.tokens_in, a.tokens_out, a.latency_ms / 1000)
        chat = self.router.chat_models
        saved = 0.0
        served = next((a for a in reversed(exe.attempts) if a.outcome == "served"), None)
        if chat and served is not None:
            brain = chat[-1]
            saved = token_cost(brain, served.tokens_in, served.tokens_out, served.latency_ms / 1000) - cost
        row = DecisionRecord(
            rec.id, decision.policy, exe.served or decision.model, decision.reason, decision.scores,
            decision.pii, [a.as_dict() for a in exe.attempts], saved, self._learnable_prompt(decision),
        )  # fmt: skip
        return cost, row

    def _extra(self, decision: Decision, exe: Execution) -> dict[str, Any]:
        return {**decision.explain(), "model": exe.served, "attempts": [a.as_dict() for a in exe.attempts]}

    # -- chat ---------------------------------------------------------------------------

    async def complete(self, body: wire.ChatCompletionBody, rec: RequestRecord, started: float) -> Served:
        decision = await self.router.decide(body.model, body.to_request().messages)
        exe = self._execution(decision, body, rec)
        try:
            result = await exe.complete()
        except BaseException:
            rec.served_model = exe.served or decision.model
            self.ledger.record_decision(self._account(rec, decision, exe)[1])  # the request row: by the caller
            raise
        rec.served_model = exe.served or decision.model
        cost, row = self._account(rec, decision, exe)
        rec.finish_reason = result.finish_reason
        self.finish(rec, started, usage=exe.usage, cost=cost, decision=row)
        served = exe.served or decision.model
        body_out = wire.completion(rec.id, served, result, self._extra(decision, exe))
        return Served(body_out, self.headers(rec, decision))

    async def open_stream(
        self, body: wire.ChatCompletionBody, rec: RequestRecord, started: float
    ) -> tuple[AsyncIterator[bytes], dict[str, str]]:
        """Start generating; raise here (before any byte is sent) if it cannot start."""
        decision = await self.router.decide(body.model, body.to_request().messages)
        exe = self._execution(decision, body, rec)
        rec.stream = True
        chunks = exe.stream()
        try:
            first = await anext(chunks, None)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _aclose(chunks)
                rec.served_model = exe.served or decision.model
                self.ledger.record_decision(self._account(rec, decision, exe)[1])
            raise
        rec.served_model = exe.served
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = self._sse(rec, started, chunks, first, include_usage, body.logprobs, decision, exe)
        return events, self.headers(rec, decision)

    async def _sse(
        self,
        rec: RequestRecord,
        started: float,
        chunks: AsyncIterator[ChatChunk],
        first: ChatChunk | None,
        include_usage: bool,
        logprobs: bool,
        decision: Decision,
        exe: Execution,
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
            self._fill_stream_attempt(exe, usage)
            cost, row = self._account(rec, decision, exe)
            self.finish(rec, started, usage=exe.usage, ttft=ttft, cost=cost, decision=row)
            recorded = True
            yield b"data: [DONE]\n\n"
        except (anyio.get_cancelled_exc_class(), GeneratorExit) as exc:
            error, status = exc, CLIENT_CLOSED
            raise
        except Exception as exc:
            error = exc
            yield _event(error_body(getattr(exc, "message", "internal error"), "server_error", type_of(exc)))
        finally:
            with anyio.CancelScope(shield=True):
                await _aclose(chunks)
                if not recorded:
                    self._fill_stream_attempt(exe, usage)
                    cost, row = self._account(rec, decision, exe)
                    kind = "client_disconnected" if status == CLIENT_CLOSED else None
                    self.finish(
                        rec,
                        started,
                        error=error,
                        usage=usage,
                        ttft=ttft,
                        status=status,
                        error_type=kind,
                        cost=cost,
                        decision=row,
                    )

    @staticmethod
    def _fill_stream_attempt(exe: Execution, usage: Usage | None) -> None:
        last = exe.attempts[-1] if exe.attempts else None
        if last is not None and usage is not None and last.tokens_in == 0:
            last.tokens_in = usage.prompt_tokens
            last.tokens_out = usage.completion_tokens

    # -- feedback -------------------------------------------------------------------------

    def feedback(self, request_id: str, score: float, model: str | None) -> dict[str, Any]:
        """A client's judgement of an answer becomes a labelled outcome for retraining."""
        decision = self.ledger.decision(request_id)
        if decision is None:
            raise InvalidRequestError(f"no routed request with id {request_id!r} in the ledger", param="id")
        if decision.prompt is None:
            raise InvalidRequestError(
                "that request carried PII that was not redacted, so its prompt was not kept; it cannot be learned from",
                param="id",
            )
        served = model or decision.model
        self.ledger.add_outcome(Outcome(decision.prompt, served, score, "feedback", request_id))
        return {"id": request_id, "model": served, "score": score, "recorded": True}

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
    """Close a stream so that it stops generating (async generators have aclose)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
