"""What the gateway itself costs: modelfarm's `openai` backend vs LiteLLM's proxy vs no gateway.

All three serve the same instant fake OpenAI backend (`shared/bench/fake_openai.py`), so the
figures measure the gateways, not a model:

- direct:    load generator -> fake backend
- modelfarm: load generator -> `modelfarm serve` (two `openai` models, small-a and small-b) -> fake
- litellm:   load generator -> LiteLLM proxy (1 worker, `shared/bench/litellm_config.yaml`) -> fake

Load comes from `shared/bench/loadgen.py` (bounded closed loop, one JSON line per run), at
concurrency 1 and 16, plus a streaming run at concurrency 16. Each measured run is preceded by a
short pilot run at the same settings that warms the server up and sizes the measured run to about
`--seconds` seconds (never more than `--max-n` requests, nor longer than `--deadline` seconds).

Server CPU per request: utime + stime of the server's whole process group (its workers included),
read from /proc before and after the measured run, divided by the requests sent. Added latency:
gateway p50 minus the p50 of a direct run made just before it, at the same settings. The gateways
run one at a time. The machine may be shared: a measured run during which other processes took more
than --max-disturbance of the machine (read from /proc) is run again, at most --retries times.

Ratios printed (targets in brackets):
  cpu_ratio    = modelfarm CPU/request / LiteLLM CPU/request at concurrency 16   [<= 0.2]
  added_p50_ms = modelfarm p50 - direct p50 at concurrency 1                      [<= 3 ms]

LiteLLM runs from its own virtual environment (never the project's):
  python3.11 -m venv benchmarks/.venv-litellm && benchmarks/.venv-litellm/bin/pip install 'litellm[proxy]'
Without it the LiteLLM column is skipped. Everything listens on 127.0.0.1 only, and every process
started here is stopped on exit. Linux only.

usage: python benchmarks/gateway_overhead.py [--seconds 6] [--json] [--litellm PATH] [--shared DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import (
    LOOPBACK,
    REPO,
    Disturbance,
    Server,
    add_quiet_options,
    default_python,
    eprint,
    free_port,
    git_state,
    noise_note,
    running,
    stop_on_sigterm,
    table,
    wait_quiet,
)

MODELS = "small-a,small-b"
DEFAULT_LITELLM = REPO / "benchmarks" / ".venv-litellm" / "bin" / "litellm"
LITELLM_HOWTO = (
    "python3.11 -m venv benchmarks/.venv-litellm && benchmarks/.venv-litellm/bin/pip install 'litellm[proxy]'"
)
TARGET_CPU_RATIO = 0.2
TARGET_ADDED_P50_MS = 3.0


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    conc: int
    stream: bool


SCENARIOS = (Scenario("c1", 1, False), Scenario("c16", 16, False), Scenario("stream_c16", 16, True))


@dataclass(slots=True)
class Target:
    """A server the load generator talks to, with what it needs in the request."""

    name: str
    url: str
    server: Server
    headers: tuple[str, ...] = ()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Gateway overhead: modelfarm vs LiteLLM proxy vs direct, on a fake OpenAI backend.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--shared",
        type=Path,
        default=REPO.parent / "shared",
        help="the shared folder that holds bench/fake_openai.py, bench/loadgen.py, bench/litellm_config.yaml",
    )
    ap.add_argument(
        "--litellm",
        type=Path,
        default=None,
        help=f"the `litellm` executable (default: {DEFAULT_LITELLM} if present, else skip LiteLLM)",
    )
    ap.add_argument("--python", default=default_python(), help="Python that runs modelfarm and the tools")
    ap.add_argument("--seconds", type=float, default=6.0, help="target length of each measured run")
    ap.add_argument("--pilot", type=int, default=100, help="requests in the warm-up/sizing run")
    ap.add_argument("--min-n", type=int, default=200, help="fewest requests in a measured run")
    ap.add_argument("--max-n", type=int, default=20000, help="most requests in a measured run")
    ap.add_argument("--deadline", type=float, default=30.0, help="hard stop for one measured run (s)")
    ap.add_argument("--no-stream", action="store_true", help="skip the streaming run")
    add_quiet_options(ap, what="a disturbed measurement", retries=2)
    return ap.parse_args(argv)


def loadgen(args: argparse.Namespace, target: Target, scenario: Scenario, n: int, deadline: float) -> dict[str, Any]:
    """Run loadgen.py once (no warm-up of its own) and return its JSON line."""
    cmd = [
        args.python,
        str(args.shared / "bench" / "loadgen.py"),
        "--url",
        target.url,
        "--n",
        str(n),
        "--conc",
        str(scenario.conc),
        "--models",
        MODELS,
        "--warmup",
        "0",
        "--deadline",
        str(deadline),
        "--timeout",
        "30",
        "--label",
        f"{target.name}/{scenario.key}",
    ]
    if scenario.stream:
        cmd.append("--stream")
    for header in target.headers:
        cmd += ["--header", header]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline + 90, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(args: argparse.Namespace, target: Target, scenario: Scenario, fake: Server) -> dict[str, Any]:
    """Pilot (warm-up + sizing), then one measured run with the server's CPU read around it.

    A measured run during which other processes took more than --max-disturbance of the machine
    is run again (at most --retries times); the share is kept in the result as `disturbance`.
    """
    pilot = loadgen(args, target, scenario, args.pilot, args.deadline)
    if not pilot["ok"]:
        raise RuntimeError(
            f"{target.name}: every pilot request failed ({pilot['error_kinds']}); "
            f"server log:\n{target.server.log_tail()}"
        )
    rps = pilot["rps"] or 1.0
    n = int(min(args.max_n, max(args.min_n, rps * args.seconds)))
    servers = [fake] if target.server is fake else [fake, target.server]
    for attempt in range(args.retries + 1):
        meter = Disturbance(servers)
        cpu0 = target.server.cpu_seconds()
        run = loadgen(args, target, scenario, n, args.deadline)
        cpu1 = target.server.cpu_seconds()
        share = meter.share()
        if share <= args.max_disturbance or attempt == args.retries:
            break
        eprint(f"  {target.name} {scenario.key}: other processes took {share:.0%} of the machine; running it again")
        wait_quiet(args.max_busy, 30)
    sent = max(run["n_sent"], 1)
    run["cpu_ms_per_req"] = round((cpu1 - cpu0) * 1000 / sent, 3)
    run["target"], run["scenario"] = target.name, scenario.key
    run["disturbance"], run["attempts"] = round(share, 3), attempt + 1
    eprint(
        f"  {target.name:9s} {scenario.key:10s} n={run['n_sent']:5d} rps={run['rps']:8.1f} "
        f"p50={run['p50_ms']:7.2f} ms  cpu={run['cpu_ms_per_req']:.3f} ms/req  errors={run['errors']}  "
        f"other processes {share:.0%}"
    )
    return run


def start_modelfarm(args: argparse.Namespace, tmp: Path, fake_port: int) -> Target:
    farm = tmp / "farm.toml"
    models = "".join(
        f"""
