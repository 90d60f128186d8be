"""The policy pipeline: privacy guard -> skill match -> learned quality -> cost.

Each stage narrows the candidates or picks one, and says why. A concrete model name skips
the choice but never the privacy guard.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelfarm.errors import BackendUnavailableError, InvalidRequestError, ModelNotFoundError
from modelfarm.manifest import TIER_ORDER, Manifest, ModelSpec, PolicySpec
from modelfarm.models.embedding import OnnxEmbeddingBackend
from modelfarm.models.pool import Pool
from modelfarm.routing.breaker import CircuitBreaker
from modelfarm.routing.decision import Decision
from modelfarm.routing.skills import SkillIndex
from modelfarm.types import Message

if TYPE_CHECKING:
    from modelfarm.routing.learned import QualityRouter
    from modelfarm.routing.privacy import PrivacyGuard

_ROLE_RANK = {"micro": 0, "specialist": 1, "brain": 2}
DEFAULT_BRAIN_SHARE = 0.3
"""A learned policy with no target sends about this share of prompts to the strongest model."""
ROUTE_CHARS = 600
"""The router reads the head of a long prompt (~130 tokens): what the task is shows early, and
the encoder's cost grows with length (a 500-token prompt took ~10x a 20-token one)."""


def cost_key(spec: ModelSpec, index: int) -> tuple[float, int, int]:
    """Cheap to expensive: token prices, then compute price, then role, then manifest order."""
    return (spec.price_in + spec.price_out + spec.price_per_second * 1000, _ROLE_RANK[spec.role], index)


def prompt_text(messages: list[Message]) -> str:
    """What the router reads: the last user message (the task at hand)."""
    for m in reversed(messages):
        if m.role == "user" and m.content.strip():
            return m.content
    return messages[-1].content if messages else ""


