"""What the gateway replicas need from the command line (kept free of Ray imports, so that
the loopback settings can be applied before Ray is first imported)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelfarm.serve.auth import KeyRing


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    ledger_path: Path
    keys: KeyRing = field(default_factory=lambda: KeyRing([]))
    """Digests only: API keys never travel to the cluster."""
    preload: tuple[str, ...] = ()
