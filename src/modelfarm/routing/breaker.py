"""A circuit breaker per model: after repeated failures, stop sending it requests for a while."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0


class CircuitBreaker:
    def __init__(self, threshold: int = 3, cooldown_s: float = 30.0) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._states: dict[str, _State] = {}

    def allows(self, model: str) -> bool:
        """Closed, or open long enough that one trial request may go (half-open)."""
        state = self._states.get(model)
        return state is None or state.open_until <= time.monotonic()

    def success(self, model: str) -> None:
        self._states.pop(model, None)

    def failure(self, model: str) -> None:
        state = self._states.setdefault(model, _State())
        state.failures += 1
        if state.failures >= self.threshold:
            state.open_until = time.monotonic() + self.cooldown_s
