"""What the router decided, and why: carried to the response, the headers and the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelfarm.types import Message

if TYPE_CHECKING:
    from modelfarm.routing.privacy import Redaction


@dataclass(slots=True)
class Attempt:
    """One model's try at the request: served, escalated, or failed."""

    model: str
    outcome: str
    """`served`, `escalated`, or `failed`."""
    detail: str = ""
    """Why: the check that escalated, or the error that failed it."""
    latency_ms: float = 0.0
    tokens_out: int = 0
    tokens_in: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "outcome": self.outcome,
            "detail": self.detail,
            "latency_ms": round(self.latency_ms, 1),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }


@dataclass(slots=True)
class Decision:
    policy: str
    """`auto`, `auto:NAME`, or `direct` when the client named a model."""
    model: str
    """The model picked to answer first."""
    tier: str
    reason: str
    """One line a person can read: which stage picked the model and on what evidence."""
    scores: dict[str, float]
    """Every candidate's score at the deciding stage (higher is better)."""
    pii: list[str]
    """Kinds of PII or secrets found (never their values)."""
    messages: list[Message]
    """The request as the client sent it."""
    order: list[str] = field(default_factory=list)
    """Models to try next on failure or escalation: stronger ones (weakest first), then cheaper."""
    n_stronger: int = 0
    """How many models at the head of `order` are stronger than `model` (cascade goes there)."""
    cleared: set[str] = field(default_factory=set)
    """Models allowed to see the original (unredacted) messages."""
    redacted: list[Message] | None = None
    """The messages with PII replaced by placeholders, for models not cleared for it."""
    redaction: Redaction | None = None
    cascade: bool = False
    cascade_min_logprob: float = -1.0
    cascade_min_margin: float | None = None
    cascade_min_confidence: float | None = None
    posterior: dict[str, float] = field(default_factory=dict)
    """The learned router's predicted quality per candidate (empty when no router decided)."""
    fallback: bool = True

    def sent(self, model: str) -> list[Message]:
        """The messages exactly as `model` receives them (redacted if it is not cleared)."""
        if self.redacted is None or model in self.cleared:
            return self.messages
        return self.redacted

    def explain(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "model": self.model,
            "tier": self.tier,
            "reason": self.reason,
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "pii": self.pii,
        }
