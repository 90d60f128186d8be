"""modelfarm: a brain, specialists and micro-models on your own machines, behind the OpenAI API.

Public surface::

    from modelfarm import load_manifest, Pool, create_app
    manifest = load_manifest("farm.toml")        # or None for the built-in default farm
    app = create_app(manifest)                   # FastAPI app; serve it with uvicorn
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelfarm.errors import FarmError
from modelfarm.manifest import Manifest, ModelSpec, load_manifest
from modelfarm.types import ChatChunk, ChatRequest, ChatResult, Message, Usage

if TYPE_CHECKING:
    from modelfarm.models.pool import Pool
    from modelfarm.serve.app import create_app

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResult",
    "FarmError",
    "Manifest",
    "Message",
    "ModelSpec",
    "Pool",
    "Usage",
    "create_app",
    "load_manifest",
]


def __getattr__(name: str) -> Any:
    # The pool and the app pull in FastAPI and numpy; import them only when asked for.
    if name == "Pool":
        from modelfarm.models.pool import Pool

        return Pool
    if name == "create_app":
        from modelfarm.serve.app import create_app

        return create_app
    raise AttributeError(name)
