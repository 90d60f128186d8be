"""From `[senses.NAME]` in farm.toml to a runnable pipeline: processors, rules, sources.

Each processor type maps to one class; options in its table other than `type`, `name`, `queue`
and `every` go to that class's constructor, so a misspelt option is a clear error naming the
processor and the options it takes. Rules are checked against what the processors emit: a
rule over a kind nothing produces would never fire, so it is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelfarm.errors import ConfigError
from modelfarm.manifest import Manifest, ProcessorSpec, SensePipelineSpec
from modelfarm.senses.events import Modality, SourceItem
from modelfarm.senses.processors.base import Processor
from modelfarm.senses.rules import Rule, RuleEngine


def _classes() -> dict[str, type[Any]]:
    """Imported on demand: each brings a heavy library (OpenCV, onnxruntime, CTranslate2)."""
    from modelfarm.senses.processors.asr import SpeechToText
    from modelfarm.senses.processors.ocr import MonitorOcr
    from modelfarm.senses.processors.people import FaceDetector, PeopleDetector
    from modelfarm.senses.processors.scene_text import SceneText
    from modelfarm.senses.processors.signals import BreathingRate, SirenDetector
    from modelfarm.senses.processors.text import TextProcessor
    from modelfarm.senses.processors.vad import VoiceActivity

    return {
        "ocr": MonitorOcr,
        "people": PeopleDetector,
        "faces": FaceDetector,
        "vad": VoiceActivity,
        "asr": SpeechToText,
        "siren": SirenDetector,
        "breathing": BreathingRate,
        "text": TextProcessor,
        "scene_text": SceneText,
    }


def make_processor(spec: ProcessorSpec, where: str) -> Processor:
    cls = _classes()[spec.type]
    options = spec.options
    if spec.name:
        options["name"] = spec.name
    if spec.type == "ocr" and "fields" in options:
        from modelfarm.senses.processors.ocr import OcrField

        options["fields"] = [f if isinstance(f, OcrField) else OcrField(**f) for f in options["fields"]]
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"{where}: {spec.type} processors take no option {unknown}; they take {sorted(accepted)}")
    try:
        processor: Processor = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return processor


def rules_of(spec: SensePipelineSpec) -> list[Rule]:
    return [Rule(r.name, r.when, r.severity, r.clear_after, r.message, r.explain) for r in spec.rules]


def build(manifest: Manifest, name: str) -> tuple[SensePipelineSpec, list[tuple[Processor, int, float]], RuleEngine]:
    spec = manifest.senses.get(name)
    if spec is None:
        known = ", ".join(sorted(manifest.senses)) or "none: add a [senses.NAME] table to farm.toml"
        raise ConfigError(f"no sense pipeline {name!r} in this farm (pipelines: {known})")
    processors = [
        (make_processor(p, f"senses.{name}.processors[{i}]"), p.queue, p.every) for i, p in enumerate(spec.processors)
    ]
    names = [p.name for p, _, _ in processors]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"senses.{name}: processor names {dupes} are used twice; give them `name`s")
    engine = RuleEngine(name, rules_of(spec), stale_after=spec.stale_after)
    emitted = {kind for p, _, _ in processors for kind in p.emits}
    missing = sorted(engine.kinds - emitted)
    if missing:
        raise ConfigError(
            f"senses.{name}: rules use {missing}, which no processor of this pipeline emits "
            f"(it emits {sorted(emitted)})"
        )
    return spec, processors, engine


def open_sources(
    spec: SensePipelineSpec,
    base: Path,
    *,
    video: str | None = None,
    audio: str | None = None,
    text: str | None = None,
) -> dict[Modality, Iterable[SourceItem]]:
    """The pipeline's sources: command-line paths win over the manifest's (which are relative
    to farm.toml). Only the modalities some processor consumes are opened."""
    from modelfarm.senses.sources import audio_source, read_wav, text_source, video_source

    def where(given: str | None, declared: str | None) -> str | None:
        if given is not None:
            return given
        if declared is None or declared == "-" or declared.isdigit() or declared.startswith("mic"):
            return declared
        return str(base / declared)

    out: dict[Modality, Iterable[SourceItem]] = {}
    v, a, t = where(video, spec.video), where(audio, spec.audio), where(text, spec.text)
    if v is not None:
        out["video"] = video_source(v, fps=spec.fps)
    if a is not None and (a == "mic" or a.startswith("mic:")):
        from modelfarm.senses.sources import microphone_source

        out["audio"] = microphone_source(a.partition(":")[2] or None)
    elif a is not None:
        out["audio"] = audio_source(read_wav(a))
    if t is not None:
        out["text"] = text_source(t)
    if not out:
        raise ConfigError("no source: give --video, --audio or --text, or declare them in the pipeline's table")
    return out
