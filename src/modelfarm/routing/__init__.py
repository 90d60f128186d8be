"""Routing: `model="auto"` picks the cheapest model that will answer well and may see the data.

A policy is a pipeline of small stages (privacy guard, skill match, learned quality, cost),
each narrowing the candidates or picking one and saying why; execution adds cascade
(escalate a weak answer) and fallback (errors, timeouts, overload) with a circuit breaker.
Nothing here knows about HTTP.
"""

from modelfarm.routing.decision import Attempt, Decision
from modelfarm.routing.router import Router

__all__ = ["Attempt", "Decision", "Router"]
