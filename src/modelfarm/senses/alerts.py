"""Where alerts go once a rule fires: the sink protocol, the console, and live SSE subscribers.

A pipeline hands each `Alert` to every sink it was given. Sinks are called from the pipeline's
worker thread, so `deliver` returns at once and never raises for a delivery failure: a slow or
broken sink must not hold up the rules, and one sink's failure must not stop the others.
Durable webhook delivery lives in `outbox.py` (`WebhookOutbox`), behind the same protocol.

The `Broadcaster` fans alerts out to SSE clients. Each client has its own bounded queue; one
whose queue fills up (it reads slower than alerts arrive) is not dropped from silently: it gets
a final `overflow` event naming the last alert it was sent, and is disconnected, so it can
reconnect with `since=<that id>` and have the missed alerts replayed from the history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from rich.console import Console
from rich.text import Text

from modelfarm.senses.events import Alert

log = logging.getLogger(__name__)

EventKind = Literal["alert", "alert_explained", "overflow"]

_SEVERITY_STYLE = {"info": "cyan", "warning": "bold yellow", "critical": "bold white on red"}


class AlertSink(Protocol):
    """Something that takes alerts: a console, SSE subscribers, a webhook outbox.

    `deliver` is called from the pipeline's thread: it must return quickly (queue the work,
    don't do it) and must not raise because delivery failed (log it instead). `update` is
    called when an alert already delivered gets its model-written explanation; a sink may
    ignore it. `aclose` flushes what the sink can and releases its resources."""

    def deliver(self, alert: Alert) -> None: ...

    def update(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


class ConsoleSink:
    """One line per alert on a rich console: severity (coloured), pipeline, rule, stream time
    and message; or, with `json_lines`, one JSON object per line (`Alert.as_dict()`) for `jq`
    or a log shipper. An explanation that arrives later is printed as its own line: indented
    under the alert, or, in JSON mode, the alert's dict again with `explanation` filled in
    (same `id`: the last line for an id is the alert's latest state).

    Lines are rendered by rich and written by the sink itself: on a closed pipe (`| head`)
    rich would exit the process, while a sink should only stop writing and say so once."""

    def __init__(self, console: Console | None = None, json_lines: bool = False) -> None:
        self.console = console or Console()
        self.json_lines = json_lines
        self._lock = threading.Lock()  # one line at a time from any number of pipeline threads
        self._broken = False

    def deliver(self, alert: Alert) -> None:
        if self.json_lines:
            self._write(json.dumps(alert.as_dict(), ensure_ascii=False) + "\n", alert)
            return
        line = Text.assemble(
            (f"{alert.severity:<8}", _SEVERITY_STYLE.get(alert.severity, "")),
            " ",
            (alert.pipeline, "dim"),
            " ",
            (alert.rule, "bold"),
            " ",
            (f"t={alert.source_time:.1f}s", "dim"),
            "  ",
            alert.message,  # plain text: a `[` in a message is not rich markup
        )
        self._write(self._render(line), alert)

    def update(self, alert: Alert) -> None:
        if alert.explanation is None:
            return
        if self.json_lines:
            self._write(json.dumps(alert.as_dict(), ensure_ascii=False) + "\n", alert)
            return
        line = Text.assemble(("         ↳ ", "dim"), (alert.rule, "bold"), ": ", alert.explanation)
        self._write(self._render(line), alert)

    async def aclose(self) -> None:
        """Nothing to release: the console belongs to the caller."""

    def _render(self, line: Text) -> str:
        """The line as the console would print it (colours only if it is a terminal), unwrapped."""
        with self.console.capture() as capture:
            self.console.print(line, soft_wrap=True, highlight=False)
        return capture.get()

    def _write(self, text: str, alert: Alert) -> None:
        with self._lock:
            if self._broken:
                return
            try:
                self.console.file.write(text)
                self.console.file.flush()
            except BrokenPipeError:
                self._broken = True
                log.warning("console sink: the reader went away (broken pipe); alerts are no longer printed")
            except OSError as exc:  # a full disk: this alert's line is lost, the next may get through
                log.warning("console sink could not write alert %s: %s", alert.id, exc)


@dataclass(frozen=True, slots=True)
class BroadcastEvent:
    """What a subscriber receives: an alert, an explanation for one it already got, or the
    final `overflow` notice. `data` is the JSON body (the alert's dict, taken when the event
    was broadcast); `alert` is the object itself, for in-process subscribers."""

    kind: EventKind
    data: dict[str, Any]
    alert: Alert | None = None

    def sse(self) -> bytes:
        """The event in SSE wire form. Alert events carry `id: <alert id>`, so a browser's
        EventSource reconnects with `Last-Event-ID` = the last alert it saw (pass it as `since`)."""
        body = f"event: {self.kind}\ndata: {json.dumps(self.data, ensure_ascii=False)}\n"
        if self.kind == "alert" and self.alert is not None:
            body += f"id: {self.alert.id}\n"
        return (body + "\n").encode()


_HEARTBEAT = b": heartbeat\n\n"


@dataclass(eq=False, slots=True)
class Subscription:
    """One subscriber's view of the broadcast: an async iterator of `BroadcastEvent`s.

    Replayed alerts come first, then live ones, in the order they were delivered. It ends
    after an `overflow` event, when the broadcaster closes, or when `close()` is called."""

    broadcaster: Broadcaster
    loop: asyncio.AbstractEventLoop
    limit: int
    pipeline: str | None
    replayed: deque[BroadcastEvent]
    # One slot more than `limit`: the final event (overflow, or None for "closed") always fits.
    queue: asyncio.Queue[BroadcastEvent | None] = field(init=False)
    last_id: str | None = None
    """The last alert queued for this subscriber: the overflow event names it."""
    ended: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.limit + 1)
        if self.replayed:
            self.last_id = self.replayed[-1].data["id"]

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> BroadcastEvent:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def get(self, timeout: float | None = None) -> BroadcastEvent | None:
        """The next event; None once the subscription has ended, or after `timeout` seconds
        with nothing to send (check `ended` to tell which)."""
        if self.replayed:
            return self.replayed.popleft()
        if self.ended and self.queue.empty():
            return None
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None or event.kind == "overflow":
            self.ended = True
            self.broadcaster._unsubscribe(self)
        return event

    def close(self) -> None:
        """Stop receiving new events; what is already queued can still be read, then the
        iterator ends. Call it from the subscriber's own event loop."""
        self.broadcaster._unsubscribe(self)
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(None)  # the reserved slot: wakes a reader waiting in `get`

    def _offer(self, event: BroadcastEvent) -> bool:
        """Called by the broadcaster under its lock, from any thread. False: the subscriber's
        event loop is closed (nobody is listening any more) and it should be dropped."""
        if self.pipeline is not None and event.alert is not None and event.alert.pipeline != self.pipeline:
            return True
        try:
            self.loop.call_soon_threadsafe(self._push, event)
        except RuntimeError:
            self.ended = True
            return False
        return True

    def _push(self, event: BroadcastEvent | None) -> None:
        """Runs on the subscriber's loop. A full queue ends the subscription with `overflow`."""
        if self.ended:
            return
        if event is None:
            self.ended = True
            self.queue.put_nowait(None)
        elif self.queue.qsize() >= self.limit:
            self.ended = True
            self.broadcaster._unsubscribe(self)
            reason = f"client too slow: {self.limit} events waiting; reconnect with since=last_id"
            self.queue.put_nowait(BroadcastEvent("overflow", {"reason": reason, "last_id": self.last_id}))
        else:
            self.queue.put_nowait(event)
            if event.kind == "alert":
                self.last_id = event.data["id"]


class Broadcaster:
    """Fan-out of alerts to any number of live subscribers (SSE clients), from any thread.

    `deliver`/`update` take a lock for a few microseconds and hand each subscriber its event
    with `loop.call_soon_threadsafe`, so a pipeline thread never waits for a client. The last
    `history` alerts are kept (the latest state of each, explanation included) for replay."""

    def __init__(self, *, queue_size: int = 256, history: int = 100, heartbeat_s: float = 15.0) -> None:
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self._history: OrderedDict[str, Alert] = OrderedDict()
        self._history_size = history
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def deliver(self, alert: Alert) -> None:
        event = BroadcastEvent("alert", alert.as_dict(), alert)
        with self._lock:
            if self._closed:
                return
            self._history[alert.id] = alert
            self._history.move_to_end(alert.id)
            while len(self._history) > self._history_size:
                self._history.popitem(last=False)
            self._fan_out(event)

    def update(self, alert: Alert) -> None:
        """Send `alert_explained` (the whole alert, explanation filled in) to every subscriber."""
        event = BroadcastEvent("alert_explained", alert.as_dict(), alert)
        with self._lock:
            if self._closed:
                return
            if alert.id in self._history:
                self._history[alert.id] = alert  # replay sends the explained version
            self._fan_out(event)

    def subscribe(
        self, *, pipeline: str | None = None, since: str | None = None, replay: int = 0, queue_size: int | None = None
    ) -> Subscription:
        """Register a subscriber now (call it from the event loop that will read it).

        `since`: replay every kept alert raised after that alert id (all kept alerts if the id
        is no longer known: a reconnecting client would rather see a duplicate than miss one);
        otherwise `replay`: the last `replay` kept alerts. `pipeline` keeps only that pipeline's
        alerts. Replay and registration happen under one lock: no alert is missed or doubled."""
        loop = asyncio.get_running_loop()
        with self._lock:
            kept = list(self._history.values())
            if since is not None and since in self._history:
                kept = kept[list(self._history).index(since) + 1 :]
            kept = [a for a in kept if pipeline is None or a.pipeline == pipeline]
            if since is None:
                kept = kept[max(0, len(kept) - replay) :] if replay > 0 else []
            replayed = deque(BroadcastEvent("alert", a.as_dict(), a) for a in kept)
            sub = Subscription(self, loop, queue_size or self.queue_size, pipeline, replayed)
            if self._closed:
                sub.ended = True
            else:
                self._subs.append(sub)
        return sub

    async def sse(
        self, pipeline: str | None = None, *, since: str | None = None, replay: int = 0
    ) -> AsyncIterator[bytes]:
        """The body of an SSE response: `event: alert` frames, and a `: heartbeat` comment after
        `heartbeat_s` seconds without one, so proxies keep the connection and clients notice
        a dead one. Ends after `overflow` or when the broadcaster closes."""
        sub = self.subscribe(pipeline=pipeline, since=since, replay=replay)
        try:
            while True:
                event = await sub.get(timeout=self.heartbeat_s)
                if event is not None:
                    yield event.sse()
                elif sub.ended:
                    return
                else:
                    yield _HEARTBEAT
        finally:
            sub.close()

    async def aclose(self) -> None:
        """End every subscription (each iterator stops after what it already has queued)."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, []
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._push, None)
            except RuntimeError:
                sub.ended = True

    def _fan_out(self, event: BroadcastEvent) -> None:
        """Under the lock: offer the event to every subscriber, dropping those whose loop is gone."""
        self._subs = [sub for sub in self._subs if sub._offer(event)]

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
