"""The ledger: a row per request, answered or refused, kept through a killed process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from modelfarm.ledger import Ledger, RequestRecord
from tests.conftest import Gateway, free_port, run_cli, small_model_toml

HELLO = [{"role": "user", "content": "Hello!"}]


def test_every_request_leaves_a_row(gateway: Gateway) -> None:
    url = gateway.base_url + "/chat/completions"
    ok = httpx.post(url, json={"model": "small", "messages": HELLO, "max_tokens": 4}, timeout=60)
    missing = httpx.post(url, json={"model": "ghost", "messages": HELLO})
    broken = httpx.post(url, content=b"{", headers={"content-type": "application/json"})
    book = Ledger(gateway.ledger)
    rec = book.get(ok.json()["id"])
    assert rec is not None and rec.status == 200 and rec.served_model == "small"
    assert rec.tokens_in > 0 and rec.tokens_out > 0 and rec.latency_ms and rec.cost_usd == 0
    statuses = {(r.requested_model, r.status, r.error_type) for r in book.recent(50)}
    assert ("ghost", 404, "model_not_found") in statuses
    assert (None, 400, "invalid_request") in statuses
    assert missing.status_code == 404 and broken.status_code == 400
    book.close()


def test_cost_is_tokens_times_price(tmp_path: Path) -> None:
    book = Ledger(tmp_path / "l.db")
    book.record(RequestRecord(id="r1", endpoint="chat", requested_model="m", served_model="m", cost_usd=0.5))
    book.record(RequestRecord(id="r2", endpoint="chat", requested_model="m", served_model="m", status=429))
    (total,) = book.totals()
    assert (total.model, total.requests, total.errors, total.cost_usd) == ("m", 2, 1, 0.5)
    book.close()


def _serve(farm: Path, ledger: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfarm",
            "serve",
            "--farm",
            str(farm),
            "--port",
            str(port),
            "--ledger",
            str(ledger),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "gateway did not start")


def test_rows_survive_kill_and_restart(tmp_path: Path) -> None:
    farm = tmp_path / "farm.toml"
    farm.write_text(f'[farm]\nthreads = 2\ncache_dir = "{tmp_path}"\n' + small_model_toml())
    ledger = tmp_path / "ledger.db"
    port = free_port()
    proc = _serve(farm, ledger, port)
    ids = []
    try:
        for _ in range(3):
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "small", "messages": HELLO, "max_tokens": 3},
                timeout=60,
            )
            ids.append(r.json()["id"])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no clean shutdown: nothing gets flushed
        proc.wait(timeout=10)
    with sqlite3.connect(ledger) as db:
        found = {row[0] for row in db.execute("SELECT id FROM requests")}
    assert set(ids) <= found, "a completed request was lost when the process was killed"

    proc = _serve(farm, ledger, port)  # the restarted gateway appends to the same ledger
    try:
        httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "small", "messages": HELLO, "max_tokens": 3},
            timeout=60,
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    shown = run_cli("ledger", "--db", str(ledger))
    assert shown.returncode == 0, shown.stderr
    assert "small" in shown.stdout and " 4 " in shown.stdout