[[models]]
name = "{name}"
backend = "openai"
base_url = "http://{LOOPBACK}:{fake_port}/v1"
tier = "local"
max_concurrency = 64
max_queue = 1000
"""
        for name in MODELS.split(",")
    )
    farm.write_text(f'[farm]\nname = "bench-overhead"\n{models}', encoding="utf-8")
    port = free_port()
    env = dict(os.environ)
    env.pop("MODELFARM_API_KEYS", None)
    argv = [args.python, "-m", "modelfarm", "serve", "--farm", str(farm), "--host", LOOPBACK]
    argv += ["--port", str(port), "--ledger", str(tmp / "ledger.db")]
    server = Server("modelfarm", argv, tmp / "modelfarm.log", env=env)
    target = Target("modelfarm", f"http://{LOOPBACK}:{port}/v1/chat/completions", server)
    return target


def start_litellm(litellm: Path, args: argparse.Namespace, tmp: Path, fake_port: int) -> Target:
    template = (args.shared / "bench" / "litellm_config.yaml").read_text(encoding="utf-8")
    if f"{LOOPBACK}:9100" not in template:
        raise RuntimeError("litellm_config.yaml no longer points at 127.0.0.1:9100; update this script")
    config = tmp / "litellm_config.yaml"
    config.write_text(template.replace(f"{LOOPBACK}:9100", f"{LOOPBACK}:{fake_port}"), encoding="utf-8")
    key = "sk-bench-" + secrets.token_hex(8)
    env = dict(os.environ, LITELLM_MASTER_KEY=key, LITELLM_LOCAL_MODEL_COST_MAP="True")
    port = free_port()
    argv = [str(litellm), "--config", str(config), "--host", LOOPBACK, "--port", str(port)]
    argv += ["--num_workers", "1"]
    server = Server("litellm", argv, tmp / "litellm.log", env=env)
    url = f"http://{LOOPBACK}:{port}/v1/chat/completions"
    return Target("litellm", url, server, (f"Authorization: Bearer {key}",))


def litellm_version(litellm: Path) -> str | None:
    python = litellm.parent / "python"
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout.strip() or None


def find_litellm(option: Path | None) -> Path | None:
    if option is not None:
        if not option.exists():
            raise SystemExit(f"--litellm {option}: no such file")
        return option
    if DEFAULT_LITELLM.exists():
        return DEFAULT_LITELLM
    eprint(
        f"LiteLLM not found at {DEFAULT_LITELLM}: skipping the LiteLLM column (no cpu_ratio).\n"
        f"  to include it: {LITELLM_HOWTO}\n  or pass --litellm PATH"
    )
    return None


def summarize(runs: list[dict[str, Any]], scenarios: tuple[Scenario, ...]) -> dict[str, Any]:
    """CPU per request per target, added p50 against the paired direct run, and the ratios."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    added: dict[str, dict[str, float]] = {}
    for run in runs:
        by[(run["target"], run["scenario"])] = run
    for run in runs:
        if run["target"] != "direct":
            base = run["paired_direct"]
            added.setdefault(run["target"], {})[run["scenario"]] = round(run["p50_ms"] - base["p50_ms"], 2)
    cpu: dict[str, dict[str, float]] = {}
    for (target, scenario), run in by.items():
        cpu.setdefault(target, {})[scenario] = run["cpu_ms_per_req"]
    out: dict[str, Any] = {
        "cpu_ms_per_req": cpu,
        "added_p50_ms_by_scenario": added,
        "added_p50_ms": added.get("modelfarm", {}).get("c1"),
        "litellm_added_p50_ms": added.get("litellm", {}).get("c1"),
    }
    ratios: dict[str, float] = {}
    if "litellm" in cpu:
        for s in scenarios:
            mf, ll = cpu["modelfarm"].get(s.key), cpu["litellm"].get(s.key)
            if mf is not None and ll:
                ratios[s.key] = round(mf / ll, 3)
    out["cpu_ratio_by_scenario"] = ratios
    out["cpu_ratio"] = ratios.get("c16")
    out["targets"] = {"cpu_ratio_max": TARGET_CPU_RATIO, "added_p50_ms_max": TARGET_ADDED_P50_MS}
    out["meets"] = {
        "cpu_ratio": None if out["cpu_ratio"] is None else out["cpu_ratio"] <= TARGET_CPU_RATIO,
        "added_p50_ms": None if out["added_p50_ms"] is None else out["added_p50_ms"] <= TARGET_ADDED_P50_MS,
    }
    return out


