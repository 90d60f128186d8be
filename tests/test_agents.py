"""Agents: plans, parallel execution, retries, fallback, re-plans, traces, CLI and HTTP.

Models here are members of type `openai` pointing at a scripted stand-in server (tests/
agent_server.py) that speaks the public wire protocol, so every call goes through the real
gateway path (router, pool limits, ledger). The inbox example on the real local models is in
tests/test_agents_inbox.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelfarm.agents.calls import Reply, ServiceCaller
from modelfarm.agents.plan import PlanError, parse_plan
from modelfarm.agents.run import AgentRuns
from modelfarm.agents.trace import Event, RunTrace
from modelfarm.errors import ConfigError, InvalidRequestError, ManifestError
from modelfarm.ledger import Ledger
from modelfarm.manifest import Manifest, parse_manifest
from modelfarm.models.pool import Pool
from modelfarm.routing.router import Router
from modelfarm.serve.metrics import Metrics
from modelfarm.serve.service import Service
from tests.agent_server import ScriptedServer, plan
from tests.conftest import free_port, run_cli, start_gateway

AGENTS = ["reader", "checker", "coder", "writer"]


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer(free_port()).start()
    yield srv
    srv.stop()


def farm_text(server: ScriptedServer, dead_port: int, **orchestration: object) -> str:
    models = "".join(
        f'[[models]]\nname = "{name}"\nrole = "{role}"\nbackend = "openai"\nbase_url = "{server.base_url}"\n'
        f"max_concurrency = 8\ntimeout = 10\nprice_out = 1.0\n\n"
        for name, role in (("brain", "brain"), ("w1", "specialist"), ("w2", "specialist"))
    )
    models += (
        f'[[models]]\nname = "dead"\nbackend = "openai"\nbase_url = "http://127.0.0.1:{dead_port}/v1"\ntimeout = 2\n\n'
    )
    settings = {"retries": 1, "backoff": 0.05, "step_timeout": 5, **orchestration}
    orch = "[orchestration]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()) + "\n"
    agents = (
        '[[agents]]\nname = "reader"\ndescription = "Reads the mailbox."\nmodel = "w1"\n\n'
        '[[agents]]\nname = "checker"\ndescription = "Checks prices against the market table."\nmodel = "w2"\n\n'
        '[[agents]]\nname = "coder"\ndescription = "Writes and fixes code."\nmodel = "dead"\nfallback = "w2"\n\n'
        '[[agents]]\nname = "writer"\ndescription = "Writes summaries."\nmodel = "w1"\n'
        'tools = ["read_file"]\ntool_args = { read_file = { path = "notes.txt" } }\n'
    )
    return '[farm]\nname = "agents-test"\n\n' + orch + models + agents


def make_farm(tmp_path: Path, server: ScriptedServer, dead_port: int, **orchestration: object) -> Manifest:
    (tmp_path / "notes.txt").write_text("Meeting notes: the budget is 42 dollars.")
    return parse_manifest(farm_text(server, dead_port, **orchestration), source=tmp_path / "farm.toml")


async def run_task(manifest: Manifest, ledger: Path, task: str = "do the task") -> tuple[RunTrace, list[Event]]:
    pool = Pool(manifest)
    book = Ledger(ledger)
    events: list[Event] = []
    try:
        runs = AgentRuns(manifest, ServiceCaller(Service(pool, book, Metrics(pool), Router(manifest, pool))), book)
        return await runs.run(task, emit=events.append), events
    finally:
        await pool.aclose()
        book.close()


def overlaps(a: dict[str, object], b: dict[str, object]) -> bool:
    return float(a["start"]) < float(b["end"]) and float(b["start"]) < float(a["end"])  # type: ignore[arg-type]


# -- plans ------------------------------------------------------------------------------


def test_plan_checks_say_what_to_fix() -> None:
    ok = plan(("s1", "reader", "read", []), ("s2", "checker", "check", ["s1"]))
    assert [s.id for s in parse_plan(ok, AGENTS, max_steps=8, max_depth=4).steps] == ["s1", "s2"]
    cases = {
        plan(("s1", "reader", "a", ["s2"]), ("s2", "checker", "b", ["s1"])): "cycle",
        plan(("s1", "ghost", "a", [])): "does not exist",
        plan(("s1", "reader", "a", ["s9"])): "not steps of this plan",
        plan(("s1", "reader", "a", ["s1"])): "itself",
        plan(("s1", "reader", "a", []), ("s1", "coder", "b", [])): "more than once",
        plan(*[(f"s{i}", "reader", "a", [f"s{i - 1}"] if i > 1 else []) for i in range(1, 6)]): "deep",
        plan(*[(f"s{i}", "reader", "a", []) for i in range(9)]): "at most 8",
        "I think we should read the mail first.": "not JSON",
        '{"steps": []}': "no steps",
    }
    for text, expected in cases.items():
        with pytest.raises(PlanError, match=expected):
            parse_plan(text, AGENTS, max_steps=8, max_depth=4)


def test_plan_json_is_found_inside_prose_and_fences() -> None:
    inner = plan(("s1", "reader", "read", []))
    for text in (f"Here is the plan:\n```json\n{inner}\n```", f"Sure! {inner} Done."):
        assert parse_plan(text, AGENTS, max_steps=8, max_depth=4).steps[0].agent == "reader"


def test_manifest_refuses_bad_agents(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    base = farm_text(server, dead_port)
    with pytest.raises(ManifestError, match="not a chat model or policy"):
        parse_manifest(base.replace('model = "w2"\n', 'model = "nope"\n', 1))
    with pytest.raises(ManifestError, match="not among its tools"):
        parse_manifest(base.replace("tool_args = { read_file", "tool_args = { calculate"))
    with pytest.raises(ManifestError, match="used twice"):
        parse_manifest(base + '\n[[agents]]\nname = "reader"\ndescription = "again"\n')
    manifest = parse_manifest(base.replace('tools = ["read_file"]', 'tools = ["read_file", "no_such_tool"]'))
    with pytest.raises(ConfigError, match="no_such_tool"):
        AgentRuns(manifest.model_copy(update={"source": tmp_path / "farm.toml"}), _never_called)


async def _never_called(model: str, messages: list[dict[str, str]], **options: object) -> Reply:
    raise AssertionError("no model call expected")


# -- runs -------------------------------------------------------------------------------


def test_parallel_branches_overlap_and_inputs_reach_dependants(
    tmp_path: Path, server: ScriptedServer, dead_port: int
) -> None:
    server.reset(
        plan(
            ("s1", "reader", "branch one sleep=0.6", []),
            ("s2", "checker", "branch two sleep=0.6", []),
            ("s3", "reader", "branch three sleep=0.6", []),
            ("s4", "checker", "branch four sleep=0.6", []),
            ("s5", "reader", "join the four", ["s1", "s2", "s3", "s4"]),
        )
    )
    t0 = time.monotonic()
    trace, events = asyncio.run(run_task(make_farm(tmp_path, server, dead_port), tmp_path / "l.db"))
    wall = time.monotonic() - t0
    assert trace.status == "ok" and trace.plan_source == "planned"
    steps = {s.id: s.as_dict() for s in trace.steps}
    assert all(steps[a]["status"] == "ok" for a in steps)
    for a, b in (("s1", "s2"), ("s1", "s3"), ("s2", "s4"), ("s3", "s4")):
        assert overlaps(steps[a], steps[b]), (steps[a], steps[b])
    assert wall < 4 * 0.6  # one after another would take 2.4 s of sleeping alone
    assert float(steps["s5"]["start"]) >= max(float(steps[s]["end"]) for s in ("s1", "s2", "s3", "s4"))
    join = next(r for r in server.steps if r["instruction"] == "join the four")
    for text in ("w1 did: branch one", "w2 did: branch two", "w1 did: branch three", "w2 did: branch four"):
        assert text in join["user"]
    assert trace.answer is not None and "[s5]" in trace.answer and "s5" in trace.sources
    kinds = [e.type for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "answer" and kinds.count("step_finished") == 5


def test_invalid_plan_is_repaired_once_then_replaced(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    farm = make_farm(tmp_path, server, dead_port)
    server.reset(plan(("s1", "ghost", "x", [])), plan(("s1", "reader", "read it", [])))
    trace, _ = asyncio.run(run_task(farm, tmp_path / "l.db"))
    assert trace.plan_source == "repaired" and len(trace.plan_attempts) == 1
    assert "ghost" in trace.plan_attempts[0]["error"]
    repair = server.plan_requests[1]["messages"][-1]["content"]
    assert "invalid" in repair and "ghost" in repair  # the planner is told what to fix

    cycle = plan(("s1", "reader", "a", ["s2"]), ("s2", "checker", "b", ["s1"]))
    server.reset(cycle, cycle)
    trace, _ = asyncio.run(run_task(farm, tmp_path / "l.db", "summarize the notes"))
    assert trace.plan_source == "fallback" and [s.id for s in trace.steps] == ["s1"]
    assert trace.steps[0].agent == "writer"  # the agent whose description matches the task best
    assert all("cycle" in a["error"] for a in trace.plan_attempts)


def test_retry_then_fallback_model_and_skipped_dependants(
    tmp_path: Path, server: ScriptedServer, dead_port: int
) -> None:
    server.reset(
        plan(
            ("s1", "reader", "flaky step fail=1", []),
            ("s2", "coder", "fix the code", []),
            ("s3", "checker", "always broken fail=9", []),
            ("s4", "writer", "needs the broken one", ["s3"]),
            ("s5", "writer", "needs the one that needs it", ["s4"]),
        )
    )
    trace, events = asyncio.run(run_task(make_farm(tmp_path, server, dead_port), tmp_path / "l.db"))
    s = {st.id: st for st in trace.steps}
    assert s["s1"].status == "ok" and [a["outcome"] for a in s["s1"].attempts] == ["error", "ok"]
    assert s["s2"].status == "ok" and s["s2"].model == "w2"  # `dead` twice, then the fallback
    assert [a["model"] for a in s["s2"].attempts] == ["dead", "dead", "w2"]
    assert s["s3"].status == "failed" and len(s["s3"].attempts) == 2
    assert s["s4"].status == "skipped" and "s3 failed" in (s["s4"].note or "")
    assert s["s5"].status == "skipped" and "s4 was skipped" in (s["s5"].note or "")
    assert trace.status == "ok" and trace.answer is not None  # what worked is still merged
    assert "s3 (checker) failed" in server.merges[-1]
    assert any(e.type == "step_retry" for e in events)


def test_a_failed_step_can_be_replanned(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    farm = make_farm(tmp_path, server, dead_port, on_failure="replan", retries=0)
    server.reset(
        plan(("s1", "reader", "read", []), ("s2", "checker", "broken fail=9", []), ("s3", "writer", "sum", ["s2"])),
        plan(("r1", "writer", "write it from what we have", ["s1"])),
    )
    trace, events = asyncio.run(run_task(farm, tmp_path / "l.db"))
    s = {st.id: st for st in trace.steps}
    assert s["s2"].status == "failed" and s["s3"].status == "skipped"
    assert s["r1"].status == "ok" and "re-planned after s2" in (s["r1"].note or "")
    assert "Steps already done" in server.plan_requests[-1]["messages"][-1]["content"]
    assert any(e.type == "replan" for e in events)


def test_a_replan_may_not_reuse_the_id_of_a_failed_step(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    farm = make_farm(tmp_path, server, dead_port, on_failure="replan", retries=0)
    server.reset(
        plan(("s1", "reader", "read", []), ("s2", "checker", "broken fail=9", []), ("s3", "writer", "sum", ["s2"])),
        plan(("s3", "writer", "reuses a skipped id", ["s1"])),
        plan(("r1", "writer", "a fresh id", ["s1"])),
    )
    trace, _ = asyncio.run(run_task(farm, tmp_path / "l.db"))
    s = {st.id: st for st in trace.steps}
    assert s["s3"].status == "skipped" and s["s3"].instruction == "sum"  # the old record is untouched
    assert s["r1"].status == "ok" and "already" in server.plan_requests[-1]["messages"][-1]["content"]


def test_a_step_past_its_timeout_fails(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    farm = make_farm(tmp_path, server, dead_port, step_timeout=0.3, retries=0)
    server.reset(plan(("s1", "reader", "slow sleep=2", []), ("s2", "checker", "quick", [])))
    t0 = time.monotonic()
    trace, _ = asyncio.run(run_task(farm, tmp_path / "l.db"))
    s = {st.id: st for st in trace.steps}
    assert s["s1"].status == "failed" and "within 0.3 s" in (s["s1"].error or "")
    assert s["s2"].status == "ok" and time.monotonic() - t0 < 2


def test_tool_output_reaches_the_model_and_traces_reach_the_ledger(
    tmp_path: Path, server: ScriptedServer, dead_port: int
) -> None:
    server.reset(plan(("s1", "writer", "summarize the notes", [])))
    trace, _ = asyncio.run(run_task(make_farm(tmp_path, server, dead_port), tmp_path / "l.db"))
    assert "budget is 42 dollars" in server.steps[-1]["user"]
    assert trace.steps[0].tools == [{"name": "read_file", "args": {"path": "notes.txt"}, "ok": True, "chars": 40}]
    db = sqlite3.connect(tmp_path / "l.db")
    run = db.execute("SELECT status, task, tokens_out, cost_usd FROM agent_runs WHERE id = ?", (trace.id,)).fetchone()
    assert run[0] == "ok" and run[1] == "do the task" and run[2] == trace.tokens_out > 0 and run[3] > 0
    step = db.execute("SELECT agent, model, status, start_s, end_s, output FROM agent_steps").fetchone()
    assert step[:3] == ("writer", "w1", "ok") and step[3] < step[4] and step[5].startswith("w1 did")
    calls = db.execute("SELECT COUNT(*) FROM requests WHERE key_id = 'agents'").fetchone()[0]
    assert calls == 2  # the plan and the step (one step: its answer is the answer)


def test_empty_task_and_farm_without_agents_are_refused(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    farm = make_farm(tmp_path, server, dead_port)
    with pytest.raises(InvalidRequestError, match="empty"):
        asyncio.run(run_task(farm, tmp_path / "l.db", "   "))
    with pytest.raises(ConfigError, match="no agents"):
        asyncio.run(run_task(farm.model_copy(update={"agents": []}), tmp_path / "l.db"))


# -- HTTP and CLI ---------------------------------------------------------------------------


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, object] | str]]:
    out: list[tuple[str, dict[str, object] | str]] = []
    kind = "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
            out.append((kind, data if data == "[DONE]" else json.loads(data)))
            kind = "message"
    return out


def test_http_run_streams_its_events_and_can_be_fetched(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    server.reset(plan(("s1", "reader", "one sleep=0.2", []), ("s2", "checker", "two sleep=0.2", [])))
    gw = start_gateway(make_farm(tmp_path, server, dead_port), tmp_path / "l.db")
    try:
        with httpx.stream("POST", gw.base_url + "/agents/runs", json={"task": "two things"}, timeout=30) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = sse_events(r)
        kinds = [k for k, _ in events]
        assert kinds[0] == "run_started" and kinds[-2:] == ["run", "message"] and events[-1][1] == "[DONE]"
        assert {"plan", "step_started", "step_finished", "synthesis", "answer"} <= set(kinds)
        run = events[-2][1]
        assert isinstance(run, dict) and run["status"] == "ok"
        fetched = httpx.get(f"{gw.base_url}/agents/runs/{run['id']}").json()
        assert fetched["answer"] == run["answer"] and [s["status"] for s in fetched["steps"]] == ["ok", "ok"]

        whole = httpx.post(gw.base_url + "/agents/runs", json={"task": "again", "stream": False}, timeout=30)
        assert whole.status_code == 200 and whole.json()["status"] == "ok"
        missing = httpx.get(gw.base_url + "/agents/runs/run-nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "run_not_found"
        bad = httpx.post(gw.base_url + "/agents/runs", json={"task": ""})
        assert bad.status_code == 400 and "task" in bad.json()["error"]["message"]
    finally:
        gw.stop()


def test_http_client_going_away_cancels_the_run(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    server.reset(plan(("s1", "reader", "long sleep=3", []), ("s2", "writer", "after", ["s1"])))
    gw = start_gateway(make_farm(tmp_path, server, dead_port), tmp_path / "l.db")
    try:
        with httpx.stream("POST", gw.base_url + "/agents/runs", json={"task": "slow"}, timeout=30) as r:
            run_id = r.headers["x-modelfarm-run"]
            for line in r.iter_lines():
                if line.startswith("event: step_started"):
                    break  # and hang up
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            status = httpx.get(f"{gw.base_url}/agents/runs/{run_id}").json()["status"]
            if status != "running":
                break
            time.sleep(0.1)
        assert status == "cancelled"
        assert not any(rec["instruction"] == "after" for rec in server.steps)
    finally:
        gw.stop()


def test_cli_prints_the_whole_run_as_json(tmp_path: Path, server: ScriptedServer, dead_port: int) -> None:
    server.reset(
        plan(("s1", "reader", "read", []), ("s2", "checker", "check", []), ("s3", "writer", "w", ["s1", "s2"]))
    )
    farm = tmp_path / "farm.toml"
    farm.write_text(farm_text(server, dead_port))
    (tmp_path / "notes.txt").write_text("notes")
    done = run_cli("agents", "run", "read and check", "--farm", str(farm), "--json", "--ledger", str(tmp_path / "l.db"))
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["plan"]["steps"][2]["inputs"] == ["s1", "s2"]
    assert all(s["start"] is not None and s["end"] > s["start"] and s["model"] for s in run["steps"])
    assert run["answer"].startswith("- Merged s1 [s1]") and run["tokens_out"] > 0 and run["cost"] > 0
    assert run_cli("agents", "run", "--help").stdout.count("--json") == 1
