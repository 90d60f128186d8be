"""The farm as a Ray Serve application: one deployment per chat model (or per multiplexed
group of small models), and the gateway with the router as the ingress.

    proxy (Ray's HTTP proxy, host:port)
      └── gateway  (our FastAPI app: auth, privacy guard, router, cascade, ledger, metrics)
            ├── model-brain    ModelReplica x N   (num_cpus / num_gpus / memory from farm.toml)
            ├── model-middle   ModelReplica x N
            └── mux-micro      MultiplexedReplica (small models, LRU-loaded per replica)

Embedding models stay inside each gateway replica: the router reads them on every decision
(about 1 ms in-process; a Ray hop costs ~20 ms) and they are small. Any model with
`[models.ray] deploy = false` does too (a hosted API needs no placement, only a connection).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp

from modelfarm.cluster.backend import RayBackend
from modelfarm.cluster.replica import Loaded, ModelReplica
from modelfarm.cluster.settings import GatewaySettings
from modelfarm.manifest import Manifest, ModelSpec
from modelfarm.models.base import Backend
from modelfarm.types import ChatChunk, ChatRequest, ChatResult

_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Route:
    """Where the gateway finds one model."""

    deployment: str
    multiplexed: bool
    replicas: int
    """Most replicas the deployment may have: the gateway admits concurrency x replicas."""


def deployment_name(prefix: str, name: str) -> str:
    return f"{prefix}-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def is_deployed(spec: ModelSpec) -> bool:
    """Whether the model gets a deployment of its own (else it runs inside the gateway)."""
    return spec.ray.deploy if spec.ray.deploy is not None else spec.backend != "embedding"


def deployed(manifest: Manifest) -> dict[str, list[ModelSpec]]:
    """Deployment name -> the models it serves (one each, or a multiplexed group)."""
    out: dict[str, list[ModelSpec]] = {}
    for spec in manifest.models:
        if not is_deployed(spec):
            continue
        key = deployment_name("mux", spec.ray.multiplex) if spec.ray.multiplex else deployment_name("model", spec.name)
        out.setdefault(key, []).append(spec)
    return out


def _max_replicas(specs: list[ModelSpec]) -> int:
    return max(s.ray.max_replicas or s.ray.replicas for s in specs)


def deployment_options(name: str, specs: list[ModelSpec], manifest: Manifest) -> dict[str, Any]:
    """Ray Serve options from farm.toml. A group takes the largest of its members' settings."""
    rays = [s.ray for s in specs]
    cpus = max(r.num_cpus if r.num_cpus is not None else manifest.ray.num_cpus for r in rays)
    actor: dict[str, Any] = {"num_cpus": cpus, "num_gpus": max(r.num_gpus for r in rays)}
    memory = max((r.memory_mb or 0) for r in rays)
    if memory:
        actor["memory"] = memory * _MIB
    options: dict[str, Any] = {
        "name": name,
        "ray_actor_options": actor,
        "max_ongoing_requests": sum(s.concurrency for s in specs),
    }
    if any(r.max_replicas is not None for r in rays):
        options["autoscaling_config"] = {
            "min_replicas": max(r.min_replicas for r in rays),
            "max_replicas": _max_replicas(specs),
            "target_ongoing_requests": min(r.target_ongoing_requests for r in rays),
        }
    else:
        options["num_replicas"] = max(r.replicas for r in rays)
    return options


def multiplexed_replica(max_models: int) -> type[ModelReplica]:
    """A replica class whose models Ray's multiplexer loads and evicts (LRU, `max_models` each)."""

    multiplexed: Callable[[Any], Any] = serve.multiplexed(max_num_models_per_replica=max_models)

    class MultiplexedReplica(ModelReplica):
        @multiplexed
        async def model(self, name: str) -> Loaded:
            await self.preload(name)
            return Loaded(self, name)

        async def complete(self, name: str, request: ChatRequest) -> ChatResult:
            await self.model(name)
            return await super().complete(name, request)

        async def stream(self, name: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
            await self.model(name)
            async for chunk in super().stream(name, request):
                yield chunk

        async def embed(self, name: str, texts: list[str]) -> tuple[list[list[float]], int]:
            await self.model(name)
            return await super().embed(name, texts)

    return MultiplexedReplica


def gateway_manifest(manifest: Manifest, routes: dict[str, Route]) -> Manifest:
    """The gateway admits as many requests at once as the model's replicas can serve."""
    models = []
    for spec in manifest.models:
        route = routes.get(spec.name)
        if route is not None:
            spec = spec.model_copy(update={"max_concurrency": spec.concurrency * route.replicas})
        models.append(spec)
    return manifest.model_copy(update={"models": models})


class Gateway:
    """The ingress: the embedded gateway's FastAPI app over handle-backed backends."""

    def __init__(
        self,
        manifest: Manifest,
        handles: dict[str, DeploymentHandle[Any]],
        routes: dict[str, Route],
        settings: GatewaySettings,
    ) -> None:
        self.manifest = manifest
        self.handles = handles
        self.routes = routes
        self.settings = settings

    def _remote(self, name: str, route: Route) -> Callable[[], Backend]:
        handle = self.handles[route.deployment]
        return lambda: RayBackend(name, handle, multiplexed=route.multiplexed)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from modelfarm.serve.app import ServeOptions, create_app

        remote = {name: self._remote(name, route) for name, route in self.routes.items()}
        options = ServeOptions(
            ledger_path=self.settings.ledger_path,
            keys=self.settings.keys,
            preload=self.settings.preload,
            remote_backends=remote,
        )
        return create_app(gateway_manifest(self.manifest, self.routes), options)


def build_application(manifest: Manifest, settings: GatewaySettings) -> Application:
    """The Ray Serve application for one farm (nothing starts until `serve.run`)."""
    groups = deployed(manifest)
    routes: dict[str, Route] = {}
    bound: dict[str, Application] = {}
    mux_class: type[ModelReplica] | None = None
    for name, specs in groups.items():
        multiplexed = name.startswith("mux-")
        if multiplexed:
            mux_class = mux_class or multiplexed_replica(manifest.ray.max_models_per_replica)
            cls: type[ModelReplica] = mux_class
        else:
            cls = ModelReplica
        options = deployment_options(name, specs, manifest)
        threads = max(1, int(options["ray_actor_options"]["num_cpus"]))  # the CPUs Ray reserved
        bound[name] = _deployment(cls, options).bind(manifest, [s.name for s in specs], threads)
        for spec in specs:
            routes[spec.name] = Route(name, multiplexed, _max_replicas(specs))
    gateway = _deployment(
        serve.ingress()(Gateway),
        {
            "name": "gateway",
            "num_replicas": manifest.ray.gateway_replicas,
            "ray_actor_options": {"num_cpus": manifest.ray.gateway_num_cpus},
            "max_ongoing_requests": 1000,
        },
    )
    app: Application = gateway.bind(manifest, bound, routes, settings)
    return app


def _deployment(cls: type, options: dict[str, Any]) -> Any:
    make: Any = serve.deployment
    return make(cls).options(**options)
