"""How agents reach models: one `ModelCaller` protocol, served by the gateway's own service.

Every call an agent run makes (plan, tool arguments, step answers, synthesis) goes through
`Service.complete`, exactly like an HTTP request: the router (so a step's model may be an `auto`
policy, and fallback and the circuit breaker apply), the pool's per-model concurrency limits,
the privacy guard, and one ledger row per call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from modelfarm.serve import wire
from modelfarm.serve.service import Service


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    model: str
    """The model that answered (after routing, fallback or escalation)."""
    tokens_in: int
    tokens_out: int
    cost: float
    request_id: str
    finish_reason: str | None = None


class ModelCaller(Protocol):
    async def __call__(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        response_format: dict[str, Any] | None = None,
        temperature: float = 0.0,
        frequency_penalty: float | None = None,
    ) -> Reply: ...


class ServiceCaller:
    """A ModelCaller over the in-process service (ledger rows carry `key_id = "agents"`)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        response_format: dict[str, Any] | None = None,
        temperature: float = 0.0,
        frequency_penalty: float | None = None,
    ) -> Reply:
        body = wire.ChatCompletionBody.model_validate(
            {
                "model": model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "response_format": response_format,
                "frequency_penalty": frequency_penalty,
            }
        )
        started = time.perf_counter()
        rec = self.service.new_record("chat", model, "agents")
        try:
            served = await self.service.complete(body, rec, started)
        except BaseException as exc:
            self.service.finish(rec, started, error=exc)
            raise
        choice = served.body["choices"][0]
        usage = served.body.get("usage") or {}
        return Reply(
            text=choice["message"].get("content") or "",
            model=rec.served_model or model,
            tokens_in=int(usage.get("prompt_tokens", 0)),
            tokens_out=int(usage.get("completion_tokens", 0)),
            cost=rec.cost_usd,
            request_id=rec.id,
            finish_reason=choice.get("finish_reason"),
        )
