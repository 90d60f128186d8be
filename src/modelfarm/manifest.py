"""farm.toml: the one manifest that declares every model of a farm.

Validated once, at load, with pydantic. Every error names the file, the key and the fix.
A bare `modelfarm serve` uses the built-in default farm (`default_farm.toml` in this package).
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelfarm.errors import ConfigError, ManifestError
from modelfarm.scaleout import ModelRay, RaySettings

Tier = Literal["local", "private", "public"]
TIER_ORDER: dict[str, int] = {"local": 0, "private": 1, "public": 2}
"""Where the data goes when a model runs: `local` < `private` < `public`."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from `300`, `"30s"`, `"5m"`, `"1h"`; `"forever"` or a negative number is infinity."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 300, '30s', '5m' or 'forever'")
    if isinstance(value, int | float):
        return float("inf") if value < 0 else float(value)
    if isinstance(value, str):
        if value.strip().lower() == "forever":
            return float("inf")
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration: use seconds (300), '30s', '5m', '1h' or 'forever'")


class Skills(BaseModel):
    """What a model is good at, for the router: a description and example prompts."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    examples: list[str] = Field(default_factory=list)


class ModelSpec(BaseModel):
    """One `[[models]]` entry of farm.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
    role: Literal["brain", "specialist", "micro"] = "specialist"
    backend: Literal["llama_cpp", "openai", "embedding"]
    # Source: exactly one of path, package, base_url.
    path: Path | None = None
    """A GGUF or ONNX file; relative paths are taken from the manifest's folder."""
    package: str | None = None
    """An installed Python package that ships the weights. With `parts`, a pattern with `{n}`."""
    file: str | None = None
    """Glob of the file inside `package` (default: its only .gguf or .onnx file)."""
    parts: int | None = Field(default=None, ge=1, le=1000)
    """The weights are byte chunks `data/part*.bin` in packages `package.format(n=1..parts)`."""
    base_url: str | None = None
    """An OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1."""
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable that holds the API key. Keys never go in the manifest."""
    remote_model: str | None = None
    """The model's name on the remote server (default: `name`)."""
    tokenizer: str | None = None
    """For `embedding` models: a tokenizer.json path, or a package that ships one."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    context_length: int = Field(default=4096, ge=16, le=1_048_576)
    tier: Tier = "local"
    price_in: float = Field(default=0.0, ge=0)
    """USD per million prompt tokens (0 for local models)."""
    price_out: float = Field(default=0.0, ge=0)
    """USD per million generated tokens (0 for local models)."""
    price_per_second: float = Field(default=0.0, ge=0)
    """USD per second of compute while this model serves (what local hardware costs you)."""
    skills: Skills = Field(default_factory=Skills)
    max_concurrency: int = Field(default=0, ge=0, le=4096)
    """Requests served at once (0: 1 for llama_cpp, 32 otherwise)."""
    max_queue: int = Field(default=16, ge=0, le=100_000)
    """Requests that may wait for a slot; beyond that the farm answers 429."""
    keep_alive: float = 300.0
    """Unload after this long unused: seconds, '5m', or 'forever'."""
    memory_mb: int | None = Field(default=None, ge=0)
    """Memory this model takes when loaded (default: estimated from the file size)."""
    threads: int | None = Field(default=None, ge=1, le=512)
    """CPU threads for a local model (default: the farm's whole thread budget)."""
    timeout: float = Field(default=120.0, gt=0)
    """Seconds to wait for a remote server."""
    chat_format: str | None = None
    """Override the GGUF's own chat template with a llama-cpp-python chat format name."""
    ray: ModelRay = Field(default_factory=ModelRay)
    """Deployment options for `modelfarm serve --ray`."""

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in ("path", "package", "base_url") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one source: `path` (a file), `package` (an installed package that "
                f"ships the weights) or `base_url` (an OpenAI-compatible server); got {given or 'none'}"
            )
        if self.backend == "openai" and self.base_url is None:
            raise ValueError("backend 'openai' needs `base_url`")
        if self.backend != "openai" and self.base_url is not None:
            raise ValueError(f"`base_url` is for backend 'openai', not {self.backend!r}")
        if self.parts is not None and (self.package is None or "{n}" not in self.package):
            raise ValueError("`parts` needs `package` with a `{n}` placeholder, e.g. 'weights_part{n}'")
        if self.parts is not None and self.sha256 is None:
            raise ValueError("chunked weights (`parts`) must pin `sha256` so a bad chunk is caught")
        if self.backend == "embedding" and self.tokenizer is None:
            raise ValueError("backend 'embedding' needs `tokenizer` (a tokenizer.json path or package)")
        return self

    @property
    def concurrency(self) -> int:
        if self.max_concurrency:
            return self.max_concurrency
        return 1 if self.backend == "llama_cpp" else 32


class FarmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "farm"
    memory_budget_mb: int = Field(default=8192, ge=64)
    """Loaded models together stay under this; least recently used idle ones are evicted."""
    threads: int = Field(default=0, ge=0, le=1024)
    """CPU threads shared by all local models at once (0: every core)."""
    cache_dir: Path | None = None
    """Where chunked weights are assembled (default: ~/.cache/modelfarm)."""
    ledger: Path | None = None
    """SQLite ledger file (default: ~/.local/share/modelfarm/ledger.db)."""


PiiAction = Literal["block", "keep-local", "redact"]


class PrivacySettings(BaseModel):
    """What happens when a request carries PII or secrets (every path, `auto` or not)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    action: PiiAction = "keep-local"
    """`block`: refuse (400); `keep-local`: only models cleared for it; `redact`: placeholders."""
    cleared_tier: Tier = "local"
    """The highest tier allowed to see PII: models above it never receive it."""
    ner: bool = True
    """Find names and places with spaCy's NER (patterns alone miss most of them)."""


class PolicySpec(BaseModel):
    """One routing policy: `[policies."auto"]`, `[policies."auto:cheap"]`, ..."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    candidates: list[str] | None = None
    """Models this policy may pick (default: every chat model of the farm)."""
    privacy: PiiAction | None = None
    """Override the farm's privacy action for this policy."""
    prefer: Literal["cheap", "quality"] = "cheap"
    """Without a learned router: start from the cheapest candidate, or the strongest."""
    skill_threshold: float = Field(default=0.55, ge=-1, le=1)
    """Cosine similarity (static MiniLM token vectors, see models/static_embedding.py) above which
    a specialist's skills claim a prompt; unrelated prompts mostly score 0.2-0.5 against code skills."""
    router: Path | None = None
    """A learned router file (`modelfarm router train`), relative to the manifest."""
    router_models: dict[str, str] = Field(default_factory=dict)
    """The router's model names mapped to farm model names, when they differ."""
    target_brain_share: float | None = Field(default=None, ge=0, le=1)
    """Calibrate the router so this share of prompts goes to the strongest model."""
    target_quality: float | None = Field(default=None, ge=0, le=1)
    """Or: pick the cheapest model whose predicted quality reaches this."""
    cascade: bool = False
    """The chosen model answers first; a weak answer escalates to the next model up."""
    cascade_min_logprob: float = Field(default=-1.0, le=0)
    """Escalate when the answer's mean token log-probability is below this."""
    cascade_min_margin: float | None = Field(default=None, ge=0)
    """Escalate when the answer's mean margin (its token's log-probability minus the best other
    token's) is below this: a model torn between two tokens is guessing. Off when unset."""
    cascade_min_confidence: float | None = Field(default=None, ge=0, le=1)
    """Escalate when the learned router's predicted quality of the answering model (1 without a
    router) times the answer's mean token probability is below this. Off when unset."""
    fallback: bool = True
    """On error, timeout or overload, try the next candidate the policy allows."""

    @model_validator(mode="after")
    def _one_target(self) -> PolicySpec:
        if self.target_brain_share is not None and self.target_quality is not None:
            raise ValueError("give `target_brain_share` or `target_quality`, not both")
        return self


class AgentSpec(BaseModel):
    """One agent: a model (or an `auto` policy) with a job, a system prompt and tools."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
    description: str = Field(min_length=1)
    """What the planner sees when it chooses agents for steps."""
    model: str = "auto"
    """A model of this farm, or a routing policy (`auto`, `auto:NAME`)."""
    fallback: str | None = None
    """A model or policy to try when `model` fails a step after its retries."""
    system: str = ""
    tools: list[str] = Field(default_factory=list)
    """Built-in tool names (read_mailbox, query_table, read_file, calculate) or `module.path:function`."""
    tool_args: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Arguments fixed by the operator, per tool (e.g. read_mailbox = { folder = "mail" }); the
    model fills in only the others, and a tool with every argument fixed is called without asking it."""
    max_tokens: int = Field(default=384, ge=1, le=32768)


class Orchestration(BaseModel):
    """`[orchestration]`: how agent tasks are planned and run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    planner: str | None = None
    """The model (or policy) that plans and merges; default: the farm's brain."""
    workspace: Path = Path(".")
    """The one folder file tools may read, relative to the manifest."""
    max_steps: int = Field(default=8, ge=1, le=64)
    max_depth: int = Field(default=4, ge=1, le=32)
    step_timeout: float = Field(default=300.0, gt=0)
    retries: int = Field(default=1, ge=0, le=10)
    """Retries of a failed step on the same model (with backoff) before its fallback."""
    backoff: float = Field(default=0.5, ge=0)
    """Seconds before the first retry; doubles each time."""
    answer_max_tokens: int = Field(default=512, ge=16, le=32768)
    """Most tokens of the merged answer."""
    frequency_penalty: float = Field(default=0.4, ge=-2, le=2)
    """On step answers and the merge (not on JSON): small models at temperature 0 otherwise
    fall into loops ("- Requote" forty times) on long inputs."""
    on_failure: Literal["skip", "replan"] = "skip"
    """A failed step's dependants are skipped, or the planner is asked once for a new plan of what is left."""

    @field_validator("step_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


ProcessorType = Literal["ocr", "people", "faces", "vad", "asr", "siren", "breathing", "text", "scene_text"]


class ProcessorSpec(BaseModel):
    """One micro-model of a sense pipeline; options other than these go to its constructor."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: ProcessorType
    name: str | None = None
    queue: int = Field(default=4, ge=1, le=10_000)
    """Video only: frames waiting for this processor; when full, the oldest is dropped (and counted)."""
    every: float = Field(default=0.0, ge=0)
    """Video only: process at most one frame every this many seconds of stream time (0: every frame)."""

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    when: str = Field(min_length=1)
    """A condition such as `spo2 < 90 for 10s and speech contains "can't breathe"` (see senses/rules.py)."""
    severity: Literal["info", "warning", "critical"] = "warning"
    clear_after: float = 10.0
    """Seconds the condition must stay false before the rule can alert again (hysteresis)."""
    message: str | None = None
    explain: bool = False
    """Ask the pipeline's `explain_model` for a one-paragraph explanation, attached after the alert."""

    @field_validator("clear_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class SensePipelineSpec(BaseModel):
    """`[senses.NAME]`: sources, processors, fusion rules and where alerts go."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    video: str | None = None
    """A video file, a folder of frames, or a camera index (relative paths: to farm.toml)."""
    audio: str | None = None
    """A 16-bit PCM WAV file, or "mic" / "mic:DEVICE" for a microphone (needs `sounddevice`)."""
    text: str | None = None
    """A JSONL file of {"t": seconds, "text": ...}, or "-" for stdin."""
    fps: float | None = Field(default=None, gt=0)
    realtime: bool = True
    processors: list[ProcessorSpec] = Field(min_length=1)
    rules: list[RuleSpec] = Field(default_factory=list)
    stale_after: float = Field(default=15.0, gt=0)
    webhooks: list[str] = Field(default_factory=list)
    webhook_header_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """An environment variable holding the Authorization header value sent to the webhooks."""
    explain_model: str | None = None
    """A model or policy that writes explanations for rules with `explain = true`."""
    autostart: bool = False
    """`modelfarm serve` runs this pipeline (text also from POST /v1/senses/NAME/text)."""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    farm: FarmSettings = Field(default_factory=FarmSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    policies: dict[str, PolicySpec] = Field(default_factory=dict)
    """Routing policies by name; `auto` exists even when not declared."""
    models: list[ModelSpec] = Field(default_factory=list)
    """At least one, unless the farm only runs sense pipelines."""
    agents: list[AgentSpec] = Field(default_factory=list)
    orchestration: Orchestration = Field(default_factory=lambda: Orchestration())
    senses: dict[str, SensePipelineSpec] = Field(default_factory=dict)
    ray: RaySettings = Field(default_factory=RaySettings)
    source: Path | None = Field(default=None, exclude=True)
    """The file this manifest was read from (None for the built-in default)."""

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        if not self.models and not self.senses:
            raise ValueError("models: declare at least one [[models]] entry")
        seen: set[str] = set()
        for i, m in enumerate(self.models):
            if m.name in seen:
                raise ValueError(f"models[{i}]: the name {m.name!r} is used twice; names must be unique")
            if m.name == "auto" or m.name.startswith("auto:"):
                raise ValueError(f"models[{i}]: the name {m.name!r} is reserved for routing policies")
            seen.add(m.name)
        chat = {m.name for m in self.models if m.backend != "embedding"}
        for name, policy in self.policies.items():
            if name != "auto" and not name.startswith("auto:"):
                raise ValueError(f"policies.{name}: policy names are `auto` or start with `auto:`")
            unknown = [c for c in (policy.candidates or []) + list(policy.router_models.values()) if c not in chat]
            if unknown:
                raise ValueError(f"policies.{name}: {unknown} are not chat models of this farm ({sorted(chat)})")
        names: set[str] = set()
        for i, a in enumerate(self.agents):
            if a.name in names:
                raise ValueError(f"agents[{i}]: the name {a.name!r} is used twice; names must be unique")
            names.add(a.name)
            for key, ref in (("model", a.model), ("fallback", a.fallback)):
                if ref is not None and ref not in chat and not (ref == "auto" or ref.startswith("auto:")):
                    raise ValueError(f"agents[{i}].{key}: {ref!r} is not a chat model or policy ({sorted(chat)})")
            stray = sorted(set(a.tool_args) - set(a.tools))
            if stray:
                raise ValueError(f"agents[{i}].tool_args: {stray} are not among its tools {a.tools}")
        planner = self.orchestration.planner
        if planner is not None and planner not in chat and not (planner == "auto" or planner.startswith("auto:")):
            raise ValueError(f"orchestration.planner: {planner!r} is not a chat model or policy ({sorted(chat)})")
        for name, pipe in self.senses.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,47}", name):
                raise ValueError(f"senses.{name}: pipeline names are letters, digits, - and _")
            if pipe.explain_model and pipe.explain_model not in chat and not pipe.explain_model.startswith("auto"):
                raise ValueError(f"senses.{name}.explain_model: {pipe.explain_model!r} is not a chat model or policy")
            for j, rule in enumerate(pipe.rules):
                from modelfarm.senses.rules import parse_condition

                try:
                    parse_condition(rule.when, f"senses.{name}.rules[{j}] ({rule.name})")
                except ConfigError as exc:
                    raise ValueError(exc.message) from exc
        return self

    def agent(self, name: str) -> AgentSpec | None:
        return next((a for a in self.agents if a.name == name), None)

    def policy(self, name: str) -> PolicySpec | None:
        if name in self.policies:
            return self.policies[name]
        return PolicySpec() if name == "auto" else None

    def model(self, name: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == name), None)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()


_FIXES = {
    "literal_error": "use one of the values listed",
    "extra_forbidden": "remove it, or check its spelling against `modelfarm init`'s example",
    "missing": "add it",
    "string_pattern_mismatch": "see the pattern above",
    "too_short": "declare at least one [[models]] entry",
}


def _key(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """`models[1] (name = 'x').tier` from pydantic's ('models', 1, 'tier')."""
    out = ""
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(entry, dict) and "name" in entry:
                out += f" (name = {entry['name']!r})"
            node = entry
        else:
            out += f".{item}" if out else item
            node = node.get(item) if isinstance(node, dict) else None
    return out or "(top level)"


def _format(exc: ValidationError, where: str, data: dict[str, Any]) -> str:
    lines = [f"{where}: the farm manifest is not valid:"]
    for err in exc.errors():
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        key = _key(loc, data)
        msg = err["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(err["type"])
        got = (
            f" (got {err['input']!r})"
            if err["type"] not in ("missing", "model_type") and not isinstance(err.get("input"), dict)
            else ""
        )
        lines.append(f"  - {key}: {msg}{got}" + (f"; fix: {fix}" if fix else ""))
    return "\n".join(lines)


def parse_manifest(text: str, *, source: Path | None = None) -> Manifest:
    where = str(source) if source else "<default farm>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: not valid TOML: {exc}; fix the syntax at that line") from exc
    try:
        manifest = Manifest.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ManifestError(_format(exc, where, data)) from exc
    return manifest


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and validate a farm.toml; None gives the built-in default farm."""
    if path is None:
        return parse_manifest(default_manifest_text())
    file = Path(path).expanduser().resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError(f"{file}: no such file; create one with `modelfarm init {path}`") from exc
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read it ({exc.strerror})") from exc
    return parse_manifest(text, source=file)


def default_manifest_text() -> str:
    return resources.files("modelfarm").joinpath("default_farm.toml").read_text(encoding="utf-8")


def example_manifest_text() -> str:
    return resources.files("modelfarm").joinpath("example_farm.toml").read_text(encoding="utf-8")
