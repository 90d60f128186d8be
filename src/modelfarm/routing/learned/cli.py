"""`modelfarm router`: train a quality router on outcomes files, score prompts with it, evaluate it.

modelfarm router train --data A.csv [--data B.csv ...] --out router.json
modelfarm router score --router router.json --data X.csv --strong MODEL --out scores.csv
modelfarm router eval  --router router.json --data X.csv [--plot curves.png] [--json]
modelfarm router collect --prompts graded.jsonl --out outcomes.csv [--farm farm.toml] [--models a,b]
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from modelfarm.errors import FarmError
from modelfarm.routing.learned.outcomes import Outcomes, OutcomesError, read_outcomes

if TYPE_CHECKING:  # the heavy modules load when a command runs, not when `modelfarm` starts
    from modelfarm.routing.learned.evaluation import Evaluation
    from modelfarm.routing.learned.model import QualityRouter

app = typer.Typer(
    help="Learned quality router: train on outcomes CSVs, score prompts, evaluate (APGR, CPT, curves).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
EMBED_BATCH = 64  # texts per embedding call: one progress step

DataOpt = Annotated[list[Path], typer.Option("--data", help="Outcomes CSV (prompt, score__<model>, ...).")]
OptionalDataOpt = Annotated[
    list[Path] | None, typer.Option("--data", help="Outcomes CSV (prompt, score__<model>, ...); repeatable.")
]
RouterOpt = Annotated[Path, typer.Option("--router", help="Router file written by `train`.")]
ThreadsOpt = Annotated[int, typer.Option(help="CPU threads for the embedding model.")]


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr)


def _fail(exc: FarmError) -> typer.Exit:
    _console(stderr=True).print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
    return typer.Exit(2)


def _read(paths: list[Path], *, need_scores: bool) -> Outcomes:
    try:
        return read_outcomes(paths, need_scores=need_scores)
    except FarmError as exc:
        raise _fail(exc) from exc


def embed(texts: list[str], threads: int, kind: str = "full") -> np.ndarray:
    """(N, 384) MiniLM embeddings of `kind` (full encoder or static vectors), with a progress bar."""
    from modelfarm.models.embedding import default_embedder

    backend = default_embedder(threads=threads)
    embedder = backend.static() if kind == "static" else backend
    parts = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task("embedding prompts", total=len(texts))
        for start in range(0, len(texts), EMBED_BATCH):
            parts.append(embedder.encode(texts[start : start + EMBED_BATCH]))
            progress.advance(task, len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)


def _parse_costs(items: list[str]) -> dict[str, float]:
    costs = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            costs[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: write MODEL=USD_PER_1M, e.g. gpt-4o=10", param_hint="--cost") from None
    return costs


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Router file to write (JSON).")],
    data: OptionalDataOpt = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Models to route between, cheap to expensive, comma-separated.")
    ] = None,
    cost: Annotated[
        list[str] | None, typer.Option("--cost", help="MODEL=USD_PER_1M tokens, when the data has no cost__ columns.")
    ] = None,
    threads: ThreadsOpt = 2,
    from_ledger: Annotated[
        bool, typer.Option("--from-ledger", help="Also learn from the ledger's feedback and cascade outcomes.")
    ] = False,
    ledger: Annotated[Path | None, typer.Option("--ledger", help="Ledger file (default: the farm's).")] = None,
    embedding: Annotated[
        str,
        typer.Option(
            "--embedding",
            help="MiniLM vectors to learn from: 'static' (its token vectors, ~1 ms a prompt when routing) or "
            "'full' (the encoder, 10-50 ms on CPU). On RouteLLM's MMLU and GSM8K outcomes both route "
            "equally well (APGR within 0.01).",
        ),
    ] = "static",
) -> None:
    """Fit a quality router: one calibrated quality model per model in the data."""
    from modelfarm.ledger import default_ledger_path
    from modelfarm.routing.learned.from_ledger import merge, outcomes_from_ledger
    from modelfarm.routing.learned.model import EMBEDDINGS
    from modelfarm.routing.learned.training import train as fit

    console = _console()
    if not data and not from_ledger:
        raise _fail(OutcomesError("give --data FILE.csv (repeatable), --from-ledger, or both"))
    parts = [_read(data, need_scores=True)] if data else []
    if from_ledger:
        try:
            parts.append(outcomes_from_ledger(ledger or default_ledger_path()))
        except FarmError as exc:
            raise _fail(exc) from exc
    if embedding not in EMBEDDINGS:
        raise typer.BadParameter(f"{embedding!r}: use one of {', '.join(EMBEDDINGS)}", param_hint="--embedding")
    outcomes = parts[0] if len(parts) == 1 else merge(parts)
    embeddings = embed(outcomes.texts, threads, embedding)
    chosen = [m.strip() for m in models.split(",")] if models else None
    with console.status("training") as status:
        try:
            router = fit(
                outcomes, embeddings, models=chosen, costs=_parse_costs(cost or []), embedding=embedding,
                progress=lambda step: status.update(f"training: {step}"),
            )  # fmt: skip
        except FarmError as exc:
            raise _fail(exc) from exc
    router.info["data"] = [p.name for p in data or []] + (["ledger"] if from_ledger else [])
    router.save(out)
    table = Table(title=f"router {out} ({len(outcomes)} rows)")
    for column in ("model", "price", "mean quality", "predicted"):
        table.add_column(column, justify="left" if column == "model" else "right")
    real = np.nanmean(outcomes.select(router.models).quality, axis=0)
    for j, m in enumerate(router.models):
        predicted = router.calibration[:, j].mean()
        table.add_row(m, f"{router.costs[j]:g}", f"{real[j]:.3f}", f"{predicted:.3f}")
    console.print(table)
    shares = ", ".join(
        f"{int(100 * s)}% -> {router.calibrate_share(router.calibration, s):.3f}" for s in (0.2, 0.5, 0.8)
    )
    console.print(f"targets for a {router.models[-1]} share of {shares}", highlight=False)


def _load(path: Path) -> QualityRouter:
    from modelfarm.routing.learned.model import QualityRouter

    try:
        return QualityRouter.load(path)
    except FarmError as exc:
        raise _fail(exc) from exc


@app.command()
def score(
    router_path: RouterOpt,
    data: DataOpt,
    strong: Annotated[str, typer.Option("--strong", help="The model whose need is scored.")],
    out: Annotated[Path, typer.Option("--out", help="CSV to write: id,score (higher = needs MODEL more).")],
    threads: ThreadsOpt = 2,
) -> None:
    """Score each prompt: how much it needs the `--strong` model (RouteLLM's convention)."""
    router = _load(router_path)
    outcomes = _read(data, need_scores=False)
    if strong not in router.models:
        raise _fail(OutcomesError(f"--strong {strong!r} is not in this router; it knows {', '.join(router.models)}"))
    scores = router.strong_score(embed(outcomes.texts, threads, router.embedding), outcomes.texts, strong)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "score"])
        writer.writerows((i, f"{s:.6f}") for i, s in zip(outcomes.ids, scores, strict=True))
    _console().print(f"wrote {len(scores)} scores to {out}", highlight=False)


