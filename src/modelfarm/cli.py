"""The `modelfarm` command: serve a farm, chat with it, list its models, read its ledger."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from modelfarm.agents.cli import app as agents_app
from modelfarm.errors import FarmError
from modelfarm.ledger import Ledger, default_ledger_path
from modelfarm.manifest import Manifest, example_manifest_text, load_manifest, parse_duration
from modelfarm.models.factory import prepare
from modelfarm.routing.learned.cli import app as router_app
from modelfarm.senses.cli import app as senses_app
from modelfarm.serve.auth import KeyRing
from modelfarm.sources import default_cache_dir

app = typer.Typer(
    help="Run a model farm (a brain, specialists, micro-models) behind the OpenAI API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(router_app, name="router", help="Train, score and evaluate learned quality routers.")
app.add_typer(agents_app, name="agents", help="Plan a task with the brain and run it on the farm's agents.")
app.add_typer(senses_app, name="senses", help="Run vision, speech and text micro-models on streams; raise alerts.")
console = Console()
err = Console(stderr=True)

FarmOpt = Annotated[
    Path | None, typer.Option("--farm", "-f", help="farm.toml to use (default: the built-in default farm).")
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="A running gateway, e.g. http://127.0.0.1:8000 (default: in-process)."),
]


def _manifest(farm: Path | None) -> Manifest:
    try:
        return load_manifest(farm)
    except FarmError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from exc


def _prepare_files(manifest: Manifest) -> None:
    """Find, assemble and verify every local model file, with progress bars (fast when cached)."""
    cache = (manifest.farm.cache_dir or default_cache_dir()).expanduser()
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        for spec in manifest.models:
            if spec.backend == "openai":
                continue
            task = progress.add_task(f"checking {spec.name}", total=None)

            def step(done: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                prepare(spec, base_dir=manifest.base_dir, cache_dir=cache, threads=1, progress=step)
            except FarmError as exc:
                err.print(f"[red]error:[/red] {escape(exc.message)}")
                raise typer.Exit(2) from exc
            progress.remove_task(task)


@app.command()
def serve(
    farm: FarmOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless you mean it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    preload: Annotated[
        list[str] | None,
        typer.Option("--preload", help="Load this model at start ('*' for all); repeatable."),
    ] = None,
    ledger: Annotated[Path | None, typer.Option(help="SQLite ledger file.")] = None,
    keys_file: Annotated[
        Path | None, typer.Option("--keys-file", help="API keys, one a line (also: MODELFARM_API_KEYS).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Deploy on Ray Serve: one deployment per model, the gateway as ingress "
            "(needs `pip install 'modelfarm\\[ray]'`). Without --address, starts a local Ray on 127.0.0.1.",
        ),
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            help="A running Ray cluster to deploy on, e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001 (implies --ray)."
        ),
    ] = None,
) -> None:
    """Serve the farm behind the OpenAI HTTP API (in this process, or on Ray Serve with --ray)."""
    import uvicorn

    from modelfarm.serve.app import ServeOptions, create_app

    manifest = _manifest(farm)
    if address is None:
        _prepare_files(manifest)
    try:
        keys = KeyRing.from_sources(keys_file)
    except FarmError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from exc
    if ray or address is not None:
        _serve_on_ray(manifest, address, host, port, ledger, keys, tuple(preload or ()))
        return
    url = f"http://{host}:{port}/v1"
    names = ", ".join(m.name for m in manifest.models)
    options = ServeOptions(ledger_path=ledger, keys=keys, preload=tuple(preload or ()))
    application = create_app(manifest, options)
    err.print(
        f"[bold green]modelfarm[/] serving farm [bold]{manifest.farm.name}[/] ({names}) at [bold]{url}[/]",
        soft_wrap=True,
    )
    auth = ' -H "Authorization: Bearer $KEY"' if keys.enabled else ""
    first_chat = next((m.name for m in manifest.models if m.backend != "embedding"), manifest.models[0].name)
    err.print(
        f"try: curl {url}/chat/completions -H 'Content-Type: application/json'{auth} "
        f"""-d '{{"model": "{first_chat}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'""",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)


def _serve_on_ray(
    manifest: Manifest,
    address: str | None,
    host: str,
    port: int,
    ledger: Path | None,
    keys: KeyRing,
    preload: tuple[str, ...],
) -> None:
    """Deploy on Ray Serve, print where, wait for Ctrl-C or SIGTERM, take the app down."""
    import importlib.util
    import signal
    import threading

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.serve") is None:
        err.print("[red]error:[/red] --ray needs Ray Serve: pip install 'modelfarm[ray]'")
        raise typer.Exit(2)
    from modelfarm.cluster.runtime import deploy
    from modelfarm.cluster.settings import GatewaySettings

    ledger_path = (ledger or manifest.farm.ledger or default_ledger_path()).expanduser().resolve()
    where = f"the Ray cluster at {address}" if address else "a local Ray instance (127.0.0.1)"
    err.print(f"starting the farm on {where}; the first start takes 20-30 s ...")
    try:
        farm = deploy(manifest, GatewaySettings(ledger_path, keys, preload), address=address, host=host, port=port)
    except FarmError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from exc
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (nohup, `&`)
        signal.signal(signum, lambda *_: stop.set())
    names = ", ".join(m.name for m in manifest.models)
    err.print(
        f"[bold green]modelfarm[/] serving farm [bold]{manifest.farm.name}[/] ({names}) on Ray Serve at "
        f"[bold]{farm.url}/v1[/]; Ctrl-C stops it",
        soft_wrap=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        err.print("stopping ...")
        farm.stop()


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to ask.")] = "small",
    farm: FarmOpt = None,
    url: UrlOpt = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 256,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
) -> None:
    """Ask one model and stream its answer to the terminal."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        if url:
            _chat_remote(url, model, messages, max_tokens)
        else:
            asyncio.run(_chat_local(_manifest(farm), model, messages, max_tokens))
    except FarmError as exc:
        err.print(f"\n[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc


async def _chat_local(manifest: Manifest, model: str, messages: list[dict[str, str]], max_tokens: int) -> None:
    from modelfarm.models.pool import Pool
    from modelfarm.types import ChatRequest, Message

    pool = Pool(manifest)
    request = ChatRequest([Message(m["role"], m["content"]) for m in messages], max_tokens=max_tokens)
    try:
        with err.status(f"loading {model}..."):
            await pool.preload([model])
        async with pool.lease(model) as backend:
            async for piece in backend.stream(request):
                console.print(piece.text, end="", markup=False, highlight=False, soft_wrap=True)
        console.print()
    finally:
        await pool.aclose()


def _chat_remote(url: str, model: str, messages: list[dict[str, str]], max_tokens: int) -> None:
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True}
    with httpx.stream("POST", url.rstrip("/") + "/v1/chat/completions", json=body, timeout=300) as response:
        if response.status_code >= 400:
            response.read()
            err.print(f"[red]error {response.status_code}:[/red] {response.json()['error']['message']}")
            raise typer.Exit(1)
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:]).get("choices", []):
                    text = choice["delta"].get("content") or ""
                    console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()


