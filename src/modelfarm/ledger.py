"""The ledger: one SQLite row per request, with its model, tokens, timing, cost and outcome.

WAL mode, one short transaction per row, committed before the client gets the last byte of
its answer: a killed process loses no completed request (WAL commits survive a process
crash; synchronous=NORMAL trades only power-loss durability for speed).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id              TEXT PRIMARY KEY,
    created         REAL NOT NULL,      -- unix seconds
    key_id          TEXT,               -- which API key (a short hash, never the key)
    endpoint        TEXT NOT NULL,      -- chat | embeddings
    requested_model TEXT,
    served_model    TEXT,
    stream          INTEGER NOT NULL DEFAULT 0,
    tokens_in       INTEGER NOT NULL DEFAULT 0,
    tokens_out      INTEGER NOT NULL DEFAULT 0,
    ttft_ms         REAL,               -- time to first token
    latency_ms      REAL,
    cost_usd        REAL NOT NULL DEFAULT 0,
    status          INTEGER NOT NULL,   -- HTTP status
    error_type      TEXT,
    finish_reason   TEXT
);
CREATE INDEX IF NOT EXISTS requests_created ON requests(created);
CREATE TABLE IF NOT EXISTS decisions (
    request_id      TEXT PRIMARY KEY,
    created         REAL NOT NULL,
    policy          TEXT NOT NULL,      -- `auto`, `auto:cheap`, or `direct` for a concrete model
    model           TEXT NOT NULL,      -- the model that served (after any fallback or escalation)
    reason          TEXT NOT NULL,
    candidates      TEXT NOT NULL,      -- JSON {model: score}
    pii             TEXT NOT NULL,      -- JSON [entity kinds], never values
    attempts        TEXT NOT NULL,      -- JSON [{model, outcome, ...}]
    cost_saved_usd  REAL NOT NULL DEFAULT 0,
    prompt          TEXT                -- the last user message, PII replaced by placeholders
);
CREATE TABLE IF NOT EXISTS outcomes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created     REAL NOT NULL,
    request_id  TEXT,
    prompt      TEXT NOT NULL,
    model       TEXT NOT NULL,
    score       REAL NOT NULL,          -- quality in [0, 1]
    source      TEXT NOT NULL           -- feedback | cascade
);
CREATE TABLE IF NOT EXISTS agent_runs (
    id          TEXT PRIMARY KEY,
    created     REAL NOT NULL,
    task        TEXT NOT NULL,
    status      TEXT NOT NULL,          -- running | ok | failed | cancelled
    answer      TEXT,
    tokens_in   INTEGER NOT NULL DEFAULT 0,
    tokens_out  INTEGER NOT NULL DEFAULT 0,
    cost_usd    REAL NOT NULL DEFAULT 0,
    duration_s  REAL,
    trace       TEXT NOT NULL           -- the whole run as JSON (plan, steps, answer)
);
CREATE TABLE IF NOT EXISTS agent_steps (
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    agent       TEXT NOT NULL,
    model       TEXT,                   -- the model that produced the output
    status      TEXT NOT NULL,          -- pending | running | ok | failed | skipped | cancelled
    instruction TEXT NOT NULL,
    inputs      TEXT NOT NULL,          -- JSON [step ids]
    output      TEXT,
    error       TEXT,
    tokens_in   INTEGER NOT NULL DEFAULT 0,
    tokens_out  INTEGER NOT NULL DEFAULT 0,
    cost_usd    REAL NOT NULL DEFAULT 0,
    start_s     REAL,                   -- seconds from the start of the run
    end_s       REAL,
    PRIMARY KEY (run_id, step_id)
);
"""


@dataclass(slots=True)
class RequestRecord:
    id: str
    endpoint: str
    requested_model: str | None
    served_model: str | None = None
    key_id: str | None = None
    stream: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    ttft_ms: float | None = None
    latency_ms: float | None = None
    cost_usd: float = 0.0
    status: int = 200
    error_type: str | None = None
    finish_reason: str | None = None
    created: float = 0.0


@dataclass(slots=True)
class DecisionRecord:
    request_id: str
    policy: str
    model: str
    reason: str
    candidates: dict[str, float]
    pii: list[str]
    attempts: list[dict[str, object]]
    cost_saved_usd: float = 0.0
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    prompt: str
    model: str
    score: float
    source: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModelTotals:
    model: str
    requests: int
    errors: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    mean_latency_ms: float


