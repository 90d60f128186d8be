"""Keep a local Ray instance on 127.0.0.1.

Ray binds its node to the machine's outward address unless `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`
is 0 when Ray is imported (then it uses loopback, as it does on laptops), and each Serve
replica opens an inter-deployment gRPC server on every interface (`[::]:0`, hard-coded in
`ray.serve._private.replica`). `contain` runs in every worker process of a local instance
(Ray's `worker_process_setup_hook`) and rewrites that address to 127.0.0.1. It touches one
private name, which is why the `ray` extra pins Ray to one minor version; if the name is gone,
it does nothing and the test that lists listening sockets fails loudly.

A multi-node cluster needs its nodes to reach each other, so neither is applied with `--address`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
HOOK = "modelfarm.cluster.loopback.contain"


def set_loopback_env() -> None:
    """Call before Ray starts. Ray reads the variable when it is imported, so a Ray imported
    earlier in this process is told too; the processes Ray starts inherit the environment."""
    for key, value in LOOPBACK_ENV.items():
        os.environ[key] = value
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010


def _to_loopback(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("[::]", "0.0.0.0", "") else address


def contain() -> None:
    """Worker setup hook: replicas' gRPC servers listen on 127.0.0.1 only."""
    try:
        replica = importlib.import_module("ray.serve._private.replica")
    except ImportError:  # pragma: no cover - Ray without Serve
        return
    original: Callable[..., Any] | None = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "_modelfarm_loopback", False):
        return

    def add_port(server: Any, address: str, *args: Any, **kwargs: Any) -> Any:
        return original(server, _to_loopback(address), *args, **kwargs)

    add_port._modelfarm_loopback = True  # type: ignore[attr-defined]
    setattr(replica, "add_port_to_grpc_server", add_port)  # noqa: B010