@app.command()
def models(farm: FarmOpt = None, url: UrlOpt = None) -> None:
    """List the farm's models (and, from a running gateway, which are loaded)."""
    manifest = _manifest(farm)
    live: dict[str, dict[str, object]] = {}
    if url:
        try:
            data = httpx.get(url.rstrip("/") + "/v1/models", timeout=5).json()["data"]
            live = {m["id"]: m for m in data}
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            err.print(f"[yellow]cannot read {url}: {exc}; showing the manifest only[/]")
    table = Table(title=f"farm {manifest.farm.name}")
    for col in ("name", "role", "backend", "tier", "price in/out $/M", "context", "loaded", "memory"):
        table.add_column(col)
    for m in manifest.models:
        info = live.get(m.name, {})
        loaded = "yes" if info.get("loaded") else ("no" if info else "-")
        mem = info.get("memory_bytes")
        table.add_row(
            m.name,
            m.role,
            m.backend,
            m.tier,
            f"{m.price_in:g}/{m.price_out:g}",
            str(m.context_length),
            loaded,
            f"{int(mem) / 2**20:.0f} MiB" if isinstance(mem, int) and mem else "-",
        )
    console.print(table)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the manifest.")] = Path("farm.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example farm.toml."""
    if path.exists() and not force:
        err.print(f"[red]error:[/red] {path} exists; pass --force to overwrite it")
        raise typer.Exit(1)
    path.write_text(example_manifest_text(), encoding="utf-8")
    console.print(f"wrote {path}; check it with `modelfarm models --farm {path}`")


@app.command()
def ledger(
    db: Annotated[Path | None, typer.Option("--db", help="Ledger file.")] = None,
    since: Annotated[str, typer.Option(help="Only requests this recent: '1h', '7d' style, or 'all'.")] = "all",
    farm: FarmOpt = None,
) -> None:
    """Requests, tokens and cost per model, from the ledger."""
    path = db or (_manifest(farm).farm.ledger if farm else None) or default_ledger_path()
    if not Path(path).exists():
        err.print(f"[yellow]no ledger at {path} yet: serve some requests first[/]")
        raise typer.Exit(0)
    cutoff = 0.0
    if since != "all":
        text = since[:-1] + "h" if since.endswith("d") else since
        factor = 24 if since.endswith("d") else 1
        try:
            cutoff = time.time() - parse_duration(text) * factor
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    book = Ledger(path)
    table = Table(title=f"ledger {path}")
    for col in ("model", "requests", "errors", "tokens in", "tokens out", "cost $", "mean latency ms"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for t in book.totals(cutoff):
        table.add_row(
            t.model,
            str(t.requests),
            str(t.errors),
            str(t.tokens_in),
            str(t.tokens_out),
            f"{t.cost_usd:.6f}",
            f"{t.mean_latency_ms:.1f}",
        )
    book.close()
    console.print(table)


@app.command()
def route(
    prompt: Annotated[str | None, typer.Argument(help="The prompt to route.")] = None,
    farm: FarmOpt = None,
    policy: Annotated[str, typer.Option("--policy", "-p", help="`auto`, `auto:NAME`, or a model name.")] = "auto",
    file: Annotated[
        Path | None, typer.Option("--file", help="JSONL file, one object with a `prompt` field a line.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per prompt.")] = False,
) -> None:
    """Decide which model would answer, and why, without generating anything."""
    prompts: list[str] = []
    if file is not None:
        try:
            for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    item = json.loads(line)
                    if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
                        raise ValueError(f"line {n} has no string `prompt` field")
                    prompts.append(item["prompt"])
        except (OSError, ValueError) as exc:
            err.print(f"[red]error:[/red] {file}: {exc}")
            raise typer.Exit(2) from exc
    if prompt is not None:
        prompts.insert(0, prompt)
    if not prompts:
        err.print("[red]error:[/red] give a PROMPT or --file prompts.jsonl")
        raise typer.Exit(2)
    try:
        asyncio.run(_route(_manifest(farm), policy, prompts, as_json))
    except FarmError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc


async def _route(manifest: Manifest, policy: str, prompts: list[str], as_json: bool) -> None:
    from modelfarm.models.pool import Pool
    from modelfarm.routing.router import Router
    from modelfarm.types import Message

    pool = Pool(manifest)
    router = Router(manifest, pool)
    try:
        for text in prompts:
            decision = await router.decide(policy, [Message("user", text)])
            out = {
                **decision.explain(),
                "sent": [{"role": m.role, "content": m.content} for m in decision.sent(decision.model)],
            }
            if as_json:
                sys.stdout.write(json.dumps(out) + "\n")
                sys.stdout.flush()
            else:
                console.print(f"[bold]{out['model']}[/] ({out['tier']}): {out['reason']}", highlight=False)
                console.print(f"  scores {out['scores']}  pii {out['pii'] or 'none'}", highlight=False)
    finally:
        await pool.aclose()


def main() -> None:
    app()
