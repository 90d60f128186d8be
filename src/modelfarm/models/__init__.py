"""Backends behind one protocol, and the pool that loads, shares and evicts them."""

from modelfarm.models.base import Backend, EmbeddingOnly

__all__ = ["Backend", "EmbeddingOnly"]
