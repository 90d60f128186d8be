"""Core value types that flow between the gateway, the pool and the backends.

Plain dataclasses: pydantic lives only at the edges (HTTP bodies, the manifest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    """`system`, `user`, `assistant` or `tool`."""
    content: str
    """The text of the message (OpenAI content parts are joined before they get here)."""


@dataclass(slots=True)
class ChatRequest:
    """What a backend needs to generate one answer. None means "the backend's default"."""

    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    """OpenAI semantics: lowers a token's logit by this much per time it was already generated."""
    presence_penalty: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    """Return the log-probability of each generated token."""
    top_logprobs: int = 0
    """Also return this many alternatives per token (0-20)."""
    response_format: dict[str, Any] | None = None
    """OpenAI `response_format` (`{"type": "json_object"}` or a `json_schema`)."""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()
    """The most likely alternatives at this position, as (token, logprob)."""


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ChatChunk:
    """One piece of a streamed answer. The last chunk carries finish_reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    """`stop`, `length`, or None while the answer goes on."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    usage: Usage | None = None


@dataclass(slots=True)
class ChatResult:
    text: str
    finish_reason: str
    usage: Usage
    logprobs: list[TokenLogprob] | None = None