class Router:
    def __init__(self, manifest: Manifest, pool: Pool, *, guard: PrivacyGuard | None = None) -> None:
        self.manifest = manifest
        self.pool = pool
        self.breaker = CircuitBreaker()
        self._guard = guard
        self._guard_lock = asyncio.Lock()
        order = {m.name: i for i, m in enumerate(manifest.models)}
        self._chat = sorted(
            (m for m in manifest.models if m.backend != "embedding"), key=lambda m: cost_key(m, order[m.name])
        )
        self._embedder = next((m.name for m in manifest.models if m.backend == "embedding"), None)
        self._skills: SkillIndex | None = None
        self._learned: dict[Path, QualityRouter] = {}
        self._targets: dict[tuple[int, float | None, float | None], float] = {}

    # -- helpers --------------------------------------------------------------------------

    @property
    def chat_models(self) -> list[ModelSpec]:
        """Chat models, cheapest first."""
        return list(self._chat)

    async def guard(self) -> PrivacyGuard:
        async with self._guard_lock:
            if self._guard is None:
                from modelfarm.routing.privacy import PrivacyGuard

                guard = PrivacyGuard(ner=self.manifest.privacy.ner)
                await asyncio.to_thread(guard.scan, [Message("user", "warm up, Jane Doe")])
                self._guard = guard
            return self._guard

    async def embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            raise BackendUnavailableError(
                "this policy needs an embedding model (skills or a learned router); add one with "
                "backend = 'embedding' to farm.toml"
            )
        async with self.pool.lease(self._embedder) as backend:
            vectors, _ = await backend.embed(texts)
        return np.asarray(vectors, dtype=np.float32)

    async def embed_static(self, texts: list[str]) -> np.ndarray:
        """Skill-match vectors: the embedding model's static token vectors (about 1 ms a prompt
        of any length, see models/static_embedding.py); the full encoder for other backends."""
        if self._embedder is None:
            return await self.embed(texts)  # raises: no embedding model
        async with self.pool.lease(self._embedder) as backend:
            if not isinstance(backend, OnnxEmbeddingBackend):
                vectors, _ = await backend.embed(texts)
                return np.asarray(vectors, dtype=np.float32)
            static = backend.static_ready()
            if static is None:
                static = await asyncio.to_thread(backend.static)
            return static.encode(texts)

    async def _skill_index(self) -> SkillIndex:
        if self._skills is None:
            specs = [m for m in self._chat if SkillIndex.texts(m)]
            vectors = {m.name: await self.embed_static(SkillIndex.texts(m)) for m in specs}
            self._skills = SkillIndex(specs, vectors)
        return self._skills

    def _learned_router(self, policy: PolicySpec) -> QualityRouter:
        assert policy.router is not None
        path = policy.router
        if not path.is_absolute():
            # the built-in default farm's router file ships inside the package, next to its toml
            base = self.manifest.base_dir if self.manifest.source else Path(str(resources.files("modelfarm")))
            path = base / path
        if path not in self._learned:
            from modelfarm.routing.learned import QualityRouter

            self._learned[path] = QualityRouter.load(path)
        return self._learned[path]

    # -- the pipeline ---------------------------------------------------------------------

    async def decide(self, requested: str, messages: list[Message]) -> Decision:
        """Pick the model for a request (no generation). Raises 400/404 with the reason."""
        policy_name = requested if requested == "auto" or requested.startswith("auto:") else None
        if policy_name is None:
            spec = self.pool.spec(requested)  # 404 for unknown names
            candidates, policy = [spec], PolicySpec(cascade=False, fallback=False)
        else:
            found = self.manifest.policy(policy_name)
            if found is None:
                known = ", ".join(["auto", *(p for p in self.manifest.policies if p != "auto")])
                raise ModelNotFoundError(f"no routing policy {policy_name!r}; known: {known}", param="model")
            policy = found
            allowed = set(policy.candidates or [m.name for m in self._chat])
            candidates = [m for m in self._chat if m.name in allowed]
        notes: list[str] = []

        # 1. privacy: a hard rule, applied to every path
        decision_pii: list[str] = []
        redacted: list[Message] | None = None
        redaction = None
        cleared_rank = TIER_ORDER[self.manifest.privacy.cleared_tier]
        cleared = {m.name for m in candidates if TIER_ORDER[m.tier] <= cleared_rank}
        action = policy.privacy or self.manifest.privacy.action
        if len(cleared) < len(candidates):  # someone not cleared could see this request: look
            guard = await self.guard()
            findings = await asyncio.to_thread(guard.scan, messages)
            if findings:
                decision_pii = sorted({f.kind for f in findings})
                kinds = ", ".join(decision_pii)
                if action == "block":
                    raise InvalidRequestError(
                        f"the request carries {kinds}; this farm's policy blocks PII for "
                        f"{'this model' if policy_name is None else policy_name}. Remove it, or use a "
                        f"model of tier {self.manifest.privacy.cleared_tier}",
                        param="messages",
                    )
                if action == "keep-local":
                    before = [m.name for m in candidates]
                    candidates = [m for m in candidates if m.name in cleared]
                    if not candidates:
                        raise InvalidRequestError(
                            f"the request carries {kinds}, which may only go to models of tier "
                            f"{self.manifest.privacy.cleared_tier} or lower, and {before} are not; use "
                            "such a model, or remove the PII",
                            param="messages",
                        )
                    notes.append(f"privacy: {kinds} found, kept to {sorted(cleared)}")
                else:
                    redacted, redaction = await asyncio.to_thread(guard.redact, messages, findings)
                    notes.append(
                        f"privacy: {kinds} redacted for models above tier {self.manifest.privacy.cleared_tier}"
                    )

        def finish(
            name: str, cands: list[ModelSpec], pick: ModelSpec, scores: dict[str, float], lead: str | None = None
        ) -> Decision:
            reason = "; ".join([lead, *notes] if lead else notes)  # notes: what each stage found so far
            return self._finish(
                name, cands, pick, reason, scores, messages, decision_pii, redacted, redaction, cleared, policy
            )

        # breaker: skip models that keep failing (unless nothing else is left)
        healthy = [m for m in candidates if self.breaker.allows(m.name)]
        if healthy and len(healthy) < len(candidates):
            notes.append(f"circuit open: {sorted({m.name for m in candidates} - {m.name for m in healthy})}")
            candidates = healthy

        if policy_name is None:
            return finish("direct", candidates, candidates[0], {}, lead="requested by name")

        scores: dict[str, float] = {}
        prompt = prompt_text(messages)
        head = prompt[:ROUTE_CHARS]

        # 2. skills: specialists whose skills match compete; otherwise the general models do
        specialists = [m for m in candidates if m.role == "specialist" and SkillIndex.texts(m)]
        if specialists and self._embedder is not None and len(candidates) > 1:
            sims = (await self._skill_index()).scores((await self.embed_static([head]))[0])
            matched = [m for m in specialists if sims.get(m.name, -1.0) >= policy.skill_threshold]
            scores = {m.name: sims.get(m.name, 0.0) for m in candidates}  # no skills declared: 0
            if matched:
                best = max(matched, key=lambda m: sims[m.name])
                others = [m for m in candidates if m.role != "specialist"]
                notes.append(f"skills: {best.name} matches ({sims[best.name]:.2f} >= {policy.skill_threshold})")
                return finish(policy_name, [best, *others], best, scores)
            candidates = [m for m in candidates if m.role != "specialist"] or candidates
            notes.append(f"skills: no specialist above {policy.skill_threshold}")

        # 3. learned quality: the cheapest model predicted to answer well enough
        if policy.router is not None and len(candidates) > 1:
            learned = self._learned_router(policy)
            # the vectors the router was trained on: the full encoder, or the static ones (~1 ms)
            vec = (await (self.embed_static if learned.embedding == "static" else self.embed)([prompt]))[0]
            pick, scores, why = self._learned_pick(policy, candidates, vec, prompt)
            notes.append(why)
            decision = finish(policy_name, candidates, pick, scores)
            decision.posterior = dict(scores)
            return decision

        # 4. cost: the cheapest (or the strongest) remaining candidate
        pick = candidates[0] if policy.prefer == "cheap" else candidates[-1]
        notes.append(
            ("cheapest" if policy.prefer == "cheap" else "strongest")
            + " candidate"
            + (" (cascade escalates weak answers)" if policy.cascade else "")
        )
        rank = {m.name: float(len(candidates) - i) for i, m in enumerate(candidates)}
        return finish(policy_name, candidates, pick, scores or rank)

    def _learned_pick(
        self, policy: PolicySpec, candidates: list[ModelSpec], vec: np.ndarray, prompt: str
    ) -> tuple[ModelSpec, dict[str, float], str]:
        router = self._learned_router(policy)
        names = [policy.router_models.get(m, m) for m in router.models]
        quality = router.predict(vec[None, :], [prompt])[0]  # (M,) predicted quality per router model
        by_farm = {farm: float(q) for farm, q in zip(names, quality, strict=True)}
        scores = {m.name: by_farm[m.name] for m in candidates if m.name in by_farm}
        if not scores:
            raise BackendUnavailableError(
                f"the learned router knows {names}, none of which is a candidate; set router_models"
            )
        target = self._target(policy, router)
        ranked = [m for m in candidates if m.name in scores]  # cheapest first
        pick = next((m for m in ranked if scores[m.name] >= target), ranked[-1])
        why = f"learned: {pick.name} predicted {scores[pick.name]:.2f} (target {target:.2f})"
        return pick, scores, why

    def _target(self, policy: PolicySpec, router: QualityRouter) -> float:
        """The quality bar, calibrated once per policy on the router's out-of-fold predictions."""
        key = (id(router), policy.target_brain_share, policy.target_quality)
        if key not in self._targets:
            if policy.target_quality is not None:
                self._targets[key] = router.calibrate_quality(router.calibration, policy.target_quality)
            else:
                share = DEFAULT_BRAIN_SHARE if policy.target_brain_share is None else policy.target_brain_share
                self._targets[key] = router.calibrate_share(router.calibration, share)
        return self._targets[key]

    def _finish(
        self,
        policy_name: str,
        candidates: list[ModelSpec],
        pick: ModelSpec,
        reason: str,
        scores: dict[str, float],
        messages: list[Message],
        pii: list[str],
        redacted: list[Message] | None,
        redaction: Any,
        cleared: set[str],
        policy: PolicySpec,
    ) -> Decision:
        # next tries: stronger models first (escalation goes up), then cheaper ones
        index = {m.name: i for i, m in enumerate(self._chat)}
        others = [m for m in candidates if m.name != pick.name]
        up = sorted((m for m in others if index[m.name] > index[pick.name]), key=lambda m: index[m.name])
        down = sorted((m for m in others if index[m.name] < index[pick.name]), key=lambda m: -index[m.name])
        return Decision(
            policy=policy_name,
            model=pick.name,
            tier=pick.tier,
            reason=reason,
            scores=scores,
            pii=pii,
            messages=messages,
            order=[m.name for m in (*up, *down)],
            n_stronger=len(up),
            cleared=cleared,
            redacted=redacted,
            redaction=redaction,
            cascade=policy.cascade,
            cascade_min_logprob=policy.cascade_min_logprob,
            cascade_min_margin=policy.cascade_min_margin,
            cascade_min_confidence=policy.cascade_min_confidence,
            fallback=policy.fallback,
        )