@app.command("eval")
def evaluate(
    router_path: RouterOpt,
    data: DataOpt,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG file for the curves.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    threads: ThreadsOpt = 2,
) -> None:
    """Evaluate on unseen outcomes: APGR and CPT (two models) or cost/quality curves (N models).

    Random and oracle routing are scored beside the router, on the same rows.
    """
    from modelfarm.routing.learned.evaluation import evaluate as run_eval

    router = _load(router_path)
    outcomes = _read(data, need_scores=True)
    try:
        vectors = embed(outcomes.texts, threads, router.embedding)
        result = run_eval(router, outcomes, router.predict(vectors, outcomes.texts))
    except FarmError as exc:
        raise _fail(exc) from exc
    if plot is not None:
        _plot(result, plot)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    console = _console()
    if result.pair is not None:
        table = Table(title=f"{router.models[1]} vs {router.models[0]}: {result.rows} rows")
        for column in ("method", "APGR", "CPT(50%)", "CPT(80%)"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for name, s in result.pair.items():
            table.add_row(name, f"{s.apgr:.3f}", f"{100 * s.cpt50:.1f}%", f"{100 * s.cpt80:.1f}%")
    else:
        assert result.multi is not None
        table = Table(title=f"{len(router.models)} models: {result.rows} rows")
        table.add_column("method")
        table.add_column("area gain", justify="right")
        for name, m in result.multi.items():
            table.add_row(name, f"{m.area_gain:.3f}")
    console.print(table)
    if plot is not None:
        console.print(f"wrote {plot}", highlight=False)


def _plot(result: Evaluation, path: Path) -> None:
    from modelfarm.routing.learned.plot import plot_curves

    if result.pair is not None:
        curves = {name: s.curve for name, s in result.pair.items()}
        xlabel = f"calls to {result.models[-1]} (%)"
    else:
        assert result.multi is not None
        curves = {name: m.curve for name, m in result.multi.items()}
        xlabel = "cost (% of the way from all-cheapest to all-most-expensive)"
    plot_curves(path, curves, title="router quality", xlabel=xlabel, references=result.single)


@app.command()
def collect(
    prompts: Annotated[Path, typer.Option("--prompts", help='JSON lines: {"prompt": ..., "answer": ...} each.')],
    out: Annotated[Path, typer.Option("--out", help="Outcomes CSV to write (appended to, to resume a run).")],
    farm: Annotated[
        Path | None, typer.Option("--farm", "-f", help="farm.toml (default: the built-in default farm).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Models to run, comma-separated (default: every chat model, cheapest first)."),
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest answer per model.")] = 160,
) -> None:
    """Run the farm's models on graded prompts and write their outcomes, to train a router on.

    A number answer is right when it is the reply's last number; another answer, when it is a whole word of it.

    Rows are written as they finish: run the same command again to resume a stopped run.
    """
    from modelfarm.manifest import load_manifest
    from modelfarm.models.pool import Pool
    from modelfarm.routing.learned.collect import collect as run_collect
    from modelfarm.routing.learned.collect import read_graded
    from modelfarm.routing.router import Router

    try:
        manifest = load_manifest(farm)
        graded = read_graded(prompts)
    except FarmError as exc:
        raise _fail(exc) from exc
    pool = Pool(manifest)
    chat = [m.name for m in Router(manifest, pool).chat_models]
    chosen = [m.strip() for m in models.split(",")] if models else chat
    unknown = [m for m in chosen if m not in chat]
    if unknown:
        raise _fail(OutcomesError(f"--models: {', '.join(unknown)} not a chat model of this farm ({', '.join(chat)})"))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())

    async def run() -> int:
        try:
            with Progress(*columns, console=_console(stderr=True)) as progress:
                task = progress.add_task(f"answering with {', '.join(chosen)}", total=len(graded))
                return await run_collect(
                    pool, chosen, graded, out, max_tokens=max_tokens, progress=lambda n: progress.advance(task, n)
                )
        finally:
            await pool.aclose()

    try:
        written = asyncio.run(run())
    except FarmError as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt:
        _console(stderr=True).print(f"stopped: finished rows are in {out}; run the same command to resume")
        raise typer.Exit(130) from None
    _console().print(f"wrote {written} new rows to {out} ({len(graded)} prompts)", highlight=False)