def report(runs: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    rows = []
    for run in runs:
        base = run.get("paired_direct")
        rows.append(
            [
                run["target"],
                run["scenario"],
                run["n_sent"],
                run["errors"],
                run["rps"],
                run["p50_ms"],
                run["p99_ms"],
                run.get("ttfb_p50_ms"),
                run["cpu_ms_per_req"],
                None if base is None else round(run["p50_ms"] - base["p50_ms"], 2),
                f"{run['disturbance']:.0%}",
            ]
        )
    headers = [
        "target",
        "scenario",
        "n",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "ttfb p50",
        "cpu ms/req",
        "added p50",
        "other cpu",
    ]
    lines = [table(headers, rows), ""]
    ratio = summary["cpu_ratio"]
    if ratio is not None:
        verdict = "meets" if ratio <= TARGET_CPU_RATIO else "MISSES"
        lines.append(
            f"cpu_ratio (modelfarm/litellm CPU per request, c16) = {ratio:.3f}  "
            f"[target <= {TARGET_CPU_RATIO}: {verdict}]"
        )
        for key, value in summary["cpu_ratio_by_scenario"].items():
            lines.append(f"  cpu_ratio {key:10s} = {value:.3f}")
    else:
        lines.append("cpu_ratio: not measured (LiteLLM skipped)")
    added = summary["added_p50_ms"]
    verdict = "meets" if added is not None and added <= TARGET_ADDED_P50_MS else "MISSES"
    lines.append(
        f"added_p50_ms (modelfarm p50 - direct p50, c1) = {added:.2f} ms  "
        f"[target <= {TARGET_ADDED_P50_MS} ms: {verdict}]"
    )
    if summary["litellm_added_p50_ms"] is not None:
        lines.append(f"  litellm added p50 at c1 = {summary['litellm_added_p50_ms']:.2f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    bench = args.shared / "bench"
    for name in ("fake_openai.py", "loadgen.py"):
        if not (bench / name).exists():
            raise SystemExit(f"{bench / name} not found; pass --shared DIR (the folder that holds bench/)")
    args.shared = args.shared.resolve()
    litellm = find_litellm(args.litellm)
    scenarios = tuple(s for s in SCENARIOS if not (args.no_stream and s.stream))
    runs: list[dict[str, Any]] = []
    busy_before = wait_quiet(args.max_busy, args.wait_quiet)
    with tempfile.TemporaryDirectory(prefix="modelfarm-bench-") as tmp_name, running([]) as servers:
        tmp = Path(tmp_name)
        fake_port = free_port()
        fake_argv = [args.python, str(bench / "fake_openai.py"), "--host", LOOPBACK, "--port", str(fake_port)]
        fake = Server("fake backend", fake_argv, tmp / "fake.log")
        servers.append(fake)
        fake.wait_ready(f"http://{LOOPBACK}:{fake_port}/health", 30)
        direct = Target("direct", f"http://{LOOPBACK}:{fake_port}/v1/chat/completions", fake)

        gateways: list[tuple[str, Any]] = [("modelfarm", lambda: start_modelfarm(args, tmp, fake_port))]
        if litellm is not None:
            gateways.append(("litellm", lambda: start_litellm(litellm, args, tmp, fake_port)))
        for name, start in gateways:
            eprint(f"starting {name} ...")
            target: Target = start()
            servers.append(target.server)
            health = "/healthz" if name == "modelfarm" else "/health/liveliness"
            target.server.wait_ready(target.url.split("/v1/")[0] + health, 240)
            for scenario in scenarios:
                base = measure(args, direct, scenario, fake)
                runs.append(base)
                gw = measure(args, target, scenario, fake)
                gw["paired_direct"] = {"p50_ms": base["p50_ms"], "rps": base["rps"]}
                runs.append(gw)
            # Stop it before the next gateway, so an idle server does not share the two cores.
            target.server.stop()
            servers.remove(target.server)

    summary = summarize(runs, scenarios)
    result = {
        "benchmark": "gateway_overhead",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "litellm_version": litellm_version(litellm) if litellm else None,
        "busy_before": round(busy_before, 3),
        "reruns": sum(r["attempts"] - 1 for r in runs),
        **summary,
        "runs": runs,
    }
    if not args.json:
        print(report(runs, summary))
        reruns = sum(r["attempts"] - 1 for r in runs)
        print(noise_note([r["disturbance"] for r in runs], reruns, args.max_disturbance))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
