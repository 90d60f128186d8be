"""The pool on the real SmolLM2: lazy load, keep_alive, LRU under a memory budget, CPU budget."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from modelfarm.errors import BackendUnavailableError, OverloadedError
from modelfarm.manifest import parse_manifest
from modelfarm.models.pool import Pool
from modelfarm.types import ChatRequest, Message
from tests.conftest import small_model_toml

ASK = ChatRequest([Message("user", "Hi")], max_tokens=3, temperature=0)


def _pool(tmp_path: Path, budget_mb: int, **extra: object) -> Pool:
    text = (
        f'[farm]\nmemory_budget_mb = {budget_mb}\nthreads = 2\ncache_dir = "{tmp_path}"\n'
        + small_model_toml("a", memory_mb=300, **extra)
        + small_model_toml("b", memory_mb=300, **extra)
    )
    return Pool(parse_manifest(text))


def _loaded(pool: Pool) -> set[str]:
    return {s.name for s in pool.status() if s.loaded}


def test_lazy_load_and_lru_eviction(tmp_path: Path) -> None:
    async def go() -> None:
        pool = _pool(tmp_path, budget_mb=500)  # room for one model of 300 MiB
        assert _loaded(pool) == set(), "nothing loads before it is used"
        async with pool.lease("a") as backend:
            assert (await backend.chat(ASK)).usage.completion_tokens > 0
        assert _loaded(pool) == {"a"}
        async with pool.lease("b") as backend:
            await backend.chat(ASK)
        assert _loaded(pool) == {"b"}, "a was least recently used and idle: evicted"
        assert pool.memory_used <= pool.budget_bytes
        await pool.aclose()

    asyncio.run(go())


def test_a_serving_model_is_never_evicted(tmp_path: Path) -> None:
    async def go() -> None:
        pool = _pool(tmp_path, budget_mb=500)
        async with pool.lease("a"):
            with pytest.raises(BackendUnavailableError, match="serving now"):
                async with pool.lease("b"):
                    pass
            assert _loaded(pool) == {"a"}
        await pool.aclose()

    asyncio.run(go())


def test_keep_alive_unloads_idle_models(tmp_path: Path) -> None:
    async def go() -> None:
        pool = _pool(tmp_path, budget_mb=2000, keep_alive="1s")
        pool.start(interval=0.2)
        await pool.preload(["a", "b"])
        assert _loaded(pool) == {"a", "b"}
        async with pool.lease("a"):
            await asyncio.sleep(1.6)  # b idles past keep_alive; a is serving
            assert _loaded(pool) == {"a"}
        deadline = time.monotonic() + 5
        while _loaded(pool) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _loaded(pool) == set()
        await pool.aclose()

    asyncio.run(go())


def test_queue_bound_and_cpu_budget(tmp_path: Path) -> None:
    async def go() -> None:
        pool = _pool(tmp_path, budget_mb=2000)  # max_concurrency 1, max_queue 2 per model
        await pool.preload(["a", "b"])
        spans: dict[str, tuple[float, float]] = {}

        async def use(name: str, tag: str) -> None:
            async with pool.lease(name) as backend:
                t0 = time.monotonic()
                await backend.chat(ChatRequest([Message("user", "Tell me a story.")], max_tokens=24))
                spans[tag] = (t0, time.monotonic())

        # both models want both cores: the CPU budget runs them one after the other
        await asyncio.gather(use("a", "a"), use("b", "b"))
        (a0, a1), (b0, b1) = spans["a"], spans["b"]
        assert a1 <= b0 or b1 <= a0, "two 2-thread generations overlapped on a 2-thread budget"

        # a fourth request for a model with 1 running and 2 waiting is refused at once
        tasks = [asyncio.create_task(use("a", f"q{i}")) for i in range(3)]
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError) as info:
            async with pool.lease("a"):
                pass
        assert info.value.retry_after >= 1
        await asyncio.gather(*tasks)
        await pool.aclose()

    asyncio.run(go())
