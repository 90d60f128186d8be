"""farm.toml's `[ray]` and `[models.ray]` tables: how `modelfarm serve --ray` deploys the farm.

Only data: the embedded gateway reads none of it, and nothing here imports Ray.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelRay(BaseModel):
    """`[models.ray]`: how `modelfarm serve --ray` deploys this model (ignored when embedded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    replicas: int = Field(default=1, ge=1, le=1024)
    """Fixed number of replicas (ignored when `max_replicas` is set)."""
    min_replicas: int = Field(default=1, ge=0, le=1024)
    max_replicas: int | None = Field(default=None, ge=1, le=1024)
    """Set it to autoscale between min_replicas and max_replicas."""
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    """Autoscaling target: requests in flight per replica."""
    num_cpus: float | None = Field(default=None, ge=0)
    """CPUs Ray reserves per replica (default: `[ray].num_cpus`). Fractions are fine."""
    num_gpus: float = Field(default=0.0, ge=0)
    memory_mb: int | None = Field(default=None, ge=0)
    """Memory Ray reserves per replica, for placement (default: none reserved)."""
    multiplex: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
    """Models with the same group name share the replicas of one deployment (LRU-loaded)."""
    deploy: bool | None = None
    """false: serve the model inside each gateway replica, as embedded, with no Ray hop (for
    remote OpenAI-compatible members that need no placement). Default: true for chat models,
    false for embedding models (the router reads them on every decision)."""

    @model_validator(mode="after")
    def _bounds(self) -> ModelRay:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        if self.multiplex is not None and self.deploy is False:
            raise ValueError("multiplex needs a deployment: remove deploy = false or multiplex")
        return self


class RaySettings(BaseModel):
    """`[ray]`: the cluster side of `modelfarm serve --ray` (ignored when embedded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_cpus: float = Field(default=0.25, ge=0)
    """CPUs Ray reserves per model replica unless the model says otherwise. Explicit and
    fractional: Ray's default of one CPU each leaves replicas pending forever on small nodes."""
    gateway_replicas: int = Field(default=1, ge=1, le=1024)
    gateway_num_cpus: float = Field(default=0.25, ge=0)
    max_models_per_replica: int = Field(default=2, ge=1, le=1024)
    """For multiplexed groups: models one replica keeps loaded (least recently used go first)."""
    local_cpus: int | None = Field(default=None, ge=1, le=4096)
    """CPUs of the local Ray instance that `--ray` without `--address` starts (default: every core)."""
