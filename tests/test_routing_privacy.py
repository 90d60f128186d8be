"""The privacy rule in every path: `auto` and concrete names, JSON and streaming, redaction."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from modelfarm.manifest import parse_manifest
from tests.conftest import Gateway, run_cli, small_model_toml, start_gateway
from tests.echo_server import EchoServer

EMAIL = "maria.gonzalez@posteo.de"
ASK = f"Please write to {EMAIL} about the invoice."


def farm(echo: EchoServer) -> str:
    return (
        '[farm]\nthreads = 2\n\n[privacy]\naction = "keep-local"\ncleared_tier = "local"\n\n'
        '[policies."auto"]\nprefer = "quality"\n\n'
        '[policies."auto:redact"]\nprefer = "quality"\nprivacy = "redact"\n\n'
        '[policies."auto:block"]\nprefer = "quality"\nprivacy = "block"\n\n'
        + small_model_toml("small")
        + f'\n[[models]]\nname = "cloud"\nrole = "brain"\nbackend = "openai"\nbase_url = "{echo.base_url}"\n'
        'tier = "public"\nprice_in = 2.5\nprice_out = 10\n'
    )


@pytest.fixture(scope="module")
def guarded(echo: EchoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("guarded")
    gw = start_gateway(parse_manifest(farm(echo), source=root / "farm.toml"), root / "l.db")
    yield gw
    gw.stop()


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0, timeout=120)


def _sent_to_cloud(echo: EchoServer) -> str:
    return json.dumps(echo.received)


def test_without_pii_the_public_brain_serves(guarded: Gateway, echo: EchoServer) -> None:
    r = _client(guarded).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of Peru?"}]
    )
    assert r.model == "cloud" and "capital of Peru" in (r.choices[0].message.content or "")


def test_keep_local_keeps_pii_off_public_models(guarded: Gateway, echo: EchoServer) -> None:
    echo.received.clear()
    client = _client(guarded)
    r = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": ASK}], max_tokens=8)
    assert r.model == "small"
    info = r.model_dump()["modelfarm"]
    assert info["pii"] == ["EMAIL_ADDRESS"] and "privacy" in info["reason"]
    events = list(
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": ASK}], max_tokens=8, stream=True
        )
    )
    assert events and events[0].model == "small"
    assert echo.received == [], "the public model received a request carrying PII"


def test_a_concrete_public_model_name_does_not_skip_the_guard(guarded: Gateway, echo: EchoServer) -> None:
    echo.received.clear()
    client = _client(guarded)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": ASK}], stream=stream)
        message = info.value.response.json()["error"]["message"]
        assert "EMAIL_ADDRESS" in message and EMAIL not in message
    assert echo.received == []


def test_block_policy_refuses_naming_kinds_not_values(guarded: Gateway) -> None:
    r = httpx.post(
        guarded.base_url + "/chat/completions",
        json={"model": "auto:block", "messages": [{"role": "user", "content": ASK + " My SSN is 123-45-6789."}]},
    )
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "EMAIL_ADDRESS" in message and "US_SSN" in message
    assert EMAIL not in message and "123-45-6789" not in message


def test_redaction_round_trip_json_and_stream(guarded: Gateway, echo: EchoServer) -> None:
    client = _client(guarded)
    echo.received.clear()
    r = client.chat.completions.create(model="auto:redact", messages=[{"role": "user", "content": ASK}])
    assert r.model == "cloud"
    assert EMAIL not in _sent_to_cloud(echo) and "<EMAIL_ADDRESS_1>" in _sent_to_cloud(echo)
    assert r.choices[0].message.content == "You said: " + ASK, "placeholders are put back for the client"

    echo.received.clear()
    text = "".join(
        (e.choices[0].delta.content or "") if e.choices else ""
        for e in client.chat.completions.create(
            model="auto:redact", messages=[{"role": "user", "content": ASK}], stream=True
        )
    )
    assert EMAIL not in _sent_to_cloud(echo)
    assert text == "You said: " + ASK


def test_route_cli_shows_pii_and_what_would_be_sent(echo: EchoServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("route") / "farm.toml"
    path.write_text(farm(echo))
    done = run_cli("route", "--farm", str(path), "--policy", "auto:redact", "--json", ASK)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["model"] == "cloud" and out["pii"] == ["EMAIL_ADDRESS"]
    assert EMAIL not in json.dumps(out["sent"]) and "<EMAIL_ADDRESS_1>" in out["sent"][0]["content"]
