"""What runs inside one Ray Serve replica of a model: a pool of that model (or of one
multiplexed group of models), with the embedded mode's loading, admission and thread budget.

Plain Python: `cluster/app.py` wraps it as a deployment. Errors are our own `FarmError`s;
Ray carries them to the gateway, which unwraps them (`cluster/backend.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from modelfarm.manifest import Manifest
from modelfarm.models.pool import Pool
from modelfarm.types import ChatChunk, ChatRequest, ChatResult


def sub_manifest(manifest: Manifest, names: list[str], threads: int | None = None) -> Manifest:
    """The farm as one replica sees it: only its own models, nothing that runs by itself.

    With `threads`, models that do not set their own run that many CPU threads, and the
    replica's thread budget is that size: a replica uses the CPUs Ray reserved for it, so
    replicas on one node do not oversubscribe its cores (llama.cpp slows down badly then)."""
    models = [m for m in manifest.models if m.name in names]
    farm = manifest.farm
    if threads is not None:
        models = [m if m.threads is not None else m.model_copy(update={"threads": threads}) for m in models]
        farm = farm.model_copy(update={"threads": max(m.threads or threads for m in models)})
    update = {"farm": farm, "models": models, "agents": [], "senses": {}, "policies": {}}
    return manifest.model_copy(update=update)


class ModelReplica:
    """Serves the chat and embedding calls of its models."""

    def __init__(self, manifest: Manifest, names: list[str], threads: int | None = None) -> None:
        self.names = list(names)
        self.pool = Pool(sub_manifest(manifest, self.names, threads))
        self._started = False

    def _start(self) -> None:
        if not self._started:  # the keep_alive reaper needs the replica's running loop
            self.pool.start()
            self._started = True

    async def complete(self, name: str, request: ChatRequest) -> ChatResult:
        self._start()
        async with self.pool.lease(name) as backend:
            return await backend.chat(request)

    async def stream(self, name: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self._start()
        async with self.pool.lease(name) as backend:
            chunks = backend.stream(request)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:  # cancelled by the gateway (client gone): stop generating
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()

    async def embed(self, name: str, texts: list[str]) -> tuple[list[list[float]], int]:
        self._start()
        async with self.pool.lease(name) as backend:
            return await backend.embed(texts)

    async def preload(self, name: str) -> None:
        self._start()
        await self.pool.preload([name])

    async def unload(self, name: str) -> None:
        await self.pool.unload(name)

    async def ready(self) -> list[str]:
        return self.names


class Loaded:
    """A model that Ray's multiplexer keeps loaded in this replica; Ray calls `__del__` when it
    evicts the least recently used one, and the pool unloads it."""

    def __init__(self, replica: ModelReplica, name: str) -> None:
        self.replica = replica
        self.name = name
        self._loop = asyncio.get_running_loop()
        self._unloaded = False

    def __del__(self) -> None:
        if self._unloaded or self._loop.is_closed():
            return
        self._unloaded = True
        asyncio.run_coroutine_threadsafe(self.replica.unload(self.name), self._loop)
