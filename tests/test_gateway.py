"""The gateway through the official openai client, on the real SmolLM2 and MiniLM."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import Gateway

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]


@pytest.fixture()
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=120)


def test_lists_models_with_farm_fields(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {"small", "minilm", "dead", "tampered"} <= set(models)
    small = models["small"].model_dump()
    assert small["role"] == "micro" and small["tier"] == "local"
    assert small["price_in"] == 0 and "loaded" in small


def test_chat_answers_with_usage_and_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="small",
        messages=HELLO,
        max_tokens=24,
        temperature=0,
        seed=1,  # type: ignore[arg-type]
    )
    reply = raw.parse()
    assert raw.headers["x-modelfarm-model"] == "small"
    text = reply.choices[0].message.content or ""
    assert text.strip(), "the model said nothing"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 24


def test_same_seed_same_answer(client: openai.OpenAI) -> None:
    def ask() -> str:
        r = client.chat.completions.create(
            model="small",
            messages=HELLO,
            max_tokens=16,
            temperature=0.9,
            seed=42,  # type: ignore[arg-type]
        )
        return r.choices[0].message.content or ""

    assert ask() == ask()


def test_max_tokens_and_stop(client: openai.OpenAI) -> None:
    msgs = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    r = client.chat.completions.create(model="small", messages=msgs, max_tokens=5, temperature=0)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 5
    r = client.chat.completions.create(
        model="small",
        messages=msgs,
        max_tokens=60,
        temperature=0,
        stop=["5"],  # type: ignore[arg-type]
    )
    text = r.choices[0].message.content or ""
    assert "5" not in text and r.choices[0].finish_reason == "stop"


def test_streaming_matches_and_reports_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="small",
        messages=HELLO,
        max_tokens=24,
        temperature=0,
        seed=3,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for event in stream:
        if event.usage is not None:
            usage = event.usage
        for choice in event.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    text = "".join(pieces)
    assert len([p for p in pieces if p]) > 1, "expected the answer in several chunks"
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0
    whole = client.chat.completions.create(
        model="small",
        messages=HELLO,
        max_tokens=24,
        temperature=0,
        seed=3,  # type: ignore[arg-type]
    )
    assert whole.choices[0].message.content == text


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="small",
        messages=HELLO,
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=3,  # type: ignore[arg-type]
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == r.usage.completion_tokens  # type: ignore[union-attr]
    for item in content:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 3
        # greedy decoding: the chosen token is the most likely one
        assert item.top_logprobs[0].logprob == pytest.approx(item.logprob, abs=1e-4)
    assert "".join(i.token for i in content) == r.choices[0].message.content


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    r = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Name a city and its country as JSON."}],  # type: ignore[list-item]
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},  # type: ignore[typeddict-item]
    )
    import json

    data = json.loads(r.choices[0].message.content or "")
    assert set(data) == {"city", "country"}


def test_embeddings_rank_paraphrases_closer(client: openai.OpenAI) -> None:
    texts = [
        "The cat is sleeping on the sofa.",
        "A cat naps on the couch.",
        "Quarterly revenue rose by eight percent.",
    ]
    r = client.embeddings.create(model="minilm", input=texts)
    vecs = np.array([d.embedding for d in r.data])
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.3
    assert r.usage.prompt_tokens > 10


def _error(exc: openai.APIStatusError) -> dict[str, object]:
    body = exc.response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return dict(body["error"])


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=HELLO)  # type: ignore[arg-type]
    err = _error(info.value)
    assert "nope" in str(err["message"]) and "small" in str(err["message"])
    assert err["code"] == "model_not_found"


def test_malformed_and_invalid_bodies_are_400(gateway: Gateway) -> None:
    url = gateway.base_url + "/chat/completions"
    bad = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]["message"]
    hot = httpx.post(url, json={"model": "small", "messages": HELLO, "temperature": 7})
    assert hot.status_code == 400 and hot.json()["error"]["param"] == "temperature"
    empty = httpx.post(url, json={"model": "small", "messages": []})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "messages"
    role = httpx.post(url, json={"model": "small", "messages": [{"role": "wizard", "content": "hi"}]})
    assert role.status_code == 400
    emb = httpx.post(gateway.base_url + "/embeddings", json={"model": "small", "input": "hi"})
    assert emb.status_code == 400 and "embedding" in emb.json()["error"]["message"]
    chat_on_embedder = httpx.post(url, json={"model": "minilm", "messages": HELLO})
    assert chat_on_embedder.status_code == 400


def test_prompt_longer_than_context_says_by_how_much(client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "word " * 700}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="small", messages=long, max_tokens=5)  # type: ignore[arg-type]
    err = _error(info.value)
    assert err["code"] == "context_length_exceeded"
    assert "more than" in str(err["message"]) and "512" in str(err["message"])
    with pytest.raises(openai.BadRequestError):  # streaming too: an HTTP error, not a broken stream
        client.chat.completions.create(model="small", messages=long, max_tokens=5, stream=True)  # type: ignore[arg-type]


def test_dead_backend_is_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="dead", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    assert "cannot connect" in str(_error(info.value)["message"])


def test_tampered_weights_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="tampered", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    message = str(_error(info.value)["message"])
    assert "sha256" in message and "refusing to load" in message


def test_burst_beyond_capacity_gets_429_with_retry_after(gateway: Gateway) -> None:
    # small: max_concurrency 1 and max_queue 2, so of 8 requests at once at least 5 are refused
    body = {"model": "small", "messages": HELLO, "max_tokens": 24, "temperature": 0}
    url = gateway.base_url + "/chat/completions"
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        responses = list(ex.map(lambda _: httpx.post(url, json=body, timeout=120), range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 3 and codes.count(429) >= 1, codes
    assert set(codes) <= {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"


def test_client_disconnect_stops_generation(gateway: Gateway) -> None:
    body = {
        "model": "small",
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 400,
        "stream": True,
    }
    started = time.monotonic()
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=60) as r:
        rid = r.headers["x-request-id"]
        for n, _ in enumerate(r.iter_lines()):
            if n >= 6:
                break  # hang up after a few tokens
    from modelfarm.ledger import Ledger

    book = Ledger(gateway.ledger)
    deadline = time.monotonic() + 20
    while (rec := book.get(rid)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rec is not None, "the aborted request left no ledger row"
    assert rec.status == 499 and rec.error_type == "client_disconnected"
    assert time.monotonic() - started < 10
    # the model is free again at once: the next request is not stuck behind 400 tokens
    t0 = time.monotonic()
    ok = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": "small", "messages": HELLO, "max_tokens": 4},
        timeout=60,
    )
    assert ok.status_code == 200 and time.monotonic() - t0 < 3
    book.close()


def test_health_and_metrics(gateway: Gateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="small", messages=HELLO, max_tokens=2)  # type: ignore[arg-type]
    health = httpx.get(gateway.url + "/healthz").json()
    assert health["status"] == "ok" and "small" in health["loaded"]
    text = httpx.get(gateway.url + "/metrics").text
    assert 'modelfarm_requests_total{endpoint="chat",model="small",status="200"}' in text
    assert 'modelfarm_tokens_total{kind="completion",model="small"}' in text
    assert "modelfarm_time_to_first_token_seconds_bucket" in text
    assert 'modelfarm_model_loaded{model="small"} 1.0' in text
    assert "modelfarm_queue_depth" in text
