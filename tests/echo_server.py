"""A test stand-in OpenAI-compatible server: records what it receives and echoes it back.

It implements the public wire protocol (chat completions, JSON and SSE), so tests can see
exactly which messages a remote farm member would receive, and whether answers that contain
placeholders come back to the client restored. Streams are cut into 3-character chunks so
that placeholders split across chunks are exercised.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class EchoServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[list[dict[str, Any]]] = []
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> EchoServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.post(self.base_url + "/chat/completions", json={"messages": [{"role": "user", "content": ""}]})
                self.received.clear()
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("echo server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(body["messages"])
        text = "You said: " + body["messages"][-1]["content"]
        usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(text.split())}
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "echo",
                    "object": "chat.completion",
                    "model": body.get("model", "echo"),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            )

        async def events() -> Any:
            for i in range(0, len(text), 3):
                delta = {"choices": [{"index": 0, "delta": {"content": text[i : i + 3]}, "finish_reason": None}]}
                yield f"data: {json.dumps(delta)}\n\n"
            yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
