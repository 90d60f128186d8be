"""Alert sinks against real parts: a real webhook receiver (starlette + uvicorn on 127.0.0.1),
a real SQLite outbox across a restart, live Broadcaster subscribers fed from another thread,
and a rich console writing into a buffer.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelfarm.errors import ConfigError
from modelfarm.senses.alerts import Broadcaster, BroadcastEvent, ConsoleSink, Subscription
from modelfarm.senses.events import Alert, SenseEvent
from modelfarm.senses.outbox import WebhookOutbox
from tests.conftest import free_port

FAST = {"backoff_s": 0.05, "max_backoff_s": 0.2, "timeout_s": 2.0, "close_timeout_s": 2.0}


def make_alert(n: int, pipeline: str = "ward") -> Alert:
    return Alert(
        id=f"alert-{n:04d}",
        pipeline=pipeline,
        rule="spo2_low",
        severity="critical",
        source_time=12.0 + n,
        emitted_at=time.time(),
        message=f"SpO2 below 90% for 10 s [bed {n}]",
        evidence=[SenseEvent(kind="spo2", source_time=11.5 + n, processor="ocr", value=88.0, unit="%")],
    )


class Receiver:
    """A webhook receiver: records every POST (headers, JSON body, arrival time). It can be told
    to answer the next N requests with an error status (and headers); its error bodies echo the
    request headers, as some real receivers do. Not started = down (connection refused)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"
        self.received: list[tuple[float, dict[str, str], dict[str, Any]]] = []
        self._failures: list[tuple[int, dict[str, str]]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def fail_next(self, n: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        self._failures += [(status, headers or {})] * n

    @property
    def keys(self) -> list[str]:
        return [headers["idempotency-key"] for _, headers, _ in self.received]

    def start(self) -> Receiver:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        server = self._server
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the webhook receiver did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)

    async def _hook(self, request: Request) -> Response:
        headers = dict(request.headers)
        self.received.append((time.monotonic(), headers, await request.json()))
        if self._failures:
            status, extra = self._failures.pop(0)
            return JSONResponse({"error": "scripted failure", "you_sent": headers}, status, headers=extra)
        return JSONResponse({"ok": True})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver(free_port())
    yield rx
    rx.stop()


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# --- WebhookOutbox ------------------------------------------------------------------------------


def test_at_least_once_through_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "outbox.db"
    alerts = [make_alert(i) for i in range(3)]

    async def scenario() -> None:
        first = WebhookOutbox(db, [receiver.url], max_attempts=1000, **FAST)
        await first.start()
        for alert in alerts:
            first.deliver(alert)
        await asyncio.sleep(0.4)  # several connection-refused attempts while the receiver is down
        assert first.stats() == {"pending": 3, "sent": 0, "dead": 0}
        await first.aclose()

        second = WebhookOutbox(db, [receiver.url], max_attempts=1000, **FAST)
        receiver.start()
        await second.start()
        await wait_for(lambda: second.stats()["sent"] == 3)
        await second.aclose()

    asyncio.run(scenario())
    assert set(receiver.keys) == {a.id for a in alerts}  # duplicates allowed, none missing
    bodies = {body["id"]: body for _, _, body in receiver.received}
    assert bodies["alert-0001"] == json.loads(json.dumps(alerts[1].as_dict()))


def test_retries_with_backoff_after_500_then_succeeds(tmp_path: Path, receiver: Receiver) -> None:
    receiver.start().fail_next(2, 500)

    async def scenario() -> dict[str, int]:
        outbox = WebhookOutbox(tmp_path / "o.db", [receiver.url], backoff_s=0.2, max_backoff_s=1.0)
        await outbox.start()
        outbox.deliver(make_alert(1))
        await wait_for(lambda: outbox.stats()["sent"] == 1)
        stats = outbox.stats()
        await outbox.aclose()
        return stats

    assert asyncio.run(scenario()) == {"pending": 0, "sent": 1, "dead": 0}
    assert receiver.keys == ["alert-0001"] * 3
    t = [arrived for arrived, _, _ in receiver.received]
    # jitter draws from [half, all] of 0.2 s then 0.4 s: the second wait is at least 0.2 s
    assert t[1] - t[0] >= 0.09 and t[2] - t[1] >= 0.19


def test_400_is_dead_without_retries(tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.start().fail_next(5, 400)

    async def scenario() -> dict[str, int]:
        outbox = WebhookOutbox(tmp_path / "o.db", [receiver.url], **FAST)
        await outbox.start()
        outbox.deliver(make_alert(1))
        await wait_for(lambda: outbox.stats()["dead"] == 1)
        await asyncio.sleep(0.3)  # time for retries, if there were any
        stats = outbox.stats()
        await outbox.aclose()
        return stats

    with caplog.at_level(logging.ERROR, logger="modelfarm.senses.outbox"):
        assert asyncio.run(scenario()) == {"pending": 0, "sent": 0, "dead": 1}
    assert len(receiver.received) == 1
    assert "alert-0001" in caplog.text and "HTTP 400" in caplog.text


def test_retry_after_is_honoured(tmp_path: Path, receiver: Receiver) -> None:
    receiver.start().fail_next(1, 429, {"Retry-After": "1"})

    async def scenario() -> None:
        outbox = WebhookOutbox(tmp_path / "o.db", [receiver.url], backoff_s=0.01, max_backoff_s=0.05)
        await outbox.start()
        outbox.deliver(make_alert(1))
        await wait_for(lambda: outbox.stats()["sent"] == 1)
        await outbox.aclose()

    asyncio.run(scenario())
    (t0, _, _), (t1, _, _) = receiver.received
    assert t1 - t0 >= 0.95  # without Retry-After the retry would come after ~0.01 s


def test_secret_header_arrives_but_is_never_stored(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Bearer s3cret-token-7f3a9c"
    monkeypatch.setenv("MF_TEST_WEBHOOK_AUTH", secret)
    receiver.start().fail_next(1, 401)  # its error body echoes the request headers, secret included
    db = tmp_path / "o.db"

    async def scenario() -> None:
        outbox = WebhookOutbox(db, [receiver.url], headers_env="MF_TEST_WEBHOOK_AUTH", **FAST)
        await outbox.start()
        outbox.deliver(make_alert(1))
        await wait_for(lambda: outbox.stats()["dead"] == 1)  # its last_error keeps the echoed body
        outbox.deliver(make_alert(2))
        await wait_for(lambda: outbox.stats()["sent"] == 1)
        await outbox.aclose()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert [h["authorization"] for _, h, _ in receiver.received] == [secret, secret]
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("o.db"))
    assert b"HTTP 401" in stored and b"***" in stored  # the error was recorded, masked
    assert secret.encode() not in stored and b"s3cret" not in stored
    assert "HTTP 401" in caplog.text and "s3cret" not in caplog.text


def test_refuses_bad_urls_and_missing_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ["ftp://example.com/hook", "file:///etc/passwd", "example.com/hook", "https://user:pw@example.com/h"]:
        with pytest.raises(ConfigError):
            WebhookOutbox(tmp_path / "o.db", [url])
    monkeypatch.delenv("MF_TEST_UNSET_SECRET", raising=False)
    with pytest.raises(ConfigError, match="MF_TEST_UNSET_SECRET"):
        WebhookOutbox(tmp_path / "o.db", ["https://example.com/hook"], headers_env="MF_TEST_UNSET_SECRET")


# --- Broadcaster --------------------------------------------------------------------------------


async def take(sub: Subscription, n: int) -> list[BroadcastEvent]:
    return [event async for event in _limit(sub, n)]


async def _limit(sub: Subscription, n: int) -> Any:
    for _ in range(n):
        event = await asyncio.wait_for(sub.get(), 2.0)
        if event is None:
            return
        yield event


def deliver_from_thread(sink: Broadcaster, alerts: list[Alert]) -> threading.Thread:
    thread = threading.Thread(target=lambda: [sink.deliver(a) for a in alerts])
    thread.start()
    return thread


def test_two_subscribers_get_alerts_from_another_thread_in_order() -> None:
    alerts = [make_alert(i) for i in range(20)]

    async def scenario() -> tuple[list[BroadcastEvent], list[BroadcastEvent]]:
        hub = Broadcaster()
        a, b = hub.subscribe(), hub.subscribe()
        deliver_from_thread(hub, alerts).join()
        got = await asyncio.gather(take(a, 20), take(b, 20))
        await hub.aclose()
        assert await a.get() is None  # closing ends the subscriptions
        return got[0], got[1]

    for events in asyncio.run(scenario()):
        assert [e.data["id"] for e in events] == [a.id for a in alerts]
        assert {e.kind for e in events} == {"alert"}


def test_slow_subscriber_gets_overflow_and_others_are_unaffected() -> None:
    alerts = [make_alert(i) for i in range(6)]

    async def scenario() -> None:
        hub = Broadcaster()
        fast, slow = hub.subscribe(), hub.subscribe(queue_size=2)
        deliver_from_thread(hub, alerts[:5]).join()
        assert [e.data["id"] for e in await take(fast, 5)] == [a.id for a in alerts[:5]]
        got = [event async for event in slow]  # ends by itself after the overflow notice
        assert [e.kind for e in got] == ["alert", "alert", "overflow"]
        assert got[2].data["last_id"] == alerts[1].id  # where to resume: since=alert-0001
        assert hub.subscribers == 1
        hub.deliver(alerts[5])
        assert [e.data["id"] for e in await take(fast, 1)] == [alerts[5].id]
        resumed = hub.subscribe(since=got[2].data["last_id"])
        assert [e.data["id"] for e in await take(resumed, 4)] == [a.id for a in alerts[2:]]

    asyncio.run(scenario())


def test_replay_of_the_last_alerts_then_live_and_explained() -> None:
    alerts = [make_alert(i, pipeline="ward" if i % 2 else "lobby") for i in range(6)]

    async def scenario() -> None:
        hub = Broadcaster(history=4)
        for alert in alerts[:5]:
            hub.deliver(alert)  # nobody listening yet
        last3 = hub.subscribe(replay=3)
        ward = hub.subscribe(pipeline="ward", replay=10)
        everything_kept = hub.subscribe(since="alert-gone")
        hub.deliver(alerts[5])
        alerts[5].explanation = "a probe slipped off: the pulse trace is flat"
        hub.update(alerts[5])
        assert [e.data["id"] for e in await take(last3, 4)] == [a.id for a in alerts[2:]]
        assert [e.data["id"] for e in await take(ward, 3)] == ["alert-0001", "alert-0003", "alert-0005"]
        assert [e.data["id"] for e in await take(everything_kept, 5)] == [a.id for a in alerts[1:]]
        explained = (await take(last3, 1))[0]
        assert explained.kind == "alert_explained" and explained.data["explanation"].startswith("a probe")

    asyncio.run(scenario())


def test_sse_frames_and_heartbeat() -> None:
    async def scenario() -> list[bytes]:
        hub = Broadcaster(heartbeat_s=0.05)
        hub.deliver(make_alert(1))
        stream = hub.sse(replay=1)
        frames = [await anext(stream), await anext(stream)]
        await stream.aclose()
        assert hub.subscribers == 0  # a client that goes away is unsubscribed
        return frames

    alert_frame, heartbeat = asyncio.run(scenario())
    assert alert_frame.startswith(b"event: alert\ndata: {") and alert_frame.endswith(b"\nid: alert-0001\n\n")
    data = alert_frame.split(b"data: ", 1)[1].split(b"\n", 1)[0]
    assert json.loads(data)["rule"] == "spo2_low"
    assert heartbeat == b": heartbeat\n\n"


# --- ConsoleSink --------------------------------------------------------------------------------


def test_console_sink_json_lines_and_plain_lines() -> None:
    buffer = io.StringIO()
    sink = ConsoleSink(Console(file=buffer, width=40, force_terminal=False), json_lines=True)
    sink.deliver(make_alert(1))
    (line,) = buffer.getvalue().splitlines()  # one line, however narrow the console
    record = json.loads(line)
    assert (record["rule"], record["severity"], record["source_time"]) == ("spo2_low", "critical", 13.0)

    buffer = io.StringIO()
    ConsoleSink(Console(file=buffer, width=40, force_terminal=False), json_lines=False).deliver(make_alert(2))
    (line,) = buffer.getvalue().splitlines()
    assert "critical" in line and "spo2_low" in line and "t=14.0s" in line and "[bed 2]" in line


def test_sinks_do_not_raise_when_delivery_fails(tmp_path: Path) -> None:
    class BrokenPipe(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError("reader went away")

    ConsoleSink(Console(file=BrokenPipe()), json_lines=True).deliver(make_alert(1))

    async def closed_outbox() -> None:
        outbox = WebhookOutbox(tmp_path / "o.db", ["http://127.0.0.1:9/hook"])
        await outbox.aclose()
        outbox.deliver(make_alert(1))  # logged as not queued, not raised into the pipeline

    asyncio.run(closed_outbox())
