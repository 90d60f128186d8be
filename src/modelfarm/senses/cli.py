"""`modelfarm senses run PIPELINE`: replay or watch streams, print alerts as they fire.

The live view shows the latest value of every event kind, the alerts so far and each stage's
load (items, drops, ms per item, real-time factor). `--json` prints one JSON line per alert
instead (rule, severity, source_time, emitted_at, evidence); `--report FILE` writes the run's
statistics (per-stage latency, drops, alert latency) as JSON when the streams end.

Rule syntax (in `[[senses.NAME.rules]]`, key `when`):
  spo2 < 90 for 10s and (breathing_rate < 8 or speech contains "can't breathe")
  hr > 120 for 5s   |   siren seen within 3s and people >= 1   |   note contains "fell" within 60s
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from modelfarm.errors import FarmError
from modelfarm.manifest import Manifest, load_manifest
from modelfarm.senses.events import Alert, SenseEvent

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help=__doc__)
err = Console(stderr=True)


@app.command("run")
def run_command(
    pipeline: Annotated[str, typer.Argument(help="The pipeline's name: a [senses.NAME] table of the farm.")],
    farm: Annotated[Path | None, typer.Option("--farm", "-f", help="farm.toml declaring the pipeline.")] = None,
    video: Annotated[str | None, typer.Option(help="Video file, folder of frames, or camera index.")] = None,
    audio: Annotated[str | None, typer.Option(help="16-bit PCM WAV file, or mic[:DEVICE] for a microphone.")] = None,
    text: Annotated[str | None, typer.Option(help='JSONL of {"t": s, "text": ...}, or - for stdin.')] = None,
    realtime: Annotated[
        bool | None, typer.Option("--realtime/--fast", help="Replay at the streams' own pace, or as fast as possible.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per alert on stdout.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the run's statistics here as JSON.")] = None,
) -> None:
    """Run a sense pipeline over its sources and raise alerts from its fusion rules."""
    try:
        manifest = load_manifest(farm)
        result = asyncio.run(_run(manifest, pipeline, video, audio, text, realtime, as_json))
    except FarmError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if report is not None:
        report.write_text(json.dumps(result, indent=2))
    _summary(result)


async def _run(
    manifest: Manifest,
    name: str,
    video: str | None,
    audio: str | None,
    text: str | None,
    realtime: bool | None,
    as_json: bool,
) -> dict[str, Any]:
    from modelfarm.senses.alerts import ConsoleSink
    from modelfarm.senses.build import build, open_sources
    from modelfarm.senses.pipeline import Pipeline
    from modelfarm.senses.sources import Clock

    spec, processors, engine = build(manifest, name)
    sources = open_sources(spec, manifest.base_dir, video=video, audio=audio, text=text)
    clock = Clock(realtime=spec.realtime if realtime is None else realtime)
    out = Console(file=sys.stdout) if as_json else err
    sinks: list[Any] = [ConsoleSink(out, json_lines=as_json)]
    if spec.webhooks:
        from modelfarm.senses.outbox import WebhookOutbox

        outbox = WebhookOutbox(_outbox_path(manifest, name), spec.webhooks, headers_env=spec.webhook_header_env)
        await outbox.start()
        sinks.append(outbox)
    explainer, closer = await _explainer(manifest, spec.explain_model)
    view = _View(name)

    def on_alert(alert: Alert) -> None:
        view.alerts.append(alert)
        for s in sinks:
            s.deliver(alert)

    def on_explained(alert: Alert) -> None:
        for s in sinks:
            s.update(alert)

    pipe = Pipeline(
        name, processors, engine, on_event=view.event, on_alert=on_alert, on_explained=on_explained,
        explainer=explainer, explain_rules=frozenset(r.name for r in spec.rules if r.explain),
    )  # fmt: skip
    try:
        if as_json or not err.is_terminal:
            result = await pipe.run(sources, clock)
        else:
            with Live(view.render(pipe), console=err, refresh_per_second=4, transient=True) as live:
                task = asyncio.ensure_future(pipe.run(sources, clock))
                while not task.done():
                    live.update(view.render(pipe))
                    await asyncio.sleep(0.25)
                result = task.result()
    finally:
        for s in sinks:
            await s.aclose()
        await closer()
    data = result.as_dict()
    lat = [v for v in result.alert_latency_ms(clock.started_at)] if clock.realtime else []
    data["alert_latency_ms"] = {a.id: round(v, 1) for a, v in zip(result.alerts, lat, strict=False)}
    return data


def _outbox_path(manifest: Manifest, name: str) -> Path:
    from modelfarm.ledger import default_ledger_path

    ledger = manifest.farm.ledger or default_ledger_path()
    return Path(ledger).with_name(f"senses-{name}-outbox.db")


async def _explainer(manifest: Manifest, model: str | None) -> tuple[Any, Any]:
    """A function asking `model` for a short explanation of an alert (and how to close it)."""

    async def nothing() -> None:
        return None

    if model is None:
        return None, nothing
    from modelfarm.agents.calls import ServiceCaller
    from modelfarm.ledger import Ledger, default_ledger_path
    from modelfarm.models.pool import Pool
    from modelfarm.routing.router import Router
    from modelfarm.serve.metrics import Metrics
    from modelfarm.serve.service import Service

    pool = Pool(manifest)
    book = Ledger(manifest.farm.ledger or default_ledger_path())
    call = ServiceCaller(Service(pool, book, Metrics(pool), Router(manifest, pool)))

    async def explain(alert: Alert) -> str:
        evidence = "\n".join(
            f"- t={e.source_time:.1f}s {e.kind}: {e.value if e.text is None else e.text}" for e in alert.evidence
        )
        reply = await call(
            model,
            [
                {"role": "system", "content": "You explain monitoring alerts to clinical staff in two sentences."},
                {
                    "role": "user",
                    "content": f"Alert {alert.rule} ({alert.severity}): {alert.message}\nEvidence:\n{evidence}",
                },
            ],
            max_tokens=96,
        )
        return reply.text

    async def close() -> None:
        await pool.aclose()
        book.close()

    return explain, close


class _View:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latest: dict[str, SenseEvent] = {}
        self.alerts: list[Alert] = []

    def event(self, e: SenseEvent) -> None:
        self.latest[e.kind] = e

    def render(self, pipe: Any) -> Group:
        values = Table(title=f"{self.name}: latest events", expand=True)
        for col in ("kind", "t (s)", "value"):
            values.add_column(col)
        for kind, e in sorted(self.latest.items()):
            shown = e.text[:60] if e.text else f"{e.value:g} {e.unit or ''}" if e.value is not None else ""
            values.add_row(kind, f"{e.source_time:.1f}", shown)
        stages = Table(title="stages", expand=True)
        for col in ("processor", "items", "dropped", "ms/item", "rtf", "p99 ms"):
            stages.add_column(col)
        for w in pipe.workers:
            d = w.stats.as_dict()
            stages.add_row(
                d["name"], str(d["items"]), str(d["dropped"]), str(d["ms_per_item"] or ""), str(d["rtf"] or ""),
                str(d["latency_p99_ms"] or ""),
            )  # fmt: skip
        alerts = Table(title="alerts", expand=True)
        for col in ("t (s)", "severity", "rule", "message"):
            alerts.add_column(col)
        for a in self.alerts[-8:]:
            alerts.add_row(f"{a.source_time:.1f}", a.severity, a.rule, a.message)
        return Group(values, stages, alerts)


def _summary(data: dict[str, Any]) -> None:
    lat = sorted(data.get("alert_latency_ms", {}).values())
    err.print(
        f"[dim]{data['pipeline']}: {data['stream_s']:.1f} s of stream in {data['duration_s']:.1f} s, "
        f"{data['events']} events, {len(data['alerts'])} alerts, {data['frames_dropped']} frames dropped"
        + (f", alert latency max {lat[-1]:.0f} ms" if lat else "")
        + "[/dim]"
    )
