"""Sense pipelines inside the gateway: `modelfarm serve` runs those with `autostart = true`.

    GET  /v1/senses                      pipelines, whether they run, per-stage statistics
    GET  /v1/senses/{pipeline}/alerts    SSE: `event: alert` frames (replay with ?replay=N or
                                         Last-Event-ID), `alert_explained` when a model adds one
    POST /v1/senses/{pipeline}/text      {"text": "...", "author": "..."}: a note into the stream

A served pipeline runs on the wall clock; its text comes from POST (the manifest's `text` file
is for `modelfarm senses run`), its video and audio from the manifest. Alerts go to SSE
subscribers, the webhooks' durable outbox and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelfarm.errors import FarmError, InvalidRequestError, PipelineNotFoundError
from modelfarm.manifest import Manifest
from modelfarm.senses.alerts import Broadcaster
from modelfarm.senses.events import Alert
from modelfarm.serve import wire
from modelfarm.serve.auth import KeyRing

log = logging.getLogger(__name__)


class TextBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=10_000)
    author: str | None = Field(default=None, max_length=200)


@dataclass(slots=True)
class Served:
    name: str
    broadcaster: Broadcaster
    live: Any = None  # LiveText once started
    pipeline: Any = None
    task: asyncio.Task[Any] | None = None
    sinks: list[Any] = field(default_factory=list)
    error: str | None = None


class SenseService:
    """The farm's served pipelines: started with the app, stopped with it."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.served = {name: Served(name, Broadcaster()) for name, spec in manifest.senses.items() if spec.autostart}

    async def start(self) -> None:
        from modelfarm.senses.build import build, open_sources
        from modelfarm.senses.pipeline import Pipeline
        from modelfarm.senses.sources import Clock, LiveText

        for name, served in self.served.items():
            spec, processors, engine = build(self.manifest, name)  # a bad pipeline stops the server: say so now
            clock = Clock(realtime=True)
            served.live = LiveText(clock)
            sources: dict[Any, Any] = {}
            if spec.video or spec.audio:
                sources = dict(open_sources(spec.model_copy(update={"text": None}), self.manifest.base_dir))
            sources["text"] = served.live
            served.sinks = [served.broadcaster]
            if spec.webhooks:
                from modelfarm.senses.outbox import WebhookOutbox

                path = _outbox_path(self.manifest, name)
                outbox = WebhookOutbox(path, spec.webhooks, headers_env=spec.webhook_header_env)
                await outbox.start()
                served.sinks.append(outbox)

            def on_alert(alert: Alert, sinks: list[Any] = served.sinks) -> None:
                log.warning("alert %s/%s (%s) at %.1f s: %s", alert.pipeline, alert.rule, alert.severity,
                            alert.source_time, alert.message)  # fmt: skip
                for s in sinks:
                    s.deliver(alert)

            served.pipeline = Pipeline(name, processors, engine, on_alert=on_alert)
            served.task = asyncio.ensure_future(self._run(served, sources, clock))

    async def _run(self, served: Served, sources: dict[Any, Any], clock: Any) -> None:
        try:
            await served.pipeline.run(sources, clock)
        except Exception as exc:  # the pipeline stops; the gateway serves on and reports it
            served.error = f"{type(exc).__name__}: {exc}"
            log.exception("sense pipeline %s stopped", served.name)

    async def aclose(self) -> None:
        for served in self.served.values():
            if served.live is not None:
                served.live.close()
            if served.task is not None:
                served.task.cancel()
                with contextlib.suppress(BaseException):
                    await served.task
            for s in served.sinks:
                with contextlib.suppress(Exception):
                    await s.aclose()

    def get(self, name: str) -> Served:
        served = self.served.get(name)
        if served is None:
            known = sorted(self.manifest.senses)
            if name in known:
                raise PipelineNotFoundError(
                    f"pipeline {name!r} is not running: set autostart = true in [senses.{name}]"
                )
            raise PipelineNotFoundError(f"no sense pipeline {name!r} in this farm (pipelines: {known or 'none'})")
        if served.error is not None:
            raise FarmError(f"pipeline {name!r} stopped: {served.error}")
        return served


def _outbox_path(manifest: Manifest, name: str) -> Any:
    from pathlib import Path

    from modelfarm.ledger import default_ledger_path

    return Path(manifest.farm.ledger or default_ledger_path()).with_name(f"senses-{name}-outbox.db")


def mount_senses(app: FastAPI, senses: SenseService, keys: KeyRing) -> None:
    @app.get("/v1/senses")
    async def list_pipelines(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        data = []
        for name, spec in senses.manifest.senses.items():
            served = senses.served.get(name)
            workers = served.pipeline.workers if served is not None and served.pipeline is not None else []
            data.append(
                {
                    "name": name,
                    "running": served is not None and served.task is not None and not served.task.done(),
                    "error": served.error if served is not None else None,
                    "rules": [r.name for r in spec.rules],
                    "stages": [w.stats.as_dict() for w in workers],
                    "subscribers": served.broadcaster.subscribers if served is not None else 0,
                }
            )
        return JSONResponse({"object": "list", "data": data})

    @app.get("/v1/senses/{name}/alerts")
    async def alerts(name: str, request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        served = senses.get(name)
        replay = request.query_params.get("replay", "0")
        if not replay.isdigit():
            raise InvalidRequestError("replay must be a whole number", param="replay")
        since = request.headers.get("last-event-id") or request.query_params.get("since")
        body = served.broadcaster.sse(name, since=since, replay=int(replay))
        return StreamingResponse(body, media_type="text/event-stream", headers={"cache-control": "no-cache"})

    @app.post("/v1/senses/{name}/text")
    async def text(name: str, request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        served = senses.get(name)
        body = wire.parse(TextBody, await request.body())
        item = served.live.push(body.text, body.author)
        return JSONResponse({"pipeline": name, "source_time": round(item.source_time, 3)}, status_code=202)
