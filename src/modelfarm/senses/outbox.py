"""Webhook delivery, at least once: every alert is written to SQLite before `deliver` returns,
and a background task POSTs it until the receiver confirms (2xx) or gives a final no.

One row per (alert, URL) moves pending -> sent | dead. A row stays pending until a 2xx is
recorded, so a crash, a kill or a restart at any point resends it: the receiver may see an
alert twice and tells the copies apart by the `Idempotency-Key` header (the alert id).

    pending --2xx--------------------------------------------> sent
       |  \\--connection error, timeout, 408, 429, 5xx--> pending (attempts+1, next_attempt_at later)
       \\----other 3xx/4xx, or attempts == max_attempts-------> dead (logged, last_error kept)

Retries back off exponentially (backoff_s * 2^(attempt-1), capped at max_backoff_s) with jitter
(the delay is drawn from [half, all] of that, so receivers coming back up are not hit by every
sender at once); a Retry-After header (seconds or an HTTP date) is a lower bound on the delay.
A (re)start makes every pending row due at once: whoever restarts is likely to have just fixed
the receiver, and a wall-clock jump cannot park a row in the far future.

The optional secret header (`Authorization: Bearer ...`) is read from the environment once, held
in memory only, and masked out of `last_error` and the log (a receiver may echo request headers
into an error body); the database never sees it. synchronous=FULL: an alert once accepted
survives a power cut too (one fsync per alert; alerts are rare, one per episode).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import logging
import os
import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from modelfarm.errors import ConfigError
from modelfarm.senses.events import Alert

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        TEXT NOT NULL,      -- sent as Idempotency-Key
    url             TEXT NOT NULL,
    payload         TEXT NOT NULL,      -- JSON Alert.as_dict(), POSTed as is
    created         REAL NOT NULL,      -- unix seconds
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,      -- unix seconds
    status          TEXT NOT NULL,      -- pending | sent | dead
    last_error      TEXT,               -- secret header value masked
    UNIQUE (alert_id, url)
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox(status, next_attempt_at);
"""

_STATUSES = ("pending", "sent", "dead")


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    alert_id: str
    url: str
    payload: str
    attempts: int


