"""The gateway's view of a model deployed on Ray Serve: a `Backend` over a deployment handle.

The gateway's pool leases it like any other backend (admission and Retry-After stay in the
gateway); the replica does the loading and the generating. Ray wraps a replica's exception in
`RayTaskError`; our own errors are unwrapped so that clients see the same status and message
as from the embedded gateway, and Ray's own failures become 503s or 429s that say what happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import exceptions as ray_errors
from ray.serve import exceptions as serve_errors
from ray.serve.handle import DeploymentHandle

from modelfarm.errors import BackendUnavailableError, FarmError, OverloadedError
from modelfarm.models.base import Backend
from modelfarm.types import ChatChunk, ChatRequest, ChatResult


def farm_error(name: str, exc: BaseException) -> BaseException:
    """The error a client should see for a failed call to model `name`'s deployment."""
    cause = exc.cause if isinstance(exc, ray_errors.RayTaskError) else exc
    if isinstance(cause, FarmError):
        return cause
    if isinstance(cause, serve_errors.BackPressureError):
        return OverloadedError(
            f"model {name!r}: every Ray replica is at capacity and its queue is full; retry shortly, "
            "or raise its max_queue / [models.ray] replicas",
            retry_after=1,
        )
    if isinstance(cause, ray_errors.RayActorError | ray_errors.ActorDiedError):
        return BackendUnavailableError(f"model {name!r}: its Ray replica died; Ray Serve restarts it, retry shortly")
    if isinstance(cause, serve_errors.DeploymentUnavailableError):
        return BackendUnavailableError(f"model {name!r}: its Ray deployment is unavailable ({cause})")
    if isinstance(cause, ray_errors.RayError):
        return BackendUnavailableError(f"model {name!r}: the Ray call failed ({type(cause).__name__})")
    return cause


class RayBackend(Backend):
    """A model served by a Ray Serve deployment (one of its own, or a multiplexed group's)."""

    cpu_threads = 0  # the work happens in the replica, under the replica's own thread budget
    memory_bytes = 0

    def __init__(self, name: str, handle: DeploymentHandle[Any], *, multiplexed: bool) -> None:
        self.name = name
        self._handle = handle
        self._multiplexed = multiplexed

    def _call(self, method: str, *, stream: bool = False) -> Any:
        options: dict[str, Any] = {"method_name": method, "stream": stream}
        if self._multiplexed:
            options["multiplexed_model_id"] = self.name
        return self._handle.options(**options)

    async def chat(self, request: ChatRequest) -> ChatResult:
        try:
            result: ChatResult = await self._call("complete").remote(self.name, request)
        except Exception as exc:
            raise farm_error(self.name, exc) from None
        return result

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        responses = self._call("stream", stream=True).remote(self.name, request)
        finished = False
        try:
            async for chunk in responses:
                yield chunk
            finished = True
        except Exception as exc:
            finished = True
            raise farm_error(self.name, exc) from None
        finally:
            if not finished:  # the client went away: cancel the generation in the replica
                responses.cancel()

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        try:
            vectors, tokens = await self._call("embed").remote(self.name, texts)
        except Exception as exc:
            raise farm_error(self.name, exc) from None
        return vectors, tokens
