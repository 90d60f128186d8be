"""`modelfarm agents run "TASK"`: plan and run a task on the farm's agents, in-process.

The plan is drawn as soon as the planner answers; the step table then updates live (which
steps are running, on which model, for how long). `--json` prints the whole run as one JSON
object instead (plan, steps with start and end times, models, tokens, cost, the answer).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from modelfarm.agents.trace import Event, RunTrace
from modelfarm.errors import FarmError
from modelfarm.manifest import Manifest, load_manifest

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)

_STYLE = {"pending": "dim", "running": "yellow", "ok": "green", "failed": "red", "skipped": "magenta"}


@app.command("run")
def run_command(
    task: Annotated[str, typer.Argument(help='What to do, e.g. "go through today\'s mail and flag phishing".')],
    farm: Annotated[Path | None, typer.Option("--farm", "-f", help="farm.toml with [[agents]].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole run as one JSON object.")] = False,
    ledger: Annotated[
        Path | None, typer.Option(help="SQLite ledger (default: the farm's, else ~/.local/share/modelfarm).")
    ] = None,
    no_constrain: Annotated[
        bool, typer.Option("--no-constrain", help="Let the planner answer free text (no JSON-schema grammar).")
    ] = False,
) -> None:
    """Plan TASK with the brain, run the steps on the agents (in parallel where they can), merge the results."""
    try:
        manifest = load_manifest(farm)
        trace = asyncio.run(_run(manifest, task, ledger, as_json, not no_constrain))
    except FarmError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        err.print("[yellow]cancelled[/yellow]")
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(trace.as_dict()) + "\n")
    if trace.status != "ok":
        raise typer.Exit(1)


async def _run(manifest: Manifest, task: str, ledger_path: Path | None, quiet: bool, constrained: bool) -> RunTrace:
    from modelfarm.agents.calls import ServiceCaller
    from modelfarm.agents.run import AgentRuns
    from modelfarm.ledger import Ledger, default_ledger_path
    from modelfarm.models.pool import Pool
    from modelfarm.routing.router import Router
    from modelfarm.serve.metrics import Metrics
    from modelfarm.serve.service import Service

    pool = Pool(manifest)
    book = Ledger(ledger_path or manifest.farm.ledger or default_ledger_path())
    service = Service(pool, book, Metrics(pool), Router(manifest, pool))
    runs = AgentRuns(manifest, ServiceCaller(service), book, constrained=constrained)
    view = LiveView(task)
    try:
        if quiet:
            return await runs.run(task)
        with Live(view.render(), console=err, refresh_per_second=4, transient=False) as live:

            def on_event(event: Event) -> None:
                view.apply(event)
                live.update(view.render())

            trace = await runs.run(task, emit=on_event)
            live.update(view.render())
        _print_answer(trace)
        return trace
    finally:
        await pool.aclose()
        book.close()


@dataclass(slots=True)
class _Row:
    agent: str
    inputs: list[str]
    status: str = "pending"
    model: str = ""
    t0: float | None = None
    t1: float | None = None
    out: str = ""


class LiveView:
    """The plan as a graph, and one row per step: status, agent, model, seconds, first words."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.rows: dict[str, _Row] = {}
        self.source = ""
        self.phase = "planning"

    def apply(self, event: Event) -> None:
        d = event.data
        if event.type in ("plan", "replan"):
            self.source = str(d.get("source", ""))
            for s in d["steps"]:
                self.rows[s["id"]] = _Row(s["agent"], list(s["inputs"]))
            self.phase = "running"
            return
        row = self.rows.get(str(d.get("step", "")))
        if row is not None:
            if event.type == "step_started":
                row.status, row.t0, row.model = "running", event.at, str(d.get("model", ""))
            elif event.type == "step_retry":
                row.model = f"{d.get('next_model')} (retry)"
            elif event.type == "step_finished":
                row.status, row.t1, row.model, row.out = "ok", event.at, str(d["model"]), str(d.get("output", ""))
            elif event.type == "step_failed":
                row.status, row.t1, row.out = "failed", event.at, str(d.get("error", ""))
            elif event.type == "step_skipped":
                row.status, row.out = "skipped", str(d.get("reason", ""))
        if event.type == "synthesis":
            self.phase = "merging"
        elif event.type in ("answer", "error"):
            self.phase = "done"

    def render(self) -> Group:
        graph = Tree(f"[bold]{self.task[:100]}[/bold]  [dim]{self.phase} {self.source}[/dim]")
        for sid, row in self.rows.items():
            needs = f" <- {', '.join(row.inputs)}" if row.inputs else ""
            graph.add(Text(f"{sid} {row.agent}{needs}", style=_STYLE.get(row.status, "")))
        table = Table(expand=True, show_edge=False)
        for col in ("step", "status", "agent", "model", "s", "output"):
            table.add_column(col, overflow="ellipsis", no_wrap=col != "output", ratio=4 if col == "output" else None)
        for sid, row in self.rows.items():
            secs = f"{row.t1 - row.t0:.1f}" if row.t0 is not None and row.t1 is not None else ""
            out = row.out.replace("\n", " ")[:160]
            table.add_row(sid, Text(row.status, style=_STYLE.get(row.status, "")), row.agent, row.model, secs, out)
        return Group(graph, table)


def _print_answer(trace: RunTrace) -> None:
    if trace.answer is None:
        err.print(f"[red]no answer:[/red] {trace.error}")
        return
    cited = ", ".join(f"{sid} ({agent})" for sid, (agent, _) in trace.sources.items()) or "none cited"
    console.print(Panel(trace.answer, title="answer", subtitle=f"sources: {cited}"))
    console.print(
        f"[dim]{trace.id}: {len(trace.steps)} steps, {trace.duration:.1f} s, "
        f"{trace.tokens_in}+{trace.tokens_out} tokens, ${trace.cost:.6f}, plan {trace.plan_source}[/dim]"
    )
