"""Start (or join) Ray, deploy the farm on Ray Serve, wait until it answers, and take it down.

Local (no `address`): a private Ray instance on 127.0.0.1 with an explicit CPU count, no
dashboard, replicas' gRPC on loopback (`loopback.py`); `stop` shuts everything down.
Cluster (`address`, e.g. "ray://head:10001" or "head:6379"): joins it, deploys the app, and
`stop` deletes only this app; the cluster and its other apps keep running.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from modelfarm.cluster.loopback import HOOK, set_loopback_env
from modelfarm.cluster.proxy import CALLBACK, CALLBACK_ENV
from modelfarm.errors import BackendUnavailableError, ConfigError
from modelfarm.manifest import Manifest

APP_NAME = "modelfarm"
NAMESPACE = "modelfarm"
OBJECT_STORE_MB = 128
SLOW_MACHINE_ENV = {
    # Serve kills a proxy that is not ready in 5 s; on 2 busy cores importing it takes longer.
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
}


@dataclass
class RayFarm:
    """A farm deployed on Ray Serve."""

    url: str
    started_ray: bool

    def stop(self, timeout: float = 30.0) -> None:
        """Take the app down (replicas run their shutdown: ledgers closed, streams ended).

        A graceful shutdown that hangs (a node already gone) is abandoned after `timeout`;
        a local instance is then killed outright by `ray.shutdown`."""
        import ray
        from ray import serve

        if not ray.is_initialized():
            return
        graceful = serve.shutdown if self.started_ray else lambda: serve.delete(APP_NAME)
        worker = threading.Thread(target=graceful, name="serve-shutdown", daemon=True)
        worker.start()
        worker.join(timeout)
        ray.shutdown()  # a local instance: stops every process; a cluster: disconnects this driver


def init_ray(manifest: Manifest, address: str | None, *, num_cpus: int | None = None) -> bool:
    """Connect to Ray (start a local instance when `address` is None). True when we started it."""
    if address is None:
        set_loopback_env()
    import ray

    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False}
    if address is not None:
        ray.init(address=address, **common)
        return False
    cpus = num_cpus or manifest.ray.local_cpus or os.cpu_count() or 1
    os.environ.setdefault(CALLBACK_ENV, CALLBACK)  # inherited by the proxy actor
    for key, value in SLOW_MACHINE_ENV.items():  # read by Serve's controller, which inherits them
        os.environ.setdefault(key, value)
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_MB << 20,
        runtime_env={"worker_process_setup_hook": HOOK},
        **common,
    )
    return True


def check_fits(manifest: Manifest) -> None:
    """Refuse a farm whose replicas cannot all be placed (Ray would leave them pending forever)."""
    import ray

    from modelfarm.cluster.app import deployed, deployment_options

    total: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    need_cpu = manifest.ray.gateway_num_cpus * manifest.ray.gateway_replicas
    need_gpu = 0.0
    for name, specs in deployed(manifest).items():
        options = deployment_options(name, specs, manifest)
        replicas = options.get("num_replicas") or options["autoscaling_config"]["min_replicas"]
        need_cpu += options["ray_actor_options"]["num_cpus"] * replicas
        need_gpu += options["ray_actor_options"]["num_gpus"] * replicas
    # Serve's controller and proxy take no CPU reservation; our replicas must fit the rest.
    if need_cpu > total.get("CPU", 0) + 1e-9:
        raise ConfigError(
            f"the farm's Ray replicas reserve {need_cpu:g} CPUs but the cluster has {total.get('CPU', 0):g}; "
            "lower [ray] num_cpus / [models.ray] num_cpus or replicas, or add nodes"
        )
    if need_gpu > total.get("GPU", 0) + 1e-9:
        raise ConfigError(
            f"the farm's Ray replicas reserve {need_gpu:g} GPUs but the cluster has {total.get('GPU', 0):g}; "
            "add a GPU node (`ray start --address ... --num-gpus N`) or lower [models.ray] num_gpus"
        )


def deploy(
    manifest: Manifest,
    settings: Any,
    *,
    address: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_cpus: int | None = None,
    timeout: float = 300.0,
) -> RayFarm:
    """Deploy the farm and return once its gateway answers /healthz."""
    started = init_ray(manifest, address, num_cpus=num_cpus)
    farm = RayFarm(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}", started)
    try:
        from ray import serve

        from modelfarm.cluster.app import build_application

        check_fits(manifest)
        serve.start(http_options={"host": host, "port": port})
        serve.run(
            build_application(manifest, settings),
            name=APP_NAME,
            route_prefix="/",
            logging_config={"log_level": "WARNING"},
        )
        _wait_healthy(farm.url, timeout)
    except BaseException:
        farm.stop()
        raise
    return farm


def _wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/healthz", timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise BackendUnavailableError(f"the Ray Serve gateway at {url} did not answer /healthz in {timeout:g} s ({last})")
