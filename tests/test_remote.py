"""An `openai`-backend model pointed at a second gateway, and API keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from modelfarm.manifest import parse_manifest
from modelfarm.serve.auth import KeyRing
from tests.conftest import Gateway, start_gateway

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def relay(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Gateway B, whose `relay` model is the `small` model of gateway A, behind API keys."""
    root = tmp_path_factory.mktemp("relay")
    text = (
        '[[models]]\nname = "relay"\nbackend = "openai"\ntier = "private"\n'
        f'base_url = "{gateway.base_url}"\nremote_model = "small"\nprice_in = 1.0\nprice_out = 2.0\n'
        '[[models]]\nname = "relay-emb"\nbackend = "openai"\n'
        f'base_url = "{gateway.base_url}"\nremote_model = "minilm"\n'
    )
    gw = start_gateway(parse_manifest(text, source=root / "farm.toml"), root / "ledger.db", KeyRing(["k-good"]))
    yield gw
    gw.stop()


def test_keys_are_required_when_configured(relay: Gateway) -> None:
    anon = openai.OpenAI(base_url=relay.base_url, api_key="k-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anon.chat.completions.create(model="relay", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError):
        anon.models.list()
    assert httpx.post(relay.base_url + "/chat/completions", json={}).status_code == 401
    assert httpx.get(relay.url + "/healthz").status_code == 200


def test_chat_and_stream_through_a_remote_member(relay: Gateway) -> None:
    client = openai.OpenAI(base_url=relay.base_url, api_key="k-good", max_retries=0, timeout=60)
    r = client.chat.completions.create(
        model="relay",
        messages=HELLO,
        max_tokens=12,
        temperature=0,
        seed=5,  # type: ignore[arg-type]
    )
    assert r.model == "relay" and (r.choices[0].message.content or "").strip()
    assert r.usage is not None and r.usage.completion_tokens > 0
    pieces = []
    for event in client.chat.completions.create(
        model="relay",
        messages=HELLO,
        max_tokens=12,
        temperature=0,
        seed=5,
        stream=True,  # type: ignore[arg-type]
    ):
        pieces += [c.delta.content or "" for c in event.choices]
    assert "".join(pieces) == r.choices[0].message.content
    from modelfarm.ledger import Ledger

    book = Ledger(relay.ledger)
    rec = book.get(r.id)
    assert rec is not None and rec.key_id and "k-good" not in str(rec)
    assert rec.cost_usd == pytest.approx((rec.tokens_in * 1.0 + rec.tokens_out * 2.0) / 1e6)
    book.close()


def test_embeddings_through_a_remote_member(relay: Gateway) -> None:
    client = openai.OpenAI(base_url=relay.base_url, api_key="k-good", max_retries=0, timeout=60)
    r = client.embeddings.create(model="relay-emb", input=["one", "two"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 384


def test_remote_errors_pass_through(relay: Gateway) -> None:
    client = openai.OpenAI(base_url=relay.base_url, api_key="k-good", max_retries=0, timeout=60)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(
            model="relay",
            messages=[{"role": "user", "content": "word " * 700}],
            max_tokens=4,  # type: ignore[list-item]
        )


def test_missing_key_variable_is_a_clear_503(tmp_path: Path, gateway: Gateway) -> None:
    text = (
        '[[models]]\nname = "needs-key"\nbackend = "openai"\n'
        f'base_url = "{gateway.base_url}"\napi_key_env = "MODELFARM_TEST_UNSET_KEY"\n'
    )
    gw = start_gateway(parse_manifest(text), tmp_path / "l.db")
    try:
        r = httpx.post(gw.base_url + "/chat/completions", json={"model": "needs-key", "messages": HELLO})
        assert r.status_code == 503 and "MODELFARM_TEST_UNSET_KEY" in r.json()["error"]["message"]
    finally:
        gw.stop()
