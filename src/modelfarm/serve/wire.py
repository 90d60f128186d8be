"""OpenAI wire types: request bodies in (pydantic), response bodies out (plain dicts).

Unknown request fields are accepted and ignored, as OpenAI-compatible servers do, so
clients that send newer parameters keep working.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelfarm.errors import InvalidRequestError
from modelfarm.types import ChatChunk, ChatRequest, ChatResult, Message, TokenLogprob, Usage

_M = TypeVar("_M", bound=BaseModel)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        for part in self.content:
            if part.type != "text":
                raise InvalidRequestError(
                    f"content parts of type {part.type!r} are not supported; send text", param="messages"
                )
        return "".join(p.text or "" for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[MessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1)
    stop: str | list[str] | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def to_request(self) -> ChatRequest:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        role = {"developer": "system"}
        return ChatRequest(
            messages=[Message(role.get(m.role, m.role), m.text()) for m in self.messages],
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
            stop=stop,
            seed=self.seed,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs or 0,
            response_format=self.response_format,
        )


class EmbeddingBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise InvalidRequestError("input must not be empty", param="input")
        if len(texts) > 2048:
            raise InvalidRequestError("at most 2048 inputs per request", param="input")
        return texts


class FeedbackBody(BaseModel):
    """`POST /v1/feedback`: how good an answer was, to retrain the router."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    """The `id` of the chat completion being judged."""
    score: float = Field(ge=0, le=1)
    """Quality of the answer, 0 (wrong) to 1 (right)."""
    model: str | None = None
    """The model judged (default: the one that served)."""


class AgentRunBody(BaseModel):
    """`POST /v1/agents/runs`: a task for the farm's agents."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=8000)
    stream: bool = True
    """SSE events per step, then the answer (default); false: one JSON object when the run ends."""


def parse(model: type[_M], raw: bytes) -> _M:
    """Validate a JSON body; the first problem becomes a 400 that names the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "json_invalid":
            raise InvalidRequestError(f"the body is not valid JSON: {err['msg']}") from exc
        where = f"{loc}: " if loc else ""
        raise InvalidRequestError(f"{where}{err['msg']}", param=loc or None) from exc


# -- responses --------------------------------------------------------------------------


def _logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": lp.token,
                "logprob": lp.logprob,
                "bytes": list(lp.token.encode("utf-8")),
                "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode("utf-8"))} for t, v in lp.top],
            }
            for lp in items
        ]
    }


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion(rid: str, model: str, result: ChatResult, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": _logprobs(result.logprobs) if result.logprobs is not None else None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage_dict(result.usage),
        "modelfarm": extra,
    }


def chunk(
    rid: str,
    created: int,
    model: str,
    piece: ChatChunk | None,
    *,
    role: bool = False,
    want_logprobs: bool = False,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta = {"role": "assistant", "content": ""}
    elif piece is not None and piece.text:
        delta = {"content": piece.text}
    choice: dict[str, Any] = {
        "index": 0,
        "delta": delta,
        "logprobs": _logprobs(piece.logprobs) if want_logprobs and piece is not None else None,
        "finish_reason": piece.finish_reason if piece is not None else None,
    }
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def usage_chunk(rid: str, created: int, model: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_dict(usage),
    }


def embeddings(model: str, vectors: list[list[float]], tokens: int, encoding: str = "float") -> dict[str, Any]:
    def encode(v: list[float]) -> list[float] | str:
        if encoding == "base64":  # little-endian float32, as OpenAI sends it (the SDK's default)
            return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii")
        return v

    return {
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
