"""HTTP glue: the OpenAI-compatible FastAPI app. Serving logic lives in `service.py`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelfarm.agents.calls import ServiceCaller
from modelfarm.agents.run import AgentRuns
from modelfarm.errors import FarmError, InvalidRequestError
from modelfarm.ledger import Ledger, default_ledger_path
from modelfarm.manifest import Manifest
from modelfarm.models.base import Backend
from modelfarm.models.pool import Pool
from modelfarm.routing.router import Router
from modelfarm.serve import wire
from modelfarm.serve.agents_http import mount_agents
from modelfarm.serve.auth import KeyRing
from modelfarm.serve.errors import error_body, error_response
from modelfarm.serve.metrics import Metrics
from modelfarm.serve.senses_http import SenseService, mount_senses
from modelfarm.serve.service import Served, Service


@dataclass(frozen=True, slots=True)
class ServeOptions:
    ledger_path: Path | None = None
    """SQLite ledger (default: the manifest's `farm.ledger`, else ~/.local/share/modelfarm)."""
    keys: KeyRing | None = None
    """API keys; None reads MODELFARM_API_KEYS."""
    preload: tuple[str, ...] = ()
    """Models to load before the server accepts requests ("*" for all)."""
    remote_backends: Mapping[str, Callable[[], Backend]] | None = None
    """Models served elsewhere (the Ray Serve deployments of `modelfarm serve --ray`)."""


def _json(served: Served) -> Response:
    return Response(
        json.dumps(served.body, separators=(",", ":")), media_type="application/json", headers=served.headers
    )


def create_app(manifest: Manifest, options: ServeOptions | None = None) -> FastAPI:
    """Build the gateway for one farm. Nothing is loaded until the app starts."""
    opts = options or ServeOptions()
    pool = Pool(manifest, remote_backends=opts.remote_backends)
    ledger = Ledger(opts.ledger_path or manifest.farm.ledger or default_ledger_path())
    metrics = Metrics(pool)
    router = Router(manifest, pool)
    service = Service(pool, ledger, metrics, router)
    keys = opts.keys if opts.keys is not None else KeyRing.from_sources()
    runs = AgentRuns(manifest, ServiceCaller(service), ledger) if manifest.agents else None
    senses = SenseService(manifest)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.start()
        if opts.preload:
            await pool.preload(None if "*" in opts.preload else list(opts.preload))
        await senses.start()
        try:
            yield
        finally:
            await senses.aclose()
            await pool.aclose()
            ledger.close()

    app = FastAPI(title="modelfarm", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.pool, app.state.ledger, app.state.service, app.state.router = pool, ledger, service, router

    @app.exception_handler(FarmError)
    async def _farm_error(_: Request, exc: FarmError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        body = error_body(str(exc.detail), kind, None)
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return error_response(InvalidRequestError(str(exc.errors()[0].get("msg", "invalid request"))))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    async def _handle(request: Request, endpoint: str) -> Response:
        started = time.perf_counter()
        rec = service.new_record(endpoint, None, None)
        try:
            rec.key_id = keys.check(request.headers.get("authorization"))
            raw = await request.body()
            if endpoint == "chat":
                body = wire.parse(wire.ChatCompletionBody, raw)
                rec.requested_model = body.model
                if body.stream:
                    events, headers = await service.open_stream(body, rec, started)
                    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
                return _json(await service.complete(body, rec, started))
            emb = wire.parse(wire.EmbeddingBody, raw)
            rec.requested_model = emb.model
            return _json(await service.embed(emb, rec, started))
        except Exception as exc:
            service.finish(rec, started, error=exc)
            return error_response(exc)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _handle(request, "chat")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        return await _handle(request, "embeddings")

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        body = wire.parse(wire.FeedbackBody, await request.body())
        return JSONResponse(service.feedback(body.id, body.score, body.model))

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        data = []
        for s in pool.status():
            spec = pool.spec(s.name)
            data.append(
                {
                    "id": s.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "modelfarm",
                    "role": s.role,
                    "backend": s.backend,
                    "tier": s.tier,
                    "price_in": spec.price_in,
                    "price_out": spec.price_out,
                    "context_length": spec.context_length,
                    "loaded": s.loaded,
                    "memory_bytes": s.memory_bytes,
                    "skills": spec.skills.model_dump(),
                }
            )
        return JSONResponse({"object": "list", "data": data})

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str, request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        spec = pool.spec(name)
        return JSONResponse({"id": spec.name, "object": "model", "created": 0, "owned_by": "modelfarm"})

    mount_agents(app, runs, ledger, keys)
    mount_senses(app, senses, keys)

    @app.get("/healthz")
    async def healthz() -> Response:
        loaded = [s.name for s in pool.status() if s.loaded]
        return JSONResponse({"status": "ok", "farm": manifest.farm.name, "loaded": loaded})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
