"""Any OpenAI-compatible server as a farm member: vLLM, Ollama, llama.cpp server, hosted APIs.

Wire format only; where the server runs is just its base URL. Retries happen only where
they are safe: when the connection could not be made, so the server never saw the request.
The API key is read from the environment variable the manifest names, and never logged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from modelfarm.errors import (
    BackendUnavailableError,
    ContextLengthError,
    FarmError,
    InvalidRequestError,
    OverloadedError,
)
from modelfarm.models.base import Backend
from modelfarm.types import ChatChunk, ChatRequest, ChatResult, TokenLogprob, Usage

_CONNECT_RETRIES = 2


class OpenAIBackend(Backend):
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        remote_model: str,
        api_key: str | None,
        timeout: float,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.remote_model = remote_model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.remote_model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        for key in (
            "max_tokens",
            "temperature",
            "top_p",
            "frequency_penalty",
            "presence_penalty",
            "seed",
            "response_format",
        ):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if request.stop:
            body["stop"] = request.stop
        if request.logprobs:
            body["logprobs"] = True
            if request.top_logprobs:
                body["top_logprobs"] = request.top_logprobs
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _send(self, body: dict[str, Any], stream: bool, path: str = "chat/completions") -> httpx.Response:
        for attempt in range(_CONNECT_RETRIES + 1):
            try:
                req = self._client.build_request("POST", path, json=body)
                response = await self._client.send(req, stream=stream)
            except httpx.ConnectError as exc:  # never reached the server: safe to retry
                if attempt == _CONNECT_RETRIES:
                    raise self._unavailable(f"cannot connect ({exc})") from exc
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            except httpx.TimeoutException as exc:
                raise self._unavailable("timed out") from exc
            except httpx.HTTPError as exc:
                raise self._unavailable(str(exc) or type(exc).__name__) from exc
            if response.status_code >= 400:
                await response.aread()
                await response.aclose()
                raise self._status_error(response)
            return response
        raise AssertionError("unreachable")

    def _unavailable(self, what: str) -> BackendUnavailableError:
        return BackendUnavailableError(f"model {self.name!r} at {self._client.base_url}: {what}")

    def _status_error(self, response: httpx.Response) -> FarmError:
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        status = response.status_code
        if status == 429:
            retry = response.headers.get("retry-after", "1")
            return OverloadedError(
                f"model {self.name!r} is overloaded upstream: {message}",
                retry_after=float(retry) if retry.replace(".", "", 1).isdigit() else 1.0,
            )
        if status in (401, 403):
            return self._unavailable(f"the server refused our API key ({status}); check the key variable")
        if status == 400 and "context" in message.lower():
            return ContextLengthError(f"model {self.name!r}: {message}", param="messages")
        if 400 <= status < 500:
            return InvalidRequestError(f"model {self.name!r} refused the request ({status}): {message}")
        return self._unavailable(f"server error {status}: {message}")

    async def chat(self, request: ChatRequest) -> ChatResult:
        response = await self._send(self._body(request, stream=False), stream=False)
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return ChatResult(
                text=choice["message"].get("content") or "",
                finish_reason=choice.get("finish_reason") or "stop",
                usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
                logprobs=_logprobs(choice.get("logprobs")) if request.logprobs else None,
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._unavailable(f"answered with a body that is not a chat completion: {exc}") from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        response = await self._send(self._body(request, stream=True), stream=True)
        finish: str | None = None
        usage: Usage | None = None
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    data = json.loads(payload)
                except ValueError as exc:
                    raise self._unavailable(f"sent a stream line that is not JSON: {payload[:80]!r}") from exc
                if data.get("usage"):
                    u = data["usage"]
                    usage = Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0))
                for choice in data.get("choices") or []:
                    finish = choice.get("finish_reason") or finish
                    text = (choice.get("delta") or {}).get("content") or ""
                    lps = _logprobs(choice.get("logprobs"))
                    if text or lps:
                        yield ChatChunk(text=text, logprobs=lps)
        except httpx.HTTPError as exc:
            raise self._unavailable(f"the stream broke off ({exc})") from exc
        finally:
            await response.aclose()
        yield ChatChunk(finish_reason=finish or "stop", usage=usage or Usage())

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        body = {"model": self.remote_model, "input": texts, "encoding_format": "float"}
        response = await self._send(body, stream=False, path="embeddings")
        try:
            data = response.json()
            vectors = [item["embedding"] for item in sorted(data["data"], key=lambda d: d["index"])]
            return vectors, int((data.get("usage") or {}).get("prompt_tokens", 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise self._unavailable(f"answered with a body that is not an embedding list: {exc}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _logprobs(block: Any) -> list[TokenLogprob]:
    if not isinstance(block, dict):
        return []
    out = []
    for item in block.get("content") or []:
        top = tuple((t["token"], float(t["logprob"])) for t in item.get("top_logprobs") or [])
        out.append(TokenLogprob(item["token"], float(item["logprob"]), top))
    return out
