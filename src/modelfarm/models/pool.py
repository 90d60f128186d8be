"""The pool: which models are loaded, who may use them now, and who must wait or go away.

- Models load lazily on first use (or on `preload`), and unload after `keep_alive` unused.
- Loaded models stay under the farm's memory budget: to make room, the least recently used
  idle model is evicted; a model that is serving is never evicted.
- Each model serves at most `max_concurrency` requests at once, with at most `max_queue`
  waiting; beyond that `OverloadedError` (HTTP 429) with a Retry-After estimate.
- Local models share one CPU thread budget: a generation that needs n threads waits until n
  are free. Two models each using every core at once run several times slower than one
  after the other, so the budget turns oversubscription into queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from modelfarm.errors import BackendUnavailableError, FarmError, ModelNotFoundError, OverloadedError
from modelfarm.manifest import Manifest, ModelSpec
from modelfarm.models.base import Backend
from modelfarm.models.factory import Prepared, prepare
from modelfarm.sources import default_cache_dir

_MIB = 1 << 20
Preparer = Callable[[ModelSpec], Prepared]


class ThreadBudget:
    """A counting semaphore of CPU threads, taken n at a time."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._cond = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def take(self, n: int) -> AsyncIterator[None]:
        n = min(n, self.total)
        if n <= 0:
            yield
            return
        async with self._cond:
            await self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        try:
            yield
        finally:
            async with self._cond:
                self.free += n
                self._cond.notify_all()


@dataclass(eq=False)
class _Slot:
    """Everything the pool knows about one model."""

    spec: ModelSpec
    slots: asyncio.Semaphore
    backend: Backend | None = None
    memory_bytes: int = 0
    running: int = 0
    waiting: int = 0
    last_used: float = 0.0
    latency: float = 1.0
    """Moving average of seconds per request, for Retry-After."""
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    name: str
    role: str
    backend: str
    tier: str
    loaded: bool
    memory_bytes: int
    running: int
    waiting: int


class Pool:
    """Loads, shares and evicts the models of one manifest."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        preparer: Preparer | None = None,
        remote_backends: Mapping[str, Callable[[], Backend]] | None = None,
    ) -> None:
        self.manifest = manifest
        self._remote = dict(remote_backends or {})
        """Models served elsewhere (Ray Serve replicas): a cheap handle instead of weights."""
        settings = manifest.farm
        self.threads = settings.threads or os.cpu_count() or 1
        self.budget_bytes = settings.memory_budget_mb * _MIB
        self.cache_dir = (settings.cache_dir or default_cache_dir()).expanduser()
        self.cpu = ThreadBudget(self.threads)
        self._preparer = preparer or self._prepare
        self._models = {m.name: _Slot(m, asyncio.Semaphore(m.concurrency)) for m in manifest.models}
        self._reaper: asyncio.Task[None] | None = None
        self._evict_lock = asyncio.Lock()

    def _prepare(self, spec: ModelSpec) -> Prepared:
        if spec.name in self._remote:
            return Prepared(0, self._remote[spec.name])
        return prepare(spec, base_dir=self.manifest.base_dir, cache_dir=self.cache_dir, threads=self.threads)

    # -- lookup and status ----------------------------------------------------------------

    def spec(self, name: str) -> ModelSpec:
        slot = self._models.get(name)
        if slot is None:
            known = ", ".join(self._models)
            raise ModelNotFoundError(
                f"the model {name!r} does not exist in this farm; known models: {known}", param="model"
            )
        return slot.spec

    def status(self) -> list[ModelStatus]:
        return [
            ModelStatus(
                s.spec.name,
                s.spec.role,
                s.spec.backend,
                s.spec.tier,
                s.backend is not None,
                s.memory_bytes,
                s.running,
                s.waiting,
            )
            for s in self._models.values()
        ]

    @property
    def memory_used(self) -> int:
        return sum(s.memory_bytes for s in self._models.values() if s.backend is not None)

    # -- leasing --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, name: str) -> AsyncIterator[Backend]:
        """Use a model for one request: admission, load, CPU threads, then release."""
        self.spec(name)
        slot = self._models[name]
        if slot.running + slot.waiting >= slot.spec.concurrency + slot.spec.max_queue:
            retry = math.ceil(max(1.0, slot.latency * (slot.waiting + 1) / slot.spec.concurrency))
            raise OverloadedError(
                f"model {name!r} is at capacity ({slot.running} running, {slot.waiting} waiting, "
                f"max_queue {slot.spec.max_queue}); retry in {retry} s or use another model",
                retry_after=retry,
            )
        slot.waiting += 1
        try:
            await slot.slots.acquire()
        finally:
            slot.waiting -= 1
        slot.running += 1
        started = time.monotonic()
        try:
            backend = await self._ensure_loaded(slot)
            async with self.cpu.take(backend.cpu_threads):
                yield backend
        finally:
            slot.running -= 1
            slot.slots.release()
            slot.last_used = time.monotonic()
            slot.latency = 0.8 * slot.latency + 0.2 * (slot.last_used - started)

    async def _ensure_loaded(self, slot: _Slot) -> Backend:
        if slot.backend is not None:
            return slot.backend
        async with slot.load_lock:
            if slot.backend is not None:
                return slot.backend
            spec = slot.spec
            try:
                prepared = await asyncio.to_thread(self._preparer, spec)
            except FarmError as exc:
                raise BackendUnavailableError(exc.message) from exc
            await self._make_room(slot, prepared.estimate_bytes)
            try:
                backend = await asyncio.to_thread(prepared.load)
            except FarmError as exc:
                raise BackendUnavailableError(exc.message) from exc
            slot.memory_bytes = prepared.estimate_bytes
            slot.backend = backend
            slot.last_used = time.monotonic()
            return backend

    async def _make_room(self, slot: _Slot, need: int) -> None:
        if need > self.budget_bytes:
            raise BackendUnavailableError(
                f"model {slot.spec.name!r} needs about {need // _MIB} MiB, more than the farm's "
                f"memory_budget_mb ({self.budget_bytes // _MIB}); raise it in farm.toml"
            )
        async with self._evict_lock:
            while self.memory_used + need > self.budget_bytes:
                idle = [s for s in self._models.values() if s.backend is not None and s.running == 0 and s is not slot]
                if not idle:
                    raise BackendUnavailableError(
                        f"no memory for model {slot.spec.name!r} (needs {need // _MIB} MiB; "
                        f"{self.memory_used // _MIB} of {self.budget_bytes // _MIB} MiB in use by "
                        "models serving now); retry shortly or raise memory_budget_mb"
                    )
                await self._unload(min(idle, key=lambda s: s.last_used))

    async def _unload(self, slot: _Slot) -> None:
        backend, slot.backend = slot.backend, None
        slot.memory_bytes = 0
        if backend is not None:
            await backend.aclose()

    # -- lifecycle ------------------------------------------------------------------------

    async def preload(self, names: list[str] | None = None) -> None:
        for name in names or list(self._models):
            self.spec(name)
            await self._ensure_loaded(self._models[name])

    async def unload(self, name: str) -> None:
        self.spec(name)
        slot = self._models[name]
        async with slot.load_lock:
            if slot.running == 0:
                await self._unload(slot)

    def start(self, interval: float = 1.0) -> None:
        """Start unloading models idle past their keep_alive (needs a running loop)."""
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap(interval))

    async def _reap(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for slot in self._models.values():
                expired = now - slot.last_used > slot.spec.keep_alive
                if slot.backend is not None and slot.running == 0 and expired and not slot.load_lock.locked():
                    await self._unload(slot)

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for slot in self._models.values():
            await self._unload(slot)