class WebhookOutbox:
    """An `AlertSink` that POSTs each alert as JSON to every URL, at least once, across restarts.

    `deliver` may be called from any thread, before or after `start()`; rows written before
    `start()` (or by an earlier process) are sent once it runs. `aclose()` waits up to
    `close_timeout_s` for requests in flight; rows it cuts off stay pending for the next start."""

    def __init__(
        self,
        db_path: Path,
        urls: list[str],
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 20,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        headers_env: str | None = None,
        header_name: str = "Authorization",
        max_concurrency: int = 8,
        close_timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = list(dict.fromkeys(_check_url(u) for u in urls))
        if not self.urls:
            raise ConfigError("WebhookOutbox needs at least one webhook URL")
        if max_attempts < 1 or backoff_s <= 0 or max_backoff_s < backoff_s or timeout_s <= 0 or max_concurrency < 1:
            raise ConfigError(
                "webhook settings out of range: need max_attempts >= 1, 0 < backoff_s <= max_backoff_s, "
                f"timeout_s > 0, max_concurrency >= 1 (got {max_attempts}, {backoff_s}, {max_backoff_s}, "
                f"{timeout_s}, {max_concurrency})"
            )
        self.db_path = Path(db_path)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_concurrency = max_concurrency
        self.close_timeout_s = close_timeout_s
        self._headers = {"Content-Type": "application/json"}
        self._secret: str | None = None
        if headers_env is not None:
            value = os.environ.get(headers_env, "")
            if not value:
                raise ConfigError(
                    f"environment variable {headers_env} (the webhook header secret) is unset or empty: "
                    "set it, or drop headers_env"
                )
            self._secret = value
            self._headers[header_name] = value
        self._transport = transport

        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # one connection, shared by `deliver` threads and the sender

        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._closing = False
        self._closed = False

    # --- the sink side: any thread -------------------------------------------------------------

    def deliver(self, alert: Alert) -> None:
        """Queue the alert for every URL (committed before returning) and wake the sender."""
        payload = json.dumps(alert.as_dict(), ensure_ascii=False)
        now = time.time()
        rows = [(alert.id, url, payload, now, now) for url in self.urls]
        try:
            with self._lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the outbox is closed")
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO webhook_outbox"
                        " (alert_id, url, payload, created, next_attempt_at, status) VALUES (?, ?, ?, ?, ?, 'pending')",
                        rows,
                    )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("alert %s (%s) NOT queued for webhooks: %s", alert.id, alert.rule, exc)
            return
        self._poke()

    def update(self, alert: Alert) -> None:
        """Put the explanation into rows not yet sent; alerts already confirmed are not sent again
        (the receiver would drop a second POST with the same Idempotency-Key anyway)."""
        payload = json.dumps(alert.as_dict(), ensure_ascii=False)
        try:
            with self._lock:
                if self._closed:
                    return
                self._db.execute(
                    "UPDATE webhook_outbox SET payload = ? WHERE alert_id = ? AND status = 'pending'",
                    (payload, alert.id),
                )
        except sqlite3.Error as exc:
            log.warning("explanation of alert %s not added to its webhook rows: %s", alert.id, exc)

    def stats(self) -> dict[str, int]:
        """Rows by status: {"pending": n, "sent": n, "dead": n}."""
        with self._lock:
            counts = dict(self._db.execute("SELECT status, COUNT(*) FROM webhook_outbox GROUP BY status").fetchall())
        return {status: int(counts.get(status, 0)) for status in _STATUSES}

    # --- the sender: one asyncio task ----------------------------------------------------------

    async def start(self) -> None:
        """Start the sender on the running loop; every pending row is due at once."""
        if self._runner is not None:
            return
        if self._closed:
            raise RuntimeError("this WebhookOutbox is closed; create a new one")
        with self._lock:
            self._db.execute("UPDATE webhook_outbox SET next_attempt_at = ? WHERE status = 'pending'", (time.time(),))
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport)
        self._runner = asyncio.create_task(self._run(), name="webhook-outbox")
        self._runner.add_done_callback(_log_crash)

    async def aclose(self) -> None:
        """Stop taking new work, wait up to `close_timeout_s` for requests in flight, then
        cancel the rest (they stay pending) and close the client and the database."""
        self._closing = True
        if self._runner is not None and self._wake is not None:
            self._wake.set()
            await asyncio.gather(self._runner, return_exceptions=True)  # a crash was logged by _log_crash
            tasks = list(self._in_flight.values())
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=self.close_timeout_s)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def _poke(self) -> None:
        """Wake the sender from any thread (a no-op before `start()`: the row waits for it)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        # A closed loop raises RuntimeError: the sender is gone, and the row is durable and waits for a restart.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closing:
            self._wake.clear()  # before looking: a deliver after the query wakes the wait below
            now = time.time()
            room = self.max_concurrency - len(self._in_flight)
            due, next_at = self._due(now, room) if room > 0 else ([], None)
            for row in due:
                task = asyncio.create_task(self._send(row), name=f"webhook-{row.id}")
                self._in_flight[row.id] = task
                task.add_done_callback(functools.partial(self._done, row.id))
            timeout = None if next_at is None else max(0.0, next_at - now)
            with contextlib.suppress(TimeoutError):  # the timeout is the next row's due time
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _due(self, now: float, room: int) -> tuple[list[_Row], float | None]:
        """Pending rows due now (not already in flight), and when the next later one is due."""
        busy = set(self._in_flight)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, alert_id, url, payload, attempts FROM webhook_outbox"
                " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                (now, room + len(busy)),
            ).fetchall()
            (next_at,) = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM webhook_outbox WHERE status = 'pending' AND next_attempt_at > ?",
                (now,),
            ).fetchone()
        due = [_Row(*r) for r in rows if r[0] not in busy][:room]
        return due, next_at

    def _done(self, row_id: int, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(row_id, None)
        _log_crash(task)
        if self._wake is not None:
            self._wake.set()  # room for another request

    async def _send(self, row: _Row) -> None:
        """One POST; records the outcome. Never raises: a row that cannot be updated stays pending."""
        assert self._client is not None
        attempt = row.attempts + 1
        headers = {**self._headers, "Idempotency-Key": row.alert_id}
        retry_after = 0.0
        try:
            response = await self._client.post(row.url, content=row.payload.encode(), headers=headers)
        except httpx.TransportError as exc:  # connection refused/reset, DNS, timeouts
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            retryable = True
        else:
            code = response.status_code
            if 200 <= code < 300:
                self._mark(row.id, attempt, "sent", None, None)
                return
            error = f"HTTP {code}: {response.text[:300]}"
            retryable = code in (408, 429) or code >= 500
            retry_after = _retry_after(response.headers.get("Retry-After"))
        error = self._mask(error)
        if not retryable or attempt >= self.max_attempts:
            why = f"after {attempt} attempts" if retryable else "refused by the receiver"
            log.error("webhook for alert %s to %s is dead (%s): %s", row.alert_id, _origin(row.url), why, error)
            self._mark(row.id, attempt, "dead", error, None)
            return
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        delay = max(retry_after, base * random.uniform(0.5, 1.0))
        log.info("webhook for alert %s to %s: %s; retry %d in %.2f s", row.alert_id, _origin(row.url), error,
                 attempt + 1, delay)  # fmt: skip
        self._mark(row.id, attempt, "pending", error, time.time() + delay)

    def _mark(self, row_id: int, attempts: int, status: str, error: str | None, next_at: float | None) -> None:
        try:
            with self._lock:
                if self._closed:
                    return
                self._db.execute(
                    "UPDATE webhook_outbox SET attempts = ?, status = ?, last_error = ?,"
                    " next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ?",
                    (attempts, status, error, next_at, row_id),
                )
        except sqlite3.Error as exc:  # the row stays as it was (pending): it will be sent again
            log.error("webhook row %d not updated to %s: %s", row_id, status, exc)

    def _mask(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook URL {url!r} is not an http(s) URL with a host; use http://host/path or https://...")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"webhook URL for {parts.hostname} carries credentials, which would be stored in the outbox database; "
            "remove them and pass the secret with headers_env"
        )
    return url


def _origin(url: str) -> str:
    """scheme://host[:port] only: a webhook path can itself be a secret (Slack, Teams)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); 0 if absent or bad."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("webhook outbox task %s crashed", task.get_name(), exc_info=task.exception())
