"""`POST /v1/agents/runs` and `GET /v1/agents/runs/{id}`.

A streamed run sends one SSE event per run event (`event: step_started`, `data: {...}`), then
`event: run` with the whole trace, then `data: [DONE]`. A client that goes away cancels the run:
running steps stop at their next token and the trace is saved as cancelled.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelfarm.agents.run import AgentRuns
from modelfarm.agents.trace import Event, RunTrace
from modelfarm.errors import ConfigError, FarmError, RunNotFoundError
from modelfarm.ledger import Ledger
from modelfarm.serve import wire
from modelfarm.serve.auth import KeyRing
from modelfarm.serve.errors import error_body, status_of, type_of


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def mount_agents(app: FastAPI, runs: AgentRuns | None, ledger: Ledger, keys: KeyRing) -> None:
    def need_runs() -> AgentRuns:
        if runs is None:
            raise ConfigError("this farm declares no agents: add [[agents]] entries to farm.toml")
        return runs

    @app.post("/v1/agents/runs")
    async def start_run(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        body = wire.parse(wire.AgentRunBody, await request.body())
        agent_runs = need_runs()
        if not body.stream:
            trace = await agent_runs.run(body.task)
            return JSONResponse(trace.as_dict(), headers={"x-modelfarm-run": trace.id})
        return _stream(agent_runs, body.task)

    @app.get("/v1/agents/runs/{run_id}")
    async def get_run(run_id: str, request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        run = ledger.run(run_id)
        if run is None:
            raise RunNotFoundError(f"no agent run {run_id!r} in this farm's ledger", param="run_id")
        return JSONResponse(run)


def _stream(runs: AgentRuns, task: str) -> StreamingResponse:
    queue: asyncio.Queue[Event | RunTrace | BaseException] = asyncio.Queue()
    run_id = "run-" + uuid.uuid4().hex[:16]

    async def work() -> None:
        try:
            queue.put_nowait(await runs.run(task, emit=queue.put_nowait, run_id=run_id))
        except BaseException as exc:  # handed to the stream, which reports it
            queue.put_nowait(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def events() -> AsyncIterator[bytes]:
        job = asyncio.create_task(work(), name=f"agent run {run_id}")
        try:
            yield _sse("run_started", {"id": run_id, "task": task})
            while True:
                item = await queue.get()
                if isinstance(item, Event):
                    yield _sse(item.type, item.as_dict())
                elif isinstance(item, RunTrace):
                    yield _sse("run", item.as_dict())
                    break
                else:
                    message = item.message if isinstance(item, FarmError) else "internal error: the run failed"
                    yield _sse("error", error_body(message, type_of(item), None) | {"status": status_of(item)})
                    break
            yield b"data: [DONE]\n\n"
        finally:
            if not job.done():
                job.cancel()  # the client went away: stop the run
            await asyncio.gather(job, return_exceptions=True)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"x-modelfarm-run": run_id})
