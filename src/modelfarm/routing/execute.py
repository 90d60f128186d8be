"""Carry out a decision: cascade (escalate a weak answer) and fallback (errors, overload).

Cascade: the cheaper model answers first, with token log-probabilities; an answer that is
empty, cut off by the length limit, a refusal, or whose mean token log-probability is under
the policy's bar goes up to the next stronger candidate; so does one whose tokens won by too
small a margin over the runner-up (`cascade_min_margin`), or whose router posterior times mean
token probability is too low (`cascade_min_confidence`). Streaming clients see nothing
until the cheap answer has passed its check (it is then sent in one piece); an escalated
answer streams live from the stronger model. Every attempt is recorded.

Fallback: a backend error, timeout or 429 sends the request to the next candidate the
policy allows (stronger ones first, then cheaper), before any byte reaches the client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import time
from collections.abc import AsyncIterator, Callable

from modelfarm.errors import BackendUnavailableError, SystemError_
from modelfarm.models.pool import Pool
from modelfarm.routing.breaker import CircuitBreaker
from modelfarm.routing.decision import Attempt, Decision
from modelfarm.types import ChatChunk, ChatRequest, ChatResult, TokenLogprob, Usage

_REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry, (but )?i|i cannot|i can'?t|i can not|i'?m unable|i am unable|as an ai)",
    re.IGNORECASE,
)
Escalated = Callable[[str, ChatResult, str], None]
"""Told (model, its answer, why) when a cascade step escalates: a labelled outcome."""


def mean_margin(logprobs: list[TokenLogprob]) -> float | None:
    """Mean of (chosen token's log-prob - best other token's) over tokens that list alternatives."""
    gaps = []
    for lp in logprobs:
        others = [p for token, p in lp.top if token != lp.token]
        if others:
            gaps.append(lp.logprob - max(others))
    return sum(gaps) / len(gaps) if gaps else None


def weakness(
    result: ChatResult,
    min_logprob: float,
    *,
    min_margin: float | None = None,
    min_confidence: float | None = None,
    posterior: float | None = None,
) -> str | None:
    """Why an answer should escalate, or None if it holds up."""
    text = result.text.strip()
    if not text:
        return "empty answer"
    if result.finish_reason == "length":
        return "answer cut off by the length limit"
    if _REFUSAL.match(text):
        return "refusal"
    if result.logprobs:
        mean = sum(lp.logprob for lp in result.logprobs) / len(result.logprobs)
        if mean < min_logprob:
            return f"mean token log-prob {mean:.2f} < {min_logprob:.2f}"
        margin = mean_margin(result.logprobs) if min_margin is not None else None
        if min_margin is not None and margin is not None and margin < min_margin:
            return f"mean token margin {margin:.2f} < {min_margin:.2f}"
        if min_confidence is not None:
            prior = 1.0 if posterior is None else posterior
            confidence = prior * math.exp(mean)
            if confidence < min_confidence:
                return f"router {prior:.2f} x answer {math.exp(mean):.2f} = {confidence:.2f} < {min_confidence:.2f}"
    return None


class Execution:
    """One request carried out under a decision; `attempts` and `served` say what happened."""

    def __init__(
        self,
        pool: Pool,
        breaker: CircuitBreaker,
        decision: Decision,
        request: ChatRequest,
        on_escalate: Escalated | None = None,
    ) -> None:
        self.pool = pool
        self.breaker = breaker
        self.decision = decision
        self.request = request
        self.on_escalate = on_escalate
        self.attempts: list[Attempt] = []
        self.served: str | None = None
        self.usage = Usage()

    def _plan(self) -> list[tuple[str, bool]]:
        """(model, is a cascade step) in the order they may be tried."""
        d = self.decision
        ups = d.order[: d.n_stronger]  # stronger than the pick, weakest first
        chain = [d.model, *ups]
        names = [d.model, *d.order] if d.fallback else (chain if d.cascade else [d.model])
        plan = []
        for name in names:
            step = d.cascade and name in chain and chain.index(name) < len(chain) - 1
            plan.append((name, step))
        return plan

    def _request_for(self, model: str, cascade_step: bool) -> ChatRequest:
        req = dataclasses.replace(self.request, messages=self.decision.sent(model))
        if cascade_step:
            req.logprobs = True
            if self.decision.cascade_min_margin is not None:  # the margin needs the runner-up token
                req.top_logprobs = max(req.top_logprobs, 2)
        return req

    def _restore(self, model: str, text: str) -> str:
        d = self.decision
        if d.redaction is None or model in d.cleared:
            return text
        return d.redaction.restore(text)

    def _fail(self, model: str, exc: BaseException, started: float) -> None:
        self.breaker.failure(model)
        detail = getattr(exc, "message", str(exc))
        self.attempts.append(Attempt(model, "failed", detail, (time.perf_counter() - started) * 1000))

    def _can_fallback(self) -> bool:
        return self.decision.fallback

    async def complete(self) -> ChatResult:
        last_error: BaseException | None = None
        kept: tuple[str, ChatResult] | None = None  # an escalated answer, kept as a last resort
        for name, cascade_step in self._plan():
            if last_error is not None and not self._can_fallback() and kept is None:
                break
            try:
                attempt, result = await self._whole(name, cascade_step)
            except SystemError_ as exc:
                last_error = exc
                continue
            if attempt.outcome == "escalated":
                kept = (name, result)
                continue
            return self._deliver(name, result)
        if kept is not None:  # every stronger model failed: the weak answer beats none
            name, result = kept
            self.attempts.append(Attempt(name, "served", "stronger models failed; kept this answer"))
            return self._deliver(name, result)
        raise self._exhausted(last_error)

    async def _whole(self, name: str, cascade_step: bool) -> tuple[Attempt, ChatResult]:
        """One model's whole answer, checked if it is a cascade step; the attempt is recorded."""
        started = time.perf_counter()
        try:
            async with self.pool.lease(name) as backend:
                result = await backend.chat(self._request_for(name, cascade_step))
        except SystemError_ as exc:
            self._fail(name, exc, started)
            raise
        self.breaker.success(name)
        self._count(result.usage)
        attempt = Attempt(
            name,
            "served",
            latency_ms=(time.perf_counter() - started) * 1000,
            tokens_out=result.usage.completion_tokens,
            tokens_in=result.usage.prompt_tokens,
        )
        self.attempts.append(attempt)
        d = self.decision
        why = None
        if cascade_step:
            why = weakness(
                result, d.cascade_min_logprob, min_margin=d.cascade_min_margin,
                min_confidence=d.cascade_min_confidence, posterior=d.posterior.get(name),
            )  # fmt: skip
        if why:
            attempt.outcome, attempt.detail = "escalated", why
            if self.on_escalate:
                self.on_escalate(name, result, why)
        return attempt, result

    def _deliver(self, name: str, result: ChatResult) -> ChatResult:
        self.served = name
        text = self._restore(name, result.text)
        logprobs = result.logprobs if self.request.logprobs else None
        if logprobs:  # alternatives the cascade asked for, not the client
            keep = self.request.top_logprobs
            logprobs = [lp if len(lp.top) <= keep else dataclasses.replace(lp, top=lp.top[:keep]) for lp in logprobs]
        return ChatResult(text, result.finish_reason, result.usage, logprobs)

    def _count(self, usage: Usage) -> None:
        self.usage.prompt_tokens += usage.prompt_tokens
        self.usage.completion_tokens += usage.completion_tokens

    def _exhausted(self, last_error: BaseException | None) -> BaseException:
        if len(self.attempts) <= 1 and last_error is not None:
            return last_error
        tried = "; ".join(f"{a.model}: {a.detail or a.outcome}" for a in self.attempts)
        return BackendUnavailableError(f"no model could answer ({tried}); retry later")

    async def stream(self) -> AsyncIterator[ChatChunk]:
        """Yield the answer; everything up to the first chunk may still fall back."""
        last_error: BaseException | None = None
        for name, cascade_step in self._plan():
            if last_error is not None and not self._can_fallback():
                break
            if cascade_step:
                try:
                    attempt, result = await self._whole(name, True)
                except SystemError_ as exc:
                    last_error = exc
                    continue
                if attempt.outcome == "escalated":
                    continue
                done = self._deliver(name, result)
                yield ChatChunk(text=done.text, logprobs=done.logprobs or [])
                yield ChatChunk(finish_reason=done.finish_reason, usage=self.usage)
                return
            started = time.perf_counter()
            async with contextlib.AsyncExitStack() as stack:
                try:
                    backend = await stack.enter_async_context(self.pool.lease(name))
                    chunks = backend.stream(self._request_for(name, False))
                    stack.push_async_callback(_aclose, chunks)
                    first = await anext(chunks, None)
                except SystemError_ as exc:
                    self._fail(name, exc, started)
                    last_error = exc
                    continue
                self.breaker.success(name)
                self.served = name
                attempt = Attempt(name, "served")
                self.attempts.append(attempt)
                restorer = None
                if self.decision.redaction is not None and name not in self.decision.cleared:
                    restorer = self.decision.redaction.stream()
                piece = first
                while piece is not None:
                    if piece.usage is not None:
                        self._count(piece.usage)
                        piece = dataclasses.replace(piece, usage=self.usage)
                    if restorer is not None:
                        text = restorer.feed(piece.text)
                        if piece.finish_reason:
                            text += restorer.flush()
                        piece = dataclasses.replace(piece, text=text)
                    attempt.tokens_out += len(piece.logprobs) if piece.logprobs else (1 if piece.text else 0)
                    yield piece
                    piece = await anext(chunks, None)
                attempt.latency_ms = (time.perf_counter() - started) * 1000
                return
        raise self._exhausted(last_error)


async def _aclose(iterator: AsyncIterator[ChatChunk]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
