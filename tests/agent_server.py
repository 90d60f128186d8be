"""A test stand-in OpenAI-compatible server that plays planner, agents and merger on cue.

It speaks the public wire protocol only (POST /v1/chat/completions, JSON), so agent runs
against it go through the whole gateway path: router, pool limits, ledger. What it answers:

- a request whose `response_format` is the plan schema: the next entry of `plans` (a JSON
  string; the last one repeats), and the request is kept in `plan_requests`;
- a merge request (system prompt saying "you write the final answer"): one point per step
  result it was given ("Merged sN", as JSON when asked for the answer schema, else "Merged: [s1] ...");
- any other request is a step: the instruction is what follows "Your task: " (or the whole
  user message when there is no data before it). Cues in it:
  `sleep=S` waits S seconds, `fail=N` answers HTTP 500 to the first N tries of that
  instruction, `empty` answers "". The answer is "<model> did: <instruction>".
Every step request is recorded in `steps` with its start and end time.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class ScriptedServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.plans: list[str] = []
        self.plan_requests: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.merges: list[str] = []
        self._tries: dict[str, int] = {}
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/")
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("scripted server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def reset(self, *plans: str) -> None:
        self.plans = list(plans)
        self.plan_requests.clear()
        self.steps.clear()
        self.merges.clear()
        self._tries.clear()

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        messages = body["messages"]
        model = body.get("model", "?")
        fmt = body.get("response_format") or {}
        if (fmt.get("type") == "json_schema" and fmt.get("json_schema", {}).get("name") == "plan") or _asks_plan(
            messages
        ):
            self.plan_requests.append(body)
            text = self.plans.pop(0) if len(self.plans) > 1 else (self.plans[0] if self.plans else "{}")
            return _reply(model, text)
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = messages[-1]["content"]
        if "you write the final answer" in system:
            self.merges.append(user)
            ids = re.findall(r"^\[([\w-]+)\] from ", user, re.M)
            if fmt.get("json_schema", {}).get("name") == "answer":
                return _reply(model, json.dumps({"points": [{"step": i, "point": f"Merged {i}"} for i in ids]}))
            return _reply(model, "Merged: " + " ".join(f"[{i}]" for i in ids))
        instruction = user.rsplit("Your task: ", 1)[-1]
        record = {"model": model, "instruction": instruction, "user": user, "system": system}
        record["start"] = time.monotonic()
        sleep = re.search(r"sleep=([\d.]+)", instruction)
        if sleep:
            await asyncio.sleep(float(sleep.group(1)))
        record["end"] = time.monotonic()
        self.steps.append(record)
        fail = re.search(r"fail=(\d+)", instruction)
        tries = self._tries[instruction] = self._tries.get(instruction, 0) + 1
        if fail and tries <= int(fail.group(1)):
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, status_code=500)
        return _reply(model, "" if "empty" in instruction else f"{model} did: {instruction}")


def _asks_plan(messages: list[dict[str, Any]]) -> bool:
    return any(m["role"] == "system" and m["content"].startswith("You are the planner") for m in messages)


def _reply(model: str, text: str) -> Response:
    n = max(1, len(text.split()))
    return JSONResponse(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n},
        }
    )


def plan(*steps: tuple[str, str, str, list[str]]) -> str:
    """A plan as the planner would write it: (id, agent, instruction, inputs) per step."""
    return json.dumps({"steps": [{"id": i, "agent": a, "instruction": t, "inputs": x} for i, a, t, x in steps]})
