"""A sense pipeline at run time: sources -> processors -> event bus -> fusion rules -> alerts.

Threads do the CPU work (OpenCV, onnxruntime and CTranslate2 release the GIL): one reader per
source, paced by the stream clock, and one worker per processor with its own queue. Video
queues are bounded: in real time, when a processor falls behind, the oldest waiting frame is
dropped and counted, so the newest frame is always next; a replay as fast as possible waits
for the processor instead (nothing to catch up with). Audio and text are never dropped (a gap would
break speech segments), and neither are events or alerts. The event bus, the rule engine and
the alert sinks live on the asyncio loop; explanations from a model are attached after the
alert has gone out, so they never delay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modelfarm.senses.events import Alert, AudioChunk, Frame, Modality, SenseEvent, SourceItem
from modelfarm.senses.processors.base import Processor
from modelfarm.senses.rules import RuleEngine
from modelfarm.senses.sources import Clock

log = logging.getLogger(__name__)

EventHook = Callable[[SenseEvent], None]
AlertHook = Callable[[Alert], None]
Explainer = Callable[[Alert], Awaitable[str]]
_STOP = object()
_FAST_BACKLOG = 20  # audio chunks (2 s) or text lines a processor may have waiting in a fast replay


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(slots=True)
class StageStats:
    """What one processor did: inputs in, work time, drops, and the delay it added."""

    name: str
    consumes: str
    items: int = 0
    dropped: int = 0
    skipped: int = 0
    """Frames not processed because of `every` (by design, not load)."""
    events: int = 0
    busy_s: float = 0.0
    media_s: float = 0.0
    """Seconds of audio processed (for the real-time factor)."""
    latency_ms: list[float] = field(default_factory=list)
    """Arrival of an input to the end of its processing (queueing included)."""

    def as_dict(self) -> dict[str, Any]:
        p50, p99 = percentile(self.latency_ms, 0.5), percentile(self.latency_ms, 0.99)
        return {
            "name": self.name,
            "consumes": self.consumes,
            "items": self.items,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "events": self.events,
            "busy_s": round(self.busy_s, 3),
            "ms_per_item": round(1000 * self.busy_s / self.items, 2) if self.items else None,
            "rtf": round(self.busy_s / self.media_s, 4) if self.media_s else None,
            "latency_p50_ms": round(p50, 1) if p50 is not None else None,
            "latency_p99_ms": round(p99, 1) if p99 is not None else None,
        }


@dataclass(slots=True)
class Report:
    pipeline: str
    realtime: bool
    duration_s: float = 0.0
    stream_s: float = 0.0
    stages: list[StageStats] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    events: int = 0

    def alert_latency_ms(self, started_at: float) -> list[float]:
        """Source time to alert, in ms (meaningful in real time only)."""
        return [1000 * (a.emitted_at - (started_at + a.source_time)) for a in self.alerts]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "realtime": self.realtime,
            "duration_s": round(self.duration_s, 3),
            "stream_s": round(self.stream_s, 3),
            "events": self.events,
            "alerts": [a.as_dict() for a in self.alerts],
            "stages": [s.as_dict() for s in self.stages],
            "frames_dropped": sum(s.dropped for s in self.stages if s.consumes == "video"),
        }


class _Worker:
    """One processor on its own thread, fed by its own queue."""

    def __init__(
        self, processor: Processor, spec_queue: int, every: float, emit: Callable[[list[SenseEvent]], None], live: bool
    ) -> None:
        self.processor = processor
        self.stats = StageStats(processor.name, processor.consumes)
        self.every = every
        self.emit = emit
        # Video: `spec_queue` frames. Audio and text: unbounded in real time (never dropped), and
        # bounded in a fast replay, where a full queue holds the merged reader back so that no
        # modality runs far ahead of the others in stream time.
        size = spec_queue if processor.consumes == "video" else (0 if live else _FAST_BACKLOG)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._last_t = float("-inf")
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"sense {processor.name}", daemon=True)
        self.error: BaseException | None = None

    def offer(self, item: SourceItem, *, live: bool) -> None:
        """Queue an input. Live (real-time) frames never wait: the oldest queued frame is dropped
        instead; a replay as fast as possible waits for room, so it drops nothing."""
        if isinstance(item, Frame):
            if self.every and item.source_time - self._last_t < self.every - 1e-9:
                self.stats.skipped += 1
                return
            self._last_t = item.source_time
            if not live:
                self.queue.put(item)
                return
            while True:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        self.queue.get_nowait()  # the oldest frame goes: the newest is what matters
                        with self._lock:
                            self.stats.dropped += 1
        else:
            self.queue.put(item)

    def close(self) -> None:
        self.queue.put(_STOP)

    def _run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is _STOP:
                    break
                t0 = time.perf_counter()
                events = self.processor.process(item)
                done = time.perf_counter()
                with self._lock:
                    self.stats.items += 1
                    self.stats.busy_s += done - t0
                    self.stats.latency_ms.append(1000 * (time.time() - item.arrived_at))
                    if item.__class__.__name__ == "AudioChunk":
                        self.stats.media_s += item.duration
                if events:
                    self.stats.events += len(events)
                    self.emit(events)
            tail = self.processor.flush()
            if tail:
                self.stats.events += len(tail)
                self.emit(tail)
        except BaseException as exc:  # reported by the pipeline; never lost in a thread
            self.error = exc
            log.exception("sense processor %s failed", self.processor.name)


class Pipeline:
    def __init__(
        self,
        name: str,
        processors: list[tuple[Processor, int, float]],
        engine: RuleEngine,
        *,
        on_event: EventHook | None = None,
        on_alert: AlertHook | None = None,
        on_explained: AlertHook | None = None,
        explainer: Explainer | None = None,
        explain_rules: frozenset[str] = frozenset(),
    ) -> None:
        """`processors`: (processor, queue size, every seconds) triples."""
        self.name = name
        self.engine = engine
        self.on_event = on_event
        self.on_alert = on_alert
        self.on_explained = on_explained
        self.explainer = explainer
        self.explain_rules = explain_rules
        self._specs = processors
        self.workers: list[_Worker] = []
        self._explaining: set[asyncio.Task[None]] = set()

    async def run(self, sources: dict[Modality, Iterable[SourceItem]], clock: Clock) -> Report:
        loop = asyncio.get_running_loop()
        bus: asyncio.Queue[list[SenseEvent] | None] = asyncio.Queue()

        def emit(events: list[SenseEvent]) -> None:
            loop.call_soon_threadsafe(bus.put_nowait, events)

        self.workers = [_Worker(p, size, every, emit, clock.realtime) for p, size, every in self._specs]
        report = Report(self.name, clock.realtime, stages=[w.stats for w in self.workers])
        for w in self.workers:
            w.thread.start()
        clock.start()
        t0 = time.perf_counter()
        if clock.realtime:  # each source at its own pace, all on the wall clock
            readers = [
                threading.Thread(target=self._read, args=(m, items, clock), daemon=True, name=f"read {m}")
                for m, items in sources.items()
            ]
        else:  # one reader, all sources merged in stream-time order, so modalities stay in step
            merged = heapq.merge(*sources.values(), key=lambda item: item.source_time)
            readers = [threading.Thread(target=self._read, args=(None, merged, clock), daemon=True, name="read")]
        for r in readers:
            r.start()
        finished = asyncio.ensure_future(self._finish(readers, loop, bus))
        ticker = asyncio.ensure_future(self._tick(clock, bus)) if clock.realtime else None
        try:
            while True:
                batch = await bus.get()
                if batch is None:
                    break
                for event in batch:
                    report.events += 1
                    if self.on_event is not None:
                        self.on_event(event)
                    for alert in self.engine.observe(event):
                        self._raise(alert, report)
                if not batch:  # a tick: `for` conditions may come true without a new event
                    for alert in self.engine.evaluate(clock.now()):
                        self._raise(alert, report)
        finally:
            clock.stop()
            if ticker is not None:
                ticker.cancel()
            await finished
            if self._explaining:
                await asyncio.wait(self._explaining, timeout=60)
        report.duration_s = time.perf_counter() - t0
        report.stream_s = self.engine.clock
        errors = [w for w in self.workers if w.error is not None]
        if errors:
            raise RuntimeError(f"processor {errors[0].processor.name} failed: {errors[0].error}") from errors[0].error
        return report

    def _read(self, modality: Modality | None, items: Iterable[SourceItem], clock: Clock) -> None:
        """Feed one source (or, `modality` None, the merged sources) to the processors."""
        targets = {m: [w for w in self.workers if w.processor.consumes == m] for m in ("video", "audio", "text")}
        try:
            for item in items:
                if not clock.wait_until(item.source_time):
                    return
                item = _arrived(item)
                for w in targets[_modality(item)]:
                    w.offer(item, live=clock.realtime)
        except Exception:  # a broken file must not hang the pipeline: log, and end this source
            log.exception("sense source %s failed", modality)

    async def _finish(self, readers: list[threading.Thread], loop: asyncio.AbstractEventLoop, bus: Any) -> None:
        """When every source has ended and every worker has drained, close the bus."""
        await asyncio.to_thread(_join, readers)
        for w in self.workers:
            w.close()
        await asyncio.to_thread(_join, [w.thread for w in self.workers])
        bus.put_nowait(None)

    async def _tick(self, clock: Clock, bus: asyncio.Queue[list[SenseEvent] | None]) -> None:
        while True:
            await asyncio.sleep(0.25)
            bus.put_nowait([])

    def _raise(self, alert: Alert, report: Report) -> None:
        report.alerts.append(alert)
        if self.on_alert is not None:
            self.on_alert(alert)
        if self.explainer is not None and alert.rule in self.explain_rules:
            task = asyncio.ensure_future(self._explain(alert))
            self._explaining.add(task)
            task.add_done_callback(self._explaining.discard)

    async def _explain(self, alert: Alert) -> None:
        assert self.explainer is not None
        try:
            alert.explanation = (await self.explainer(alert)).strip()
        except Exception as exc:  # an explanation is a courtesy: the alert already went out
            log.warning("no explanation for alert %s: %s", alert.id, exc)
            return
        if self.on_explained is not None:
            self.on_explained(alert)


def _modality(item: SourceItem) -> Modality:
    return "video" if isinstance(item, Frame) else "audio" if isinstance(item, AudioChunk) else "text"


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join()


def _arrived(item: SourceItem) -> SourceItem:
    """The item stamped with its real arrival time (sources create items ahead of pacing)."""
    from dataclasses import replace

    return replace(item, arrived_at=time.time())