_INSERT_DECISION = "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?)"


def _decision_row(d: DecisionRecord) -> tuple[object, ...]:
    return (
        d.request_id, time.time(), d.policy, d.model, d.reason, json.dumps(d.candidates),
        json.dumps(d.pii), json.dumps(d.attempts), d.cost_saved_usd, d.prompt,
    )  # fmt: skip


def default_ledger_path() -> Path:
    return Path(os.environ.get("MODELFARM_LEDGER", "~/.local/share/modelfarm/ledger.db")).expanduser()


class Ledger:
    """Thread-safe; one connection, writes serialized by a lock (each takes ~0.1 ms)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._columns = list(RequestRecord.__dataclass_fields__)
        names = ", ".join(self._columns)
        marks = ", ".join("?" for _ in self._columns)
        self._insert = f"INSERT OR REPLACE INTO requests ({names}) VALUES ({marks})"

    def record(self, rec: RequestRecord, decision: DecisionRecord | None = None) -> None:
        """Write a request row (and its routing decision) in one transaction: one commit."""
        if not rec.created:
            rec.created = time.time()
        row = asdict(rec)
        row["stream"] = int(rec.stream)
        with self._lock:
            if decision is None:
                self._db.execute(self._insert, [row[c] for c in self._columns])
                return
            self._db.execute("BEGIN")
            try:
                self._db.execute(self._insert, [row[c] for c in self._columns])
                self._db.execute(_INSERT_DECISION, _decision_row(decision))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def recent(self, limit: int = 20) -> list[RequestRecord]:
        with self._lock:
            cur = self._db.execute(
                f"SELECT {', '.join(self._columns)} FROM requests ORDER BY created DESC LIMIT ?", (limit,)
            )
            rows = cur.fetchall()
        return [RequestRecord(**dict(zip(self._columns, r, strict=True))) for r in rows]

    def get(self, request_id: str) -> RequestRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(self._columns)} FROM requests WHERE id = ?", (request_id,)
            ).fetchone()
        return RequestRecord(**dict(zip(self._columns, row, strict=True))) if row else None

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def totals(self, since: float = 0.0) -> list[ModelTotals]:
        with self._lock:
            rows = self._db.execute(
                """SELECT COALESCE(served_model, requested_model, '?'), COUNT(*),
                          SUM(status >= 400), SUM(tokens_in), SUM(tokens_out), SUM(cost_usd),
                          AVG(latency_ms)
                   FROM requests WHERE created >= ? GROUP BY 1 ORDER BY 1""",
                (since,),
            ).fetchall()
        return [ModelTotals(r[0], r[1], r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0.0, r[6] or 0.0) for r in rows]

    def record_decision(self, d: DecisionRecord) -> None:
        with self._lock:
            self._db.execute(_INSERT_DECISION, _decision_row(d))

    def decision(self, request_id: str) -> DecisionRecord | None:
        with self._lock:
            r = self._db.execute(
                "SELECT request_id, policy, model, reason, candidates, pii, attempts, cost_saved_usd, prompt "
                "FROM decisions WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if r is None:
            return None
        return DecisionRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), json.loads(r[6]), r[7], r[8])

    def add_outcome(self, o: Outcome) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO outcomes (created, request_id, prompt, model, score, source) VALUES (?,?,?,?,?,?)",
                (time.time(), o.request_id, o.prompt, o.model, o.score, o.source),
            )

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            rows = self._db.execute(
                "SELECT prompt, model, score, source, request_id FROM outcomes ORDER BY id"
            ).fetchall()
        return [Outcome(*r) for r in rows]

    def save_run(self, run: dict[str, Any]) -> None:
        """Write (or rewrite) an agent run and its steps in one transaction."""
        steps = [
            (run["id"], st["id"], st["agent"], st["model"], st["status"], st["instruction"], json.dumps(st["inputs"]),
             st["output"], st["error"], st["tokens_in"], st["tokens_out"], st["cost"], st["start"], st["end"])
            for st in run["steps"]
        ]  # fmt: skip
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO agent_runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (run["id"], run["created"], run["task"], run["status"], run["answer"], run["tokens_in"],
                     run["tokens_out"], run["cost"], run["duration"], json.dumps(run)),
                )  # fmt: skip
                self._db.execute("DELETE FROM agent_steps WHERE run_id = ?", (run["id"],))
                self._db.executemany("INSERT INTO agent_steps VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", steps)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT trace FROM agent_runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
